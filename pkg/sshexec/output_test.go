package sshexec

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHeadTailKeepsBothEndsAndCountsTheRest(t *testing.T) {
	var all bytes.Buffer
	h := NewHeadTail(10, 7)
	for i := 0; i < 1000; i++ {
		chunk := []byte(fmt.Sprintf("<%d>", i))
		all.Write(chunk)
		_, _ = h.Write(chunk)
	}
	want := all.Bytes()
	dropped := int64(len(want) - 17)
	if got := h.Dropped(); got != dropped {
		t.Fatalf("dropped %d, want %d", got, dropped)
	}
	exp := string(want[:10]) + TruncationMarker(dropped) + string(want[len(want)-7:])
	if got := string(h.Bytes()); got != exp {
		t.Fatalf("got %q\nwant %q", got, exp)
	}
	if got := string(h.Tail()); got != string(want[len(want)-7:]) {
		t.Fatalf("tail %q", got)
	}
	// Nothing dropped: exactly what was written, no marker.
	s := NewHeadTail(10, 7)
	_, _ = s.Write([]byte("0123456789abc"))
	if string(s.Bytes()) != "0123456789abc" || string(s.Tail()) != "0123456789abc" {
		t.Fatalf("short: %q / %q", s.Bytes(), s.Tail())
	}
	// One write larger than everything.
	b := NewHeadTail(3, 3)
	_, _ = b.Write([]byte("abcdefghij"))
	if string(b.Bytes()) != "abc"+TruncationMarker(4)+"hij" {
		t.Fatalf("big write: %q", b.Bytes())
	}
}

// A command printing far more than a Result keeps must not be held in
// memory: what comes back is the head and tail with the count dropped.
func TestCapturedOutputIsBounded(t *testing.T) {
	const total = 3*(CaptureHead+CaptureTail) + 12345
	l := NewLocal(&Target{Name: "local", Address: "local"})
	res, err := l.Run(context.Background(), Cmd{Script: fmt.Sprintf("yes 0123456789abcdef | head -c %d", total)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) > CaptureHead+CaptureTail+200 {
		t.Fatalf("kept %d bytes", len(res.Stdout))
	}
	if !bytes.Contains(res.Stdout, []byte(TruncationMarker(total-CaptureHead-CaptureTail))) {
		t.Fatalf("no marker with the count dropped in %d bytes", len(res.Stdout))
	}
}

// secretSeen scans every process's argv for s.
func secretSeen(s string) string {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err == nil && bytes.Contains(b, []byte(s)) {
			return strings.ReplaceAll(string(b), "\x00", " ")
		}
	}
	return ""
}

// fakeSudo puts a sudo on PATH that runs its command as is (this machine
// has no sudo; what matters is what its argv holds).
func fakeSudo(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\n[ \"$1\" = -n ] && shift\n[ \"$1\" = -- ] && shift\nexec \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "sudo"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
}

// Secrets reach the command as variables and never appear in any
// process's argv while it runs, over SSH and locally, with and without
// sudo; characters special to the shell arrive intact.
func TestSecretsNeverInArgv(t *testing.T) {
	fakeSudo(t)
	// The token is what any quoting of the secret still contains.
	token := fmt.Sprintf("w0rd%d", time.Now().UnixNano())
	secret := "pa$$" + token + ";`id` '\""
	e := newEnv(t)
	s := e.server()
	p := pool(t)
	for _, become := range []string{"", "sudo"} {
		tg := e.target("h", s)
		tg.Become = become
		ssh, err := p.Runner(context.Background(), tg)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []Runner{ssh, NewLocal(&Target{Name: "local", Address: "local", Become: become})} {
			done := make(chan struct{})
			var res *Result
			var rerr error
			go func() {
				defer close(done)
				res, rerr = r.Run(context.Background(), Cmd{Script: `printf '%s\n' "$HOCTL_SECRET_pw"; sleep 1`, Secrets: map[string]string{"HOCTL_SECRET_pw": secret}})
			}()
			for running := true; running; {
				select {
				case <-done:
					running = false
				default:
					if cmd := secretSeen(token); cmd != "" {
						t.Fatalf("%s become=%q: secret in argv: %s", r.Name(), become, cmd)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			if rerr != nil {
				t.Fatalf("%s become=%q: %v", r.Name(), become, rerr)
			}
			if got := strings.TrimSuffix(string(res.Stdout), "\n"); got != secret {
				t.Fatalf("%s become=%q: got %q want %q", r.Name(), become, got, secret)
			}
		}
	}
	if _, err := NewLocal(&Target{Name: "l"}).Run(context.Background(), Cmd{Script: "true", Secrets: map[string]string{"X": "a\nb"}}); err == nil {
		t.Fatal("a secret with a newline was accepted")
	}
}
