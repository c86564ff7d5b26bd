package e2e

import (
	"errors"
	"testing"
	"time"
)

// The one deadline loop of the suite: a test that waits for something it
// is not told of asks again until it holds or the bound has passed.

// errNotYet is a poll's answer while what it waits for has not happened.
var errNotYet = errors.New("not yet")

// poll calls fn every `every` until it returns nil, or until bound has
// passed since the call (fn is always asked once more at the end); it
// returns fn's last error, nil when met. It fails nothing: for waits whose
// timeout is an answer (a measurement, a race either way).
func poll(every, bound time.Duration, fn func() error) error {
	deadline := time.Now().Add(bound)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(every)
	}
}

// waitFor polls fn every 250 ms until it returns nil; after bound it
// fails the test (t.Errorf, with fn's last error) and returns false, for
// the caller to stop (t.FailNow) where nothing after it makes sense.
func waitFor(t *testing.T, bound time.Duration, what string, fn func() error) bool {
	t.Helper()
	return waitEvery(t, 250*time.Millisecond, bound, what, fn)
}

// waitEvery is waitFor asking every `every`: fast for what a test must
// catch soon after it happens (a process started, a step ended), slow for
// a whole hoctl run.
func waitEvery(t *testing.T, every, bound time.Duration, what string, fn func() error) bool {
	t.Helper()
	if err := poll(every, bound, fn); err != nil {
		t.Errorf("%s: not within %s: %v", what, bound, err)
		return false
	}
	return true
}
