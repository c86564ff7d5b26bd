// Package sshtest is an in-process SSH server for tests of pkg/sshexec: it
// runs exec requests with sh on this machine, honours "signal" requests on
// the command's process group, forwards direct-tcpip channels (so it can be
// a jump host), and can be told to misbehave (hang, stop answering
// keepalives) to test how the client copes.
package sshtest

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Server is a running test SSH server on 127.0.0.1 (or, with StartOn,
// another loopback address).
type Server struct {
	Addr    string // host:port
	Host    string
	Port    int
	HostKey ssh.Signer

	ln     net.Listener
	config *ssh.ServerConfig

	// Hang makes new connections accept TCP and then never speak SSH.
	Hang atomic.Bool
	// Mute makes established connections stop answering anything, like a
	// host that froze after the handshake.
	Mute atomic.Bool
	// ForcedCommand, when set, runs instead of whatever the client asks,
	// like an authorized_keys command="..." restriction.
	ForcedCommand atomic.Value // string
	// Execs counts exec requests (sessions that ran a command).
	Execs atomic.Int64

	Connections    atomic.Int64 // SSH handshakes completed
	MaxConcurrent  atomic.Int64 // most commands running at once on one connection
	ForwardedTo    atomic.Value // last direct-tcpip destination (string)
	authorizedKeys map[string]bool

	mu    sync.Mutex
	conns []net.Conn
	procs map[int]bool // process groups of running commands
	wg    sync.WaitGroup
}

// NewKey returns a fresh ed25519 signer and its OpenSSH private key file.
func NewKey(t testing.TB, dir, name string) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return signer, path
}

// Start runs a server accepting the given client public keys, stopped when
// the test ends.
func Start(t testing.TB, hostKey ssh.Signer, clientKeys ...ssh.PublicKey) *Server {
	t.Helper()
	return StartWithHostKeys(t, []ssh.Signer{hostKey}, clientKeys...)
}

// StartWithHostKeys is Start for a server offering several host keys (say
// ed25519 and RSA), as an OpenSSH server with several HostKey lines does.
// HostKey is the first.
func StartWithHostKeys(t testing.TB, hostKeys []ssh.Signer, clientKeys ...ssh.PublicKey) *Server {
	t.Helper()
	return StartOn(t, "127.0.0.1:0", hostKeys, clientKeys...)
}

// StartOn is StartWithHostKeys listening on listen ("[::1]:0" for IPv6).
func StartOn(t testing.TB, listen string, hostKeys []ssh.Signer, clientKeys ...ssh.PublicKey) *Server {
	t.Helper()
	hostKey := hostKeys[0]
	s := &Server{HostKey: hostKey, authorizedKeys: map[string]bool{}, procs: map[int]bool{}}
	for _, k := range clientKeys {
		s.authorizedKeys[string(k.Marshal())] = true
	}
	// Like OpenSSH since 8.8: RSA keys must sign with SHA-2, never the
	// SHA-1 "ssh-rsa" signature.
	var authAlgos []string
	for _, a := range ssh.SupportedAlgorithms().PublicKeyAuths {
		if a != ssh.KeyAlgoRSA {
			authAlgos = append(authAlgos, a)
		}
	}
	s.config = &ssh.ServerConfig{
		PublicKeyAuthAlgorithms: authAlgos,
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if s.authorizedKeys[string(key.Marshal())] {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	for _, k := range hostKeys {
		s.config.AddHostKey(k)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.Addr = ln.Addr().String()
	s.Host = ln.Addr().(*net.TCPAddr).IP.String()
	s.Port = ln.Addr().(*net.TCPAddr).Port
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and drops every connection.
func (s *Server) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	// Commands the client abandoned must not outlive the test.
	for pg := range s.procs {
		_ = syscall.Kill(-pg, syscall.SIGKILL)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// DropConnections closes every open connection, as a host reboot would.
func (s *Server) DropConnections() {
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		if s.Hang.Load() {
			continue // hold the socket open, say nothing
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		_ = c.Close()
		return
	}
	s.Connections.Add(1)
	defer func() { _ = sc.Close() }()
	go func() {
		for r := range reqs {
			if s.Mute.Load() {
				continue // swallow: no reply, like a frozen host
			}
			if r.WantReply {
				_ = r.Reply(r.Type == "keepalive@openssh.com", nil)
			}
		}
	}()
	var running atomic.Int64 // commands running on this connection
	var wg sync.WaitGroup
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.session(ch, creqs, &running)
			}()
		case "direct-tcpip":
			s.forward(nc)
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "unsupported")
		}
	}
	wg.Wait()
}

func (s *Server) forward(nc ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "bad payload")
		return
	}
	dest := net.JoinHostPort(p.Host, fmt.Sprint(p.Port))
	s.ForwardedTo.Store(dest)
	tc, err := net.Dial("tcp", dest)
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "connect failed: "+err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		_ = tc.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	go func() { _, _ = io.Copy(ch, tc); _ = ch.CloseWrite() }()
	go func() { _, _ = io.Copy(tc, ch); _ = tc.Close() }()
}

func (s *Server) session(ch ssh.Channel, reqs <-chan *ssh.Request, running *atomic.Int64) {
	defer func() { _ = ch.Close() }()
	var cmd *exec.Cmd
	for r := range reqs {
		if s.Mute.Load() {
			continue
		}
		switch r.Type {
		case "exec":
			var p struct{ Command string }
			if err := ssh.Unmarshal(r.Payload, &p); err != nil || cmd != nil {
				_ = r.Reply(false, nil)
				continue
			}
			s.Execs.Add(1)
			if fc, _ := s.ForcedCommand.Load().(string); fc != "" {
				p.Command = fc
			}
			cmd = exec.Command("sh", "-c", p.Command)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			cmd.Stdout = ch
			cmd.Stderr = ch.Stderr()
			stdin, _ := cmd.StdinPipe()
			if err := cmd.Start(); err != nil {
				_ = r.Reply(false, nil)
				continue
			}
			_ = r.Reply(true, nil)
			pid := cmd.Process.Pid
			n := running.Add(1)
			for {
				m := s.MaxConcurrent.Load()
				if n <= m || s.MaxConcurrent.CompareAndSwap(m, n) {
					break
				}
			}
			s.mu.Lock()
			s.procs[pid] = true
			s.mu.Unlock()
			go func() { _, _ = io.Copy(stdin, ch); _ = stdin.Close() }()
			go func() {
				err := cmd.Wait()
				running.Add(-1)
				s.mu.Lock()
				delete(s.procs, pid)
				s.mu.Unlock()
				code := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
						sig := ws.Signal()
						name := map[syscall.Signal]string{syscall.SIGTERM: "TERM", syscall.SIGKILL: "KILL", syscall.SIGINT: "INT"}[sig]
						_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
							Signal     string
							CoreDumped bool
							Error      string
							Lang       string
						}{name, false, "", ""}))
						_ = ch.Close()
						return
					}
					code = ee.ExitCode()
				}
				b := make([]byte, 4)
				binary.BigEndian.PutUint32(b, uint32(code))
				_, _ = ch.SendRequest("exit-status", false, b)
				_ = ch.Close()
			}()
		case "signal":
			var p struct{ Signal string }
			if err := ssh.Unmarshal(r.Payload, &p); err == nil && cmd != nil && cmd.Process != nil {
				sig := map[string]syscall.Signal{"TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "HUP": syscall.SIGHUP}[p.Signal]
				if sig != 0 {
					// Like OpenSSH: only the session's leader is signalled.
					_ = cmd.Process.Signal(sig)
				}
			}
			if r.WantReply {
				_ = r.Reply(true, nil)
			}
		default:
			if r.WantReply {
				_ = r.Reply(r.Type == "env", nil)
			}
		}
	}
	// The client closed the channel: a command still running is left
	// running, as sshd does without a pty.
}
