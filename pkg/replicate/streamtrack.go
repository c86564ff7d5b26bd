package replicate

import (
	"fmt"
	"strings"
)

// What the stream check keeps of a stream's paths as it goes: the
// symlinks and special files it made, where renames move them, what
// removals take away, and the budget all of that spends.

// makes records a new entry of kind k at p.
func (s *streamPaths) makes(p string, k pathKind) error {
	s.forget(p)
	if k == kindPlain {
		// Tracked only where the parent's entry would say otherwise.
		// A parent's directory counts too: only a directory may be
		// made setgid (privilege).
		if now, err := s.kind(p); err != nil || now == kindPlain || now == kindGone {
			return err
		}
	}
	s.track(p, pathNode{kind: k})
	return nil
}

// removes records that p is gone.
func (s *streamPaths) removes(p string) error {
	s.forget(p)
	n := s.lookup(p)
	if n.kind != kindRef {
		return nil
	}
	k, err := s.onDisk(s.parent, n.ref)
	if err != nil {
		return err
	}
	if k == kindDir || k == kindLink || k == kindOther {
		s.track(p, pathNode{kind: kindGone})
	}
	return nil
}

// renames moves what is at from, and what is tracked below it, to to.
// When to is a link or special file of the same kind as from, the two
// may be hard links of one inode, and then rename(2) does nothing at all
// and from stays what it was: it is kept as that kind too.
func (s *streamPaths) renames(from, to string) error {
	fromKind, err := s.kind(from)
	if err != nil {
		return err
	}
	if fromKind == kindLink || fromKind == kindOther {
		toKind, err := s.kind(to)
		if err != nil {
			return err
		}
		if toKind == fromKind {
			s.forget(to)
			s.track(to, pathNode{kind: fromKind})
			s.forget(from)
			s.track(from, pathNode{kind: fromKind})
			return nil
		}
	}
	n := s.lookup(from)
	if n.kind == kindRef {
		k, err := s.onDisk(s.parent, n.ref)
		if err != nil {
			return err
		}
		switch k {
		case kindLink, kindOther:
			n = pathNode{kind: k}
		case kindPlain, kindGone:
			n = pathNode{kind: kindPlain} // a file, or the stream's own (an orphan name)
		}
	}
	moved := map[string]pathNode{}
	sub := s.subtree(from)
	if err := s.spend(len(sub)); err != nil {
		return err
	}
	for _, q := range sub {
		moved[to+q[len(from):]] = s.nodes[q]
		s.untrack(q)
	}
	if err := s.removes(from); err != nil {
		return err
	}
	if n.kind == kindRef {
		s.forget(to)
		s.track(to, n)
	} else if err := s.makes(to, n.kind); err != nil {
		return err
	}
	for q, m := range moved {
		s.track(q, m)
	}
	return nil
}

// spend counts n entries scanned against maxTrackWork.
func (s *streamPaths) spend(n int) error {
	s.work += n
	if s.work > maxTrackWork {
		return fmt.Errorf("the stream renames or removes directories holding links or special files more than %d entries' worth: no stream btrfs send writes", maxTrackWork)
	}
	return nil
}

// forget drops what is tracked at p and below it.
func (s *streamPaths) forget(p string) {
	s.untrack(p)
	sub := s.subtree(p)
	s.work += len(sub)
	for _, q := range sub {
		s.untrack(q)
	}
}

// subtree is the tracked paths below p.
func (s *streamPaths) subtree(p string) []string {
	if s.dirs[p] == nil {
		return nil
	}
	var out []string
	stack := []string{p}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		dn := s.dirs[d]
		if dn == nil {
			continue
		}
		for c := range dn.kids {
			if _, ok := s.nodes[c]; ok {
				out = append(out, c)
			}
			stack = append(stack, c)
		}
	}
	return out
}

func (s *streamPaths) track(p string, n pathNode) {
	if s.nodes == nil {
		s.nodes, s.dirs = map[string]pathNode{}, map[string]*dirNode{}
	}
	if old, ok := s.nodes[p]; ok {
		s.held += int64(len(n.ref) - len(old.ref))
		s.nodes[p] = n
		return
	}
	s.held += int64(len(p)+len(n.ref)) + heldPerEntry
	s.nodes[p] = n
	// Map keys are only ever stored once, as copies of their own (a key
	// sliced from p would keep all of p in memory after p is untracked,
	// and an assignment to an existing string key replaces the key).
	child := p
	for i := strings.LastIndexByte(p, '/'); i > 0; i = strings.LastIndexByte(p[:i], '/') {
		d := p[:i]
		s.looked += int64(len(d))
		dn := s.dirs[d]
		if dn == nil {
			d = strings.Clone(d)
			dn = &dirNode{kids: map[string]bool{}}
			s.dirs[d] = dn
			s.held += int64(len(d)) + heldPerEntry
		}
		dn.below++
		if !dn.kids[child] {
			dn.kids[child] = true
		}
		child = d
	}
}

func (s *streamPaths) untrack(p string) {
	old, ok := s.nodes[p]
	if !ok {
		return
	}
	delete(s.nodes, p)
	s.held -= int64(len(p)+len(old.ref)) + heldPerEntry
	child := p
	for i := strings.LastIndexByte(p, '/'); i > 0; i = strings.LastIndexByte(p[:i], '/') {
		d := p[:i]
		s.looked += int64(len(d))
		dn := s.dirs[d]
		if _, tracked := s.nodes[child]; !tracked && s.dirs[child] == nil {
			delete(dn.kids, child)
		}
		if dn.below--; dn.below == 0 {
			s.held -= int64(len(d)) + heldPerEntry
			delete(s.dirs, d)
		}
		child = d
	}
}
