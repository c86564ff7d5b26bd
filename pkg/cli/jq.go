package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/itchyny/gojq"
	"github.com/spf13/cobra"
)

// --jq EXPR filters --json output as gh's does, with gojq: the expression
// runs on each event (hoctl's output is a stream of JSON objects, one a
// line, as jq reads its input), a string result is printed as it is, any
// other as compact JSON, one a line.

// jqFilter is stdout under --jq: it runs the expression on each line.
type jqFilter struct {
	code   *gojq.Code
	out    io.Writer
	errOut io.Writer
	// tty: a string result is shown on a terminal, so made safe as any
	// host text is; to a pipe it goes as it is, as jq -r.
	tty bool

	mu     sync.Mutex
	buf    []byte
	failed bool // an expression failed on an event (exit 1)
}

// compileJQ parses and compiles expr, or says what is wrong with it.
func compileJQ(expr string) (*gojq.Code, error) {
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, usagef("--jq %q: %v", expr, err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return nil, usagef("--jq %q: %v", expr, err)
	}
	return code, nil
}

func (j *jqFilter) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = append(j.buf, p...)
	for {
		i := bytes.IndexByte(j.buf, '\n')
		if i < 0 {
			break
		}
		line := j.buf[:i]
		j.buf = j.buf[i+1:]
		if err := j.event(line); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

func (j *jqFilter) event(line []byte) error {
	var v any
	if err := json.Unmarshal(line, &v); err != nil {
		// Not an event (nothing else goes to stdout under --json): kept.
		_, err := j.out.Write(append(line, '\n'))
		return err
	}
	var out bytes.Buffer
	iter := j.code.Run(v)
	for {
		r, ok := iter.Next()
		if !ok {
			break
		}
		if err, ok := r.(error); ok {
			var he *gojq.HaltError
			if errors.As(err, &he) && he.Value() == nil {
				break // halt: stop, without an error
			}
			fmt.Fprintf(j.errOut, "jq: error: %v\n", err)
			j.failed = true
			break
		}
		j.result(&out, r)
	}
	_, err := j.out.Write(out.Bytes())
	return err
}

// result writes one value the expression gave: a string as it is (made
// safe on a terminal), anything else as JSON, each on a line.
func (j *jqFilter) result(out *bytes.Buffer, r any) {
	if s, ok := r.(string); ok {
		if j.tty {
			s = hostout.Sanitize(s)
		}
		out.WriteString(s + "\n")
		return
	}
	b, err := gojq.Marshal(r)
	if err != nil {
		fmt.Fprintf(j.errOut, "jq: error: %v\n", err)
		j.failed = true
		return
	}
	out.Write(hostout.EscapeJSON(b))
	out.WriteByte('\n')
}

// Failed reports whether the expression failed on an event.
func (j *jqFilter) Failed() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}

// setJQ checks --jq and puts its filter on stdout.
func (f *Factory) setJQ(c *cobra.Command) error {
	if !c.Flags().Changed("jq") {
		return nil
	}
	if !f.IO.JSON {
		return usagef("--jq filters --json output: add --json")
	}
	code, err := compileJQ(f.JQ)
	if err != nil {
		return err
	}
	f.jq = &jqFilter{code: code, out: f.IO.Out, errOut: f.IO.ErrOut, tty: f.IO.IsStdoutTTY()}
	f.IO.Out = f.jq
	return nil
}
