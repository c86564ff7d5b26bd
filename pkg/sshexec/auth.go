package sshexec

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// keyring supplies client keys: the ssh-agent first (when SSH_AUTH_SOCK is
// set), then identity files. Files are parsed once per process.
type keyring struct {
	agentSock string

	mu        sync.Mutex
	agentConn net.Conn
	agent     agent.ExtendedAgent
	agentErr  error
	files     map[string]fileKey
}

type fileKey struct {
	signer    ssh.Signer
	encrypted bool
	err       error
}

func newKeyring(agentSock string) *keyring {
	return &keyring{agentSock: agentSock, files: map[string]fileKey{}}
}

func (k *keyring) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.agentConn != nil {
		_ = k.agentConn.Close()
	}
}

func (k *keyring) agentClient() agent.ExtendedAgent {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.agentSock == "" || k.agentErr != nil {
		return nil
	}
	if k.agent == nil {
		c, err := net.Dial("unix", k.agentSock)
		if err != nil {
			k.agentErr = err
			return nil
		}
		k.agentConn = c
		k.agent = agent.NewClient(c)
	}
	return k.agent
}

func (k *keyring) file(path string) fileKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	if fk, ok := k.files[path]; ok {
		return fk
	}
	var fk fileKey
	data, err := os.ReadFile(path)
	if err != nil {
		fk.err = err
	} else {
		fk.signer, err = ssh.ParsePrivateKey(data)
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			fk.encrypted = true
		}
		if err != nil {
			fk.err = fmt.Errorf("%s: %w", path, err)
		}
	}
	k.files[path] = fk
	return fk
}

// methods returns the auth methods for t, or an error explaining why there
// is no key to offer at all.
func (k *keyring) methods(t *Target, used func(ssh.PublicKey)) ([]ssh.AuthMethod, error) {
	ag := k.agentClient()
	var signers []ssh.Signer
	var problems []string
	for _, f := range t.IdentityFiles {
		fk := k.file(f)
		switch {
		case fk.signer != nil:
			signers = append(signers, fk.signer)
		case fk.encrypted && ag == nil:
			problems = append(problems, fmt.Sprintf("%s is encrypted and no ssh-agent is running (start one and ssh-add it; hoctl never prompts for passphrases)", f))
		case fk.encrypted:
			// The agent is expected to hold it.
		case os.IsNotExist(errors.Unwrap(fk.err)) || os.IsNotExist(fk.err):
			// Missing default keys are normal.
		default:
			problems = append(problems, fk.err.Error())
		}
	}
	if ag == nil && len(signers) == 0 {
		msg := "no ssh-agent (SSH_AUTH_SOCK unset) and no readable key among " + strings.Join(t.IdentityFiles, ", ")
		if len(problems) > 0 {
			msg = strings.Join(problems, "; ")
		}
		return nil, &ConnError{Host: t.Name, Addr: t.HostPort(), Reason: ReasonKey, Err: errors.New(msg)}
	}
	cb := func() ([]ssh.Signer, error) {
		var all []ssh.Signer
		if ag != nil {
			if s, err := ag.Signers(); err == nil {
				all = append(all, s...)
			}
		}
		all = append(all, signers...)
		if used != nil {
			for i, s := range all {
				all[i] = traceSigner(s, used)
			}
		}
		return all, nil
	}
	return []ssh.AuthMethod{ssh.PublicKeysCallback(cb)}, nil
}

// encryptedHint names encrypted keys that might have been the right one,
// for the auth-failed message.
func (k *keyring) encryptedHint(t *Target) string {
	var enc []string
	for _, f := range t.IdentityFiles {
		if k.file(f).encrypted {
			enc = append(enc, f)
		}
	}
	if len(enc) == 0 {
		return ""
	}
	return " (encrypted and not offered: " + strings.Join(enc, ", ") + "; add them to ssh-agent)"
}
