package sshexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// PipeResult describes a finished pipe.
type PipeResult struct {
	Bytes    int64
	Sender   *Result
	Receiver *Result
}

// PipeError says which side of a pipe failed first. The other side's error,
// usually a consequence ("empty stream", "broken pipe"), is kept for the
// journal but not put first.
type PipeError struct {
	Side  string // "sender" or "receiver"
	Err   error
	Other error
}

func (e *PipeError) Error() string {
	s := fmt.Sprintf("%s failed: %v", e.Side, e.Err)
	if e.Other != nil {
		s += fmt.Sprintf(" (then %s: %v)", map[string]string{"sender": "receiver", "receiver": "sender"}[e.Side], e.Other)
	}
	return s
}

func (e *PipeError) Unwrap() error { return e.Err }

// errReceiverGone stops the sender's output when the receiver has exited.
var errReceiverGone = errors.New("receiver exited")

// Pipe runs send on src and recv on dst with send's stdout streamed into
// recv's stdin, counting bytes in *counter (which may be read concurrently
// for progress; nil is allowed). When one side fails the other is stopped.
// The error puts the sender first unless the sender only failed because
// the receiver had already gone.
func Pipe(ctx context.Context, src Runner, send Cmd, dst Runner, recv Cmd, counter *atomic.Int64) (*PipeResult, error) {
	if counter == nil {
		counter = new(atomic.Int64)
	}
	pr, pw := io.Pipe()
	sctx, cancelSend := context.WithCancel(ctx)
	defer cancelSend()
	rctx, cancelRecv := context.WithCancel(ctx)
	defer cancelRecv()

	var (
		mu           sync.Mutex
		senderDone   bool
		receiverLeft bool // receiver failed while the sender still ran
	)
	recv.Stdin = pr
	type out struct {
		res *Result
		err error
	}
	rdone := make(chan out, 1)
	go func() {
		res, err := dst.Run(rctx, recv)
		_ = pr.CloseWithError(errReceiverGone)
		mu.Lock()
		if err != nil && !senderDone {
			receiverLeft = true
			cancelSend()
		}
		mu.Unlock()
		rdone <- out{res, err}
	}()

	send.Stdout = &countingWriter{w: pw, n: counter}
	sres, serr := src.Run(sctx, send)
	mu.Lock()
	senderDone = true
	left := receiverLeft
	mu.Unlock()
	if serr != nil {
		_ = pw.CloseWithError(serr)
	} else {
		_ = pw.Close()
	}
	r := <-rdone
	result := &PipeResult{Bytes: counter.Load(), Sender: sres, Receiver: r.res}
	switch {
	case serr != nil && !left:
		return result, &PipeError{Side: "sender", Err: serr, Other: r.err}
	case r.err != nil:
		return result, &PipeError{Side: "receiver", Err: r.err, Other: serr}
	case serr != nil:
		return result, &PipeError{Side: "sender", Err: serr}
	}
	return result, nil
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}
