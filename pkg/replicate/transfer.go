package replicate

// The transfer: the source's send, the wire (relayed through this
// machine, or direct from the source to the target), the target's checked
// receive, and the progress line.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// The wire compression's two ends. -1: on a LAN the link, not the ratio,
// is what zstd has to beat, and level 1 runs at several hundred MB/s on
// one core.
var (
	CompressArgv   = []string{"zstd", "-q", "-c", "-1"}
	DecompressArgv = []string{"zstd", "-d", "-q", "-c"}
)

// sendArgv is the source's send, run by prog (hoctlOn): the dir
// primitive's send op, which opens the new snapshot and the parent by
// their names in the source dir and checks them on their descriptors
// (read-only subvolumes directly in the dir, the parent with the UUID
// inspect chose) before the kernel sends from those descriptors. After a
// failover the source dir holds names a stream wrote; `btrfs send -p
// PATH` would follow a symlink planted under the parent's name.
func (r *Run) sendArgv(prog string) []string {
	e := r.Ends
	op := []string{opSend, r.name()}
	r.mu.Lock()
	if r.parent != nil {
		op = append(op, r.parent.Source.Name()+"="+r.parent.Source.UUID)
	}
	r.mu.Unlock()
	return hostOpArgv(prog, e.SourceDir, op...)
}

func (r *Run) zstd() bool { return r.Ends.Compress == "zstd" }

// senderCmd is the source's half of a relayed send, on src (nil: as a
// plan shows it).
func (r *Run) senderCmd(src sshexec.Runner) sshexec.Cmd {
	if r.zstd() {
		return sshexec.Cmd{Script: "set -o pipefail; " + sshexec.QuoteArgv(r.sendArgv(hoctlOn(src))) + " | " + sshexec.QuoteArgv(CompressArgv)}
	}
	return sshexec.Cmd{Argv: r.sendArgv(hoctlOn(src))}
}

// receiverLine is the target's half on dst (nil: as a plan shows it), as
// the target's shell or its forced-command filter (filter.go) receives
// it: the receive always runs inside hoctl's target filter, also over an
// unrestricted key, so that the stream check and the dedicated-dir check
// (stream.go, subvol_linux.go) hold whichever key the target has. A plain
// `btrfs receive -C DIR` in the shell would take a snapshot of any
// subvolume of the filesystem the stream names.
func (r *Run) receiverLine(dst sshexec.Runner) string {
	recv := sshexec.QuoteArgv(ReceiveArgv(r.Ends.TargetDir))
	if r.zstd() {
		recv = sshexec.QuoteArgv(DecompressArgv) + " | " + recv
	}
	return "SSH_ORIGINAL_COMMAND=" + sshexec.Quote(recv) + " " + sshexec.Quote(hoctlOn(dst)) + " target-filter " + sshexec.Quote(r.Ends.TargetDir) + " " + sshexec.Quote(r.Ends.Base)
}

// directScript is the whole send for --transport direct: run on the source,
// which connects to the target itself with its own key and known_hosts
// (BatchMode: never a prompt, never an unverified host key). dd counts the
// stream for the progress line.
func (r *Run) directScript(src sshexec.Runner) string {
	t := r.Inv.Host(r.Ends.TargetHost)
	s := r.Inv.Settings(t)
	addr := t.Address
	if addr == "" {
		addr = t.Name
	}
	port := s.Port
	if port == 0 {
		port = sshexec.DefaultPort
	}
	user := s.User
	if user == "" {
		user = "root"
	}
	timeout := int(s.ConnectTimeout.Seconds())
	if timeout <= 0 {
		timeout = 10
	}
	parts := []string{sshexec.QuoteArgv(r.sendArgv(hoctlOn(src))), "dd bs=128K status=progress"}
	if r.zstd() {
		parts = append(parts, sshexec.QuoteArgv(CompressArgv))
	}
	parts = append(parts, sshexec.QuoteArgv([]string{"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=" + strconv.Itoa(timeout),
		"-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "Ciphers=" + directCiphers,
		"-p", strconv.Itoa(port), "-l", user, addr, r.receiverLine(nil)}))
	return "set -o pipefail; " + strings.Join(parts, " | ")
}

// directCiphers is OpenSSH's default cipher set with AES-GCM first, as
// the relay's Go client orders it: with the CPU's AES instructions it
// costs each end about half the CPU per byte of chacha20-poly1305,
// OpenSSH's own first choice, and a send can be CPU-bound on both hosts
// (docs/benchmarks.md). The whole set, so that a target allowing only
// some of them still agrees on one.
const directCiphers = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr"

func (r *Run) direct() bool {
	if r.Opts.Transport != "" {
		return r.Opts.Transport == inventory.TransportDirect
	}
	return r.Ends.Transport == inventory.TransportDirect
}

func (r *Run) sendCmd() string {
	e := r.Ends
	if r.direct() {
		return fmt.Sprintf("%s: %s   (direct, %s)", e.SourceHost, r.directScript(nil), r.choice())
	}
	return fmt.Sprintf("%s: %s | %s: %s   (relayed through this machine, %s)", e.SourceHost, r.senderCmd(nil).Line(), e.TargetHost,
		r.receiverLine(nil), r.choice())
}

func (r *Run) send(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	defer r.phase("send", time.Now())
	e := r.Ends
	srcR, dstR, err := r.both(ctx, env)
	if err != nil {
		return "", err
	}
	start := time.Now()
	stop := make(chan struct{})
	if r.Opts.Progress != nil {
		go func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					r.Opts.Progress(r.Sent.Load(), time.Since(start))
				}
			}
		}()
	}
	var stderr, received string
	if r.direct() {
		dd := &ddProgress{sent: &r.Sent}
		_, err = srcR.Run(ctx, sshexec.Cmd{Script: r.directScript(srcR), Stderr: dd})
		stderr = dd.text()
		received = stderr
		if err != nil {
			err = fmt.Errorf("%s: direct send to %s failed: %s", e.SourceHost, e.TargetHost, strings.TrimSpace(stderr))
		}
	} else {
		var res *sshexec.PipeResult
		res, err = sshexec.Pipe(ctx, srcR, r.senderCmd(srcR), dstR, sshexec.Cmd{Script: r.receiverLine(dstR)}, &r.Sent)
		var pe *sshexec.PipeError
		var ee *sshexec.ExitError
		if errors.As(err, &pe) && pe.Side == "receiver" && errors.As(pe.Err, &ee) {
			stderr = ee.Stderr
		}
		if res != nil && res.Receiver != nil {
			received = string(res.Receiver.Stderr)
		}
	}
	close(stop)
	d := time.Since(start)
	if r.Opts.Progress != nil {
		r.Opts.Progress(r.Sent.Load(), d)
	}
	if err != nil {
		switch {
		case strings.Contains(stderr, "No space left"):
			return "", fmt.Errorf("%s: target filesystem full during receive: %w", e.TargetHost, err)
		case strings.Contains(stderr, "Host key verification failed") || strings.Contains(stderr, "Permission denied (publickey"):
			return "", fmt.Errorf("%w\n--transport direct needs %s's own key authorized on %s and %s's host key in %s's known_hosts (docs/replicate.md, \"Direct transport\")",
				err, e.SourceHost, e.TargetHost, e.TargetHost, e.SourceHost)
		}
		return "", err
	}
	rate := float64(r.Sent.Load()) / d.Seconds()
	how := "relayed"
	if r.direct() {
		how = "direct"
	}
	if r.zstd() && !r.direct() {
		how += ", zstd on the wire"
	} else if r.zstd() {
		how += ", zstd"
	}
	r.mu.Lock()
	summary := fmt.Sprintf("%s in %s (%s/s, %s), %s", BytesText(r.Sent.Load()), d.Round(time.Millisecond), BytesText(int64(rate)), how, r.choiceLocked())
	warnings := streamWarnings(e.TargetHost, e.TargetDir, received)
	r.Summary = summary + warnings
	r.mu.Unlock()
	if warnings == "" {
		return summary, nil
	}
	// The step's last line is what the live view shows of it: the
	// summary; the journal keeps every line.
	return strings.TrimPrefix(warnings, "\n") + "\n" + summary, nil
}

// streamWarnings are the lines the target's stream check wrote about
// the bits it cleared (StreamWarning), each as a WARNING of host:dir
// (one per line, each line led by a newline): at most as many as the
// check writes, and each at most maxStderrLine bytes, whatever the
// target printed.
func streamWarnings(host, dir, stderr string) string {
	var b strings.Builder
	n := 0
	for l := range strings.Lines(stderr) {
		msg, ok := strings.CutPrefix(strings.TrimSpace(l), StreamWarning)
		if !ok {
			continue
		}
		if n++; n > maxStripWarnings+1 {
			break
		}
		fmt.Fprintf(&b, "\nWARNING %s:%s: %s", host, dir, truncate(msg, maxStderrLine))
	}
	return b.String()
}

// ddProgress reads dd's status=progress lines ("123 bytes (...) copied,
// ...", rewritten with \r) into the sent counter and keeps every other
// line, which are the pipeline's error messages. Both hosts' stderr
// arrive here, so what it keeps is bounded: a line up to maxStderrLine
// bytes (the rest of a longer one is dropped) and the messages' first and
// last maxStderrKept bytes.
type ddProgress struct {
	sent    *atomic.Int64
	mu      sync.Mutex
	partial []byte
	other   *sshexec.HeadTail
}

const (
	maxStderrLine = 4096
	maxStderrKept = 16 << 10
)

func (d *ddProgress) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexAny(p, "\r\n")
		end := i
		if i < 0 {
			end = len(p)
		}
		d.partial = append(d.partial, p[:min(end, maxStderrLine-len(d.partial))]...)
		if i < 0 {
			break
		}
		d.line(string(d.partial))
		d.partial = d.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (d *ddProgress) line(l string) {
	l = strings.TrimSpace(l)
	if n, rest, ok := strings.Cut(l, " bytes"); ok && rest != "" {
		if v, err := strconv.ParseInt(n, 10, 64); err == nil {
			d.sent.Store(v)
			return
		}
	}
	if l == "" || strings.HasSuffix(l, " records in") || strings.HasSuffix(l, " records out") || strings.HasPrefix(l, "At subvol ") ||
		strings.HasPrefix(l, "At snapshot ") || strings.HasPrefix(l, "Chroot to ") {
		return
	}
	if d.other == nil {
		d.other = sshexec.NewHeadTail(maxStderrKept, maxStderrKept)
	}
	_, _ = d.other.Write([]byte(l + "\n"))
}

func (d *ddProgress) text() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.partial) > 0 {
		d.line(string(d.partial))
		d.partial = d.partial[:0]
	}
	if d.other == nil {
		return ""
	}
	return strings.TrimRight(string(d.other.Bytes()), "\n")
}

func (r *Run) choiceLocked() string {
	if r.parent != nil {
		return "incremental from " + r.parent.Source.Name()
	}
	return "full send (" + r.whyFull + ")"
}

// ProgressText is a send's progress line: bytes sent, and against the
// estimate (when there is one) the percentage and the time left at the
// rate so far. The estimate is inspect's, so a send that outgrows it
// shows 99% and no ETA rather than a wrong one.
func ProgressText(sent, estimate int64, elapsed time.Duration) string {
	rate := float64(sent) / max(elapsed.Seconds(), 0.001)
	s := BytesText(sent)
	if estimate > 0 {
		pct := min(sent*100/estimate, 99)
		s += fmt.Sprintf(" of ~%s (%d%%)", BytesText(estimate), pct)
	}
	s += fmt.Sprintf(", %s/s", BytesText(int64(rate)))
	if estimate > 0 && sent < estimate && rate > 0 {
		eta := time.Duration(float64(estimate-sent) / rate * float64(time.Second))
		s += ", ETA " + eta.Round(time.Second).String()
	}
	return s + ", " + format.Duration(elapsed)
}
