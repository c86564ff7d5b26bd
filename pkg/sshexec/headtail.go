package sshexec

import (
	"fmt"
	"sync"
)

// HeadTail is an io.Writer that keeps the first Head and the last Tail
// bytes written to it and counts the rest, so that a command printing
// without end costs a bounded amount of memory. The head says how the
// command started, the tail how it ended (errors come last). It is safe
// for concurrent use.
type HeadTail struct {
	mu      sync.Mutex
	head    []byte
	ring    []byte // the tail, circular once full
	next    int    // where the next tail byte goes once ring is full
	full    bool
	dropped int64
	limH    int
	limT    int
}

// NewHeadTail keeps up to head bytes from the start and tail bytes from
// the end.
func NewHeadTail(head, tail int) *HeadTail {
	return &HeadTail{limH: head, limT: tail}
}

// Write implements io.Writer; it never fails.
func (h *HeadTail) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(p)
	if room := h.limH - len(h.head); room > 0 {
		k := min(room, len(p))
		h.head = append(h.head, p[:k]...)
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if h.limT == 0 {
		h.dropped += int64(len(p))
		return n, nil
	}
	// Only the last limT bytes of p can survive.
	if len(p) > h.limT {
		h.dropped += int64(len(p) - h.limT)
		p = p[len(p)-h.limT:]
	}
	for len(p) > 0 {
		if !h.full {
			k := min(h.limT-len(h.ring), len(p))
			h.ring = append(h.ring, p[:k]...)
			p = p[k:]
			if len(h.ring) == h.limT {
				h.full, h.next = true, 0
			}
			continue
		}
		k := min(h.limT-h.next, len(p))
		h.dropped += int64(k) // the bytes overwritten leave the tail
		copy(h.ring[h.next:], p[:k])
		h.next = (h.next + k) % h.limT
		p = p[k:]
	}
	return n, nil
}

// Dropped is how many bytes were written and not kept.
func (h *HeadTail) Dropped() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}

// Tail returns the last bytes kept (head and tail together when nothing
// was dropped), for error messages that quote how a command ended.
func (h *HeadTail) Tail() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dropped == 0 {
		return append(append([]byte(nil), h.head...), h.tailLocked()...)
	}
	return h.tailLocked()
}

func (h *HeadTail) tailLocked() []byte {
	if !h.full {
		return append([]byte(nil), h.ring...)
	}
	out := make([]byte, 0, h.limT)
	out = append(out, h.ring[h.next:]...)
	return append(out, h.ring[:h.next]...)
}

// Bytes returns what was kept; when bytes were dropped a marker line
// between head and tail says how many.
func (h *HeadTail) Bytes() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := append([]byte(nil), h.head...)
	if h.dropped > 0 {
		out = append(out, TruncationMarker(h.dropped)...)
	}
	return append(out, h.tailLocked()...)
}

// TruncationMarker is the line put where output was dropped.
func TruncationMarker(dropped int64) string {
	return fmt.Sprintf("\n…[hoctl: %d bytes of output dropped here]…\n", dropped)
}
