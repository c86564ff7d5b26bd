package replicate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/hoctl/hoctl/pkg/btrfs"
)

// The send stream the target filter hands to `btrfs receive`, read on its
// way there. `receive -C DIR` confines the stream's paths to DIR, but not
// the subvolumes it names by UUID: receive looks a SNAPSHOT's parent up
// across the whole filesystem (from the mount root it opened before the
// chroot), so a stream naming the UUID of a subvolume outside DIR would
// copy it in. So the filter parses the stream, command by command (one
// command in memory at a time, never the data), and passes a command on
// only once it has checked it: the stream starts one subvolume, named
// <name>@<UTC time> directly in DIR, by SUBVOL or by SNAPSHOT of a
// subvolume directly in DIR (so every subvolume a stream makes there is
// named like a snapshot, and a dir holding any other is not a dedicated
// replication dir: Filter refuses it), CLONE reads only from
// that subvolume or one directly in DIR, every command is one this
// version of the stream defines, and nothing follows END. It also takes
// out of the stream what would be a privilege once failover promotes the
// copy (streamprivilege.go): setuid and setgid bits are cleared, in the
// command's MODE, whose crc it then writes anew; device nodes and file
// capabilities are refused.

// Stream format (btrfs send.h): a magic, a version (u32), then commands:
// payload length (u32), command (u16), crc32c (u32) over the header with
// the crc zeroed and the payload; the payload is attributes (type u16,
// length u16, value), all little-endian. From version 2 the DATA
// attribute has no length: it runs to the end of its command.
const (
	streamMagic     = "btrfs-stream\x00"
	streamCmdHeader = 10
	// maxStreamCommand bounds one command's payload. btrfs send writes at
	// most 64 KiB (version 1) or 144 KiB (version 2, encoded writes)
	// per command; the bound is what the filter ever holds in memory.
	maxStreamCommand = 1 << 20

	sendCmdSubvol       = 1
	sendCmdSnapshot     = 2
	sendCmdClone        = 16
	sendCmdEnd          = 21
	sendCmdUpdateExtent = 22 // the last of version 1
	sendCmdEncodedWrite = 25 // the last of version 2
	sendCmdEnableVerity = 26 // the last of version 3

	sendAttrUUID      = 1
	sendAttrPath      = 15
	sendAttrData      = 19
	sendAttrCloneUUID = 20
)

// namedAttrs are the attributes that hold a name or path (send.h): btrfs
// send never writes a NUL in one (no file name holds one).
var namedAttrs = []uint16{sendAttrPath, sendAttrPathTo, sendAttrPathLink, sendAttrClonePath, sendAttrXattrName}

// lastCommand is the highest command number each stream version defines.
var lastCommand = map[uint32]uint16{1: sendCmdUpdateExtent, 2: sendCmdEncodedWrite, 3: sendCmdEnableVerity}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// btrfsCRC is btrfs's crc32c: seed 0 and no final inversion (Go's adds
// both).
func btrfsCRC(p []byte) uint32 { return ^crc32.Update(0xffffffff, castagnoli, p) }

// StreamError is a send stream the filter refused to pass on.
type StreamError struct {
	Offset int64 // of the command refused; -1: refused for the dir, before any
	Reason string
}

func (e *StreamError) Error() string {
	if e.Offset < 0 {
		return "receive refused: " + e.Reason
	}
	return fmt.Sprintf("send stream refused at byte %d: %s", e.Offset, e.Reason)
}

// dirUUIDs says which UUIDs name a subvolume directly in the target dir:
// its own UUID or its received UUID.
type dirUUIDs func() (map[[16]byte]bool, error)

// uuidTree answers as the filesystem's UUID tree, where receive looks a
// UUID up (uuidtree_linux.go).
type uuidTree interface {
	// taken: u is already a subvolume's UUID or received UUID.
	taken(u [16]byte) (bool, error)
	// resolvesInDir: every subvolume receive could take for u is
	// directly in the target dir, and there is one.
	resolvesInDir(u [16]byte) (bool, error)
	// kindIn: what rel is in the subvolumes directly in the target dir
	// with UUID or received UUID u, read without following links.
	kindIn(u [16]byte, rel string) (pathKind, error)
}

// checkStream copies the send stream from src to dst command by command,
// each passed on only once it is checked; the first command that fails a
// check (or a stream that is not one) ends the copy with a *StreamError,
// and nothing of that command reaches dst. inDir is asked at most once,
// at the first command that names a subvolume by UUID.
func checkStream(dst io.Writer, src io.Reader, inDir dirUUIDs) error {
	return checkStreamFor(dst, src, inDir, "", nil)
}

// checkStreamFor is checkStream for a key of one snapshot base: the
// subvolume received must be named <base>@<time> ("": any base). With
// tree, the subvolume's own UUID must be new to the filesystem, and every
// UUID the stream names must resolve, as receive resolves it, only to
// subvolumes directly in the dir.
func checkStreamFor(dst io.Writer, src io.Reader, inDir dirUUIDs, base string, tree uuidTree) error {
	return checkStreamWith(dst, src, inDir, base, tree, &streamPaths{}, nil)
}

// checkStreamWith is checkStreamFor keeping its record of the stream's
// paths in paths (which tests read), and saying on warn (nil: nowhere)
// each setuid or setgid bit it cleared.
func checkStreamWith(dst io.Writer, src io.Reader, inDir dirUUIDs, base string, tree uuidTree, paths *streamPaths, warn io.Writer) error {
	r := bufio.NewReaderSize(src, 64<<10)
	var off int64
	stripped := &stripLog{w: warn}
	defer stripped.done()
	refuse := func(format string, a ...any) error {
		return &StreamError{Offset: off, Reason: fmt.Sprintf(format, a...)}
	}
	head := make([]byte, len(streamMagic)+4)
	if _, err := io.ReadFull(r, head); err != nil {
		if errors.Is(err, io.EOF) {
			return refuse("empty stream")
		}
		return refuse("no stream header: %v", err)
	}
	if string(head[:len(streamMagic)]) != streamMagic {
		return refuse("not a btrfs send stream (no btrfs-stream magic)")
	}
	version := binary.LittleEndian.Uint32(head[len(streamMagic):])
	last, ok := lastCommand[version]
	if !ok {
		return refuse("stream version %d, not one of 1-3", version)
	}
	if _, err := dst.Write(head); err != nil {
		return err
	}
	off = int64(len(head))

	var (
		started bool // a SUBVOL or SNAPSHOT was seen
		known   map[[16]byte]bool
		buf     []byte
	)
	if tree != nil {
		paths.inSubvol = tree.kindIn
	}
	lookup := func(u [16]byte) (bool, error) {
		if known == nil {
			var err error
			if known, err = inDir(); err != nil {
				return false, err
			}
		}
		if !known[u] || tree == nil {
			return known[u], nil
		}
		return tree.resolvesInDir(u)
	}
	for {
		keepSetgid := false
		if _, err := io.ReadFull(r, head[:streamCmdHeader]); err != nil {
			if errors.Is(err, io.EOF) {
				return refuse("the stream ended before its END command")
			}
			return refuse("a cut command header: %v", err)
		}
		hdr := head[:streamCmdHeader]
		n := binary.LittleEndian.Uint32(hdr[0:4])
		cmd := binary.LittleEndian.Uint16(hdr[4:6])
		crc := binary.LittleEndian.Uint32(hdr[6:10])
		if n > maxStreamCommand {
			return refuse("a command of %d bytes (at most %d)", n, maxStreamCommand)
		}
		if cmd == 0 || cmd > last {
			return refuse("command %d, which stream version %d does not define", cmd, version)
		}
		if cap(buf) < streamCmdHeader+int(n) {
			buf = make([]byte, streamCmdHeader+int(n))
		}
		buf = buf[:streamCmdHeader+int(n)]
		copy(buf, hdr)
		if _, err := io.ReadFull(r, buf[streamCmdHeader:]); err != nil {
			return refuse("command %d cut short: %v", cmd, err)
		}
		clear(buf[6:10])
		if got := btrfsCRC(buf); got != crc {
			return refuse("command %d: crc %08x, want %08x", cmd, crc, got)
		}
		binary.LittleEndian.PutUint32(buf[6:10], crc)
		attrs, err := parseAttrs(buf[streamCmdHeader:], version)
		if err != nil {
			return refuse("command %d: %v", cmd, err)
		}
		if err := u64Lengths(string(attrs[sendAttrPath]), attrs); err != nil {
			return refuse("%v", err)
		}
		// receive reads names as C strings: a NUL cuts one short, so it
		// would act on another name than the one checked.
		for _, typ := range namedAttrs {
			if bytes.IndexByte(attrs[typ], 0) >= 0 {
				return refuse("command %d: attribute %d holds a NUL: receive would read the name cut short there, not as checked", cmd, typ)
			}
		}
		switch {
		case cmd == sendCmdSubvol || cmd == sendCmdSnapshot:
			if started {
				return refuse("a second subvolume in one stream")
			}
			started = true
			u, ok := attrs.uuid(sendAttrUUID)
			if !ok {
				return refuse("command %d without the subvolume's UUID", cmd)
			}
			paths.own = u // the subvolume being received: clones from it are its own data
			if tree != nil {
				taken, err := tree.taken(u)
				if err != nil {
					return refuse("looking up the subvolume's UUID: %v", err)
				}
				if taken {
					return refuse("the subvolume's UUID %s is already a subvolume's UUID or received UUID on this filesystem: receive would later resolve it to the older one, wherever it is", uuidText(u))
				}
			}
			if name := string(attrs[sendAttrPath]); !streamSubvolName(name) {
				return refuse("a subvolume named %q, not <name>@<UTC time> directly in the target dir", truncate(name, 80))
			}
			if b, _, _ := btrfs.ParseSnapshotName(string(attrs[sendAttrPath])); base != "" && b != base {
				return refuse("a subvolume named %q, not %s@<UTC time>: this key receives only that replication's snapshots", truncate(string(attrs[sendAttrPath]), 80), base)
			}
			if cmd == sendCmdSnapshot {
				parent, ok := attrs.uuid(sendAttrCloneUUID)
				if !ok {
					return refuse("a snapshot without its parent's UUID")
				}
				in, err := lookup(parent)
				if err != nil {
					return refuse("looking up the snapshot's parent: %v", err)
				}
				if !in {
					return refuse("a snapshot of %s, which is not a subvolume directly in the target dir (receive would look it up on the whole filesystem), or is also a subvolume outside it", uuidText(parent))
				}
				paths.parent = parent
			}
		case !started:
			return refuse("command %d before the subvolume's SUBVOL or SNAPSHOT", cmd)
		}
		if cmd != sendCmdSubvol && cmd != sendCmdSnapshot {
			paths.read = off + int64(len(buf))
			if keepSetgid, err = paths.check(cmd, attrs); err != nil {
				return refuse("%v", err)
			}
		}
		if cmd == sendCmdClone {
			src, ok := attrs.uuid(sendAttrCloneUUID)
			if !ok {
				return refuse("a clone without its source's UUID")
			}
			if src != paths.own {
				in, err := lookup(src)
				if err != nil {
					return refuse("looking up a clone's source: %v", err)
				}
				if !in {
					return refuse("a clone from %s, which is neither the subvolume received nor one directly in the target dir (or is also a subvolume outside it)", uuidText(src))
				}
			}
		}
		// Last, once the command passed every check: its crc was checked
		// on what was read, and is written anew only over the bits
		// cleared.
		if before, after := stripMode(attrs, keepSetgid); after != before {
			clear(buf[6:10])
			binary.LittleEndian.PutUint32(buf[6:10], btrfsCRC(buf))
			p, named := attrs[sendAttrPath]
			stripped.add(cmd, string(p), named, before, after)
		}
		if _, err := dst.Write(buf); err != nil {
			return err
		}
		off += int64(len(buf))
		if cmd == sendCmdEnd {
			// One subvolume per stream: receive would read another
			// stream after this one, so nothing may follow.
			if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
				if err == nil {
					return refuse("data after the END command")
				}
				return refuse("after the END command: %v", err)
			}
			return nil
		}
	}
}

// streamSubvolName is a name hoctl gives a snapshot: one component,
// <name>@<UTC time>.
func streamSubvolName(name string) bool {
	base, _, ok := btrfs.ParseSnapshotName(name)
	return ok && baseName.MatchString(base)
}

// streamAttrs are one command's attributes.
type streamAttrs map[uint16][]byte

func (a streamAttrs) uuid(typ uint16) ([16]byte, bool) {
	var u [16]byte
	v, ok := a[typ]
	if !ok || len(v) != len(u) {
		return u, false
	}
	copy(u[:], v)
	return u, true
}

// parseAttrs splits a command's payload into its attributes; the values
// point into p.
func parseAttrs(p []byte, version uint32) (streamAttrs, error) {
	attrs := streamAttrs{}
	for len(p) > 0 {
		if len(p) < 2 {
			return nil, errors.New("a cut attribute")
		}
		typ := binary.LittleEndian.Uint16(p)
		p = p[2:]
		var v []byte
		if version >= 2 && typ == sendAttrData {
			v, p = p, nil
		} else {
			if len(p) < 2 {
				return nil, errors.New("a cut attribute")
			}
			n := int(binary.LittleEndian.Uint16(p))
			p = p[2:]
			if n > len(p) {
				return nil, fmt.Errorf("attribute %d of %d bytes overruns its command", typ, n)
			}
			v, p = p[:n], p[n:]
		}
		// btrfs send writes each attribute once; a repeated one would
		// leave the filter and receive free to read different values.
		if _, seen := attrs[typ]; seen {
			return nil, fmt.Errorf("attribute %d twice", typ)
		}
		attrs[typ] = v
	}
	return attrs, nil
}

// uuidText writes a UUID as btrfs-progs does ("-" for none).
func uuidText(u [16]byte) string {
	if u == ([16]byte{}) {
		return "-"
	}
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// StreamWarning starts each line the check writes about a bit it
// cleared (the filter's stderr): replicate picks these out of the
// receive's output.
const StreamWarning = "hoctl target-filter: WARNING: "

// maxStripWarnings bounds the lines a stream's cleared bits print: the
// first ones are named, the rest counted, so that a stream of a million
// setuid files floods neither the output nor the memory of whoever
// keeps it.
const maxStripWarnings = 20

// stripLog says which setuid and setgid bits the check cleared.
type stripLog struct {
	w io.Writer // nil: nowhere
	n int
}

func (l *stripLog) add(cmd uint16, p string, named bool, before, after uint64) {
	l.n++
	if l.w == nil || l.n > maxStripWarnings {
		return
	}
	bits := "setuid bit"
	switch before &^ after {
	case modeSetuid | modeSetgid:
		bits = "setuid and setgid bits"
	case modeSetgid:
		bits = "setgid bit"
	}
	what := fmt.Sprintf("%q", truncate(p, 80))
	switch {
	case !named:
		what = fmt.Sprintf("command %d (no path)", cmd)
	case p == "" && cmd != sendCmdSubvol && cmd != sendCmdSnapshot:
		what = "the subvolume's root"
	}
	fmt.Fprintf(l.w, "%scleared the %s of %s (%04o -> %04o): the copy carries no privilege\n", StreamWarning, bits, what, before&0o7777, after&0o7777)
}

// done counts the cleared bits not named.
func (l *stripLog) done() {
	if l.w != nil && l.n > maxStripWarnings {
		fmt.Fprintf(l.w, "%scleared setuid or setgid bits in %d more commands, not named (%d in all)\n", StreamWarning, l.n-maxStripWarnings, l.n)
	}
}
