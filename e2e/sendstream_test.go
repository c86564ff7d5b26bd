package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os/exec"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/internal/lab"
)

// sendStream writes a btrfs send stream (version 1) by hand, the way a
// hostile sender would: a magic, the version, then commands. A command is
// its payload length (u32), its number (u16) and a crc32c (u32) over the
// header, crc zeroed, and the payload; the payload is TLV attributes
// (type u16, length u16, value). All little-endian.
type sendStream struct {
	buf bytes.Buffer
	ino uint64
}

// Command and attribute numbers of stream version 1 (btrfs send.h).
const (
	cmdSubvol    = 1
	cmdMkfile    = 3
	cmdMkdir     = 4
	cmdMknod     = 5
	cmdSymlink   = 8
	cmdRename    = 9
	cmdLink      = 10
	cmdSetXattr  = 13
	cmdWrite     = 15
	cmdClone     = 16
	cmdTruncate  = 17
	cmdChmod     = 18
	cmdChown     = 19
	cmdEnd       = 21
	attrUUID     = 1
	attrCtransid = 2
	attrIno      = 3
	attrSize     = 4
	attrMode     = 5
	attrUID      = 6
	attrGID      = 7
	attrRdev     = 8
	attrXName    = 13
	attrXData    = 14
	attrPath     = 15
	attrPathTo   = 16
	attrPathLink = 17
	attrOffset   = 18
	attrData     = 19
	attrCUUID    = 20
	attrCCtrans  = 21
	attrCPath    = 22
	attrCOffset  = 23
	attrCLen     = 24
)

type tlv struct {
	typ uint16
	val []byte
}

func aStr(typ uint16, s string) tlv { return tlv{typ, []byte(s)} }

func aU64(typ uint16, v uint64) tlv {
	return tlv{typ, binary.LittleEndian.AppendUint64(nil, v)}
}

func aUUID(typ uint16, s string) tlv {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		panic("bad uuid " + s)
	}
	return tlv{typ, b}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newSendStream() *sendStream {
	s := &sendStream{}
	s.buf.WriteString("btrfs-stream\x00")
	_ = binary.Write(&s.buf, binary.LittleEndian, uint32(1))
	return s
}

func (s *sendStream) cmd(c uint16, attrs ...tlv) *sendStream {
	var payload []byte
	for _, a := range attrs {
		payload = binary.LittleEndian.AppendUint16(payload, a.typ)
		payload = binary.LittleEndian.AppendUint16(payload, uint16(len(a.val)))
		payload = append(payload, a.val...)
	}
	hdr := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	hdr = binary.LittleEndian.AppendUint16(hdr, c)
	hdr = binary.LittleEndian.AppendUint32(hdr, 0)
	// btrfs's crc32c: seed 0, no final inversion (Go's adds both).
	crc := ^crc32.Update(0xffffffff, castagnoli, append(hdr, payload...))
	binary.LittleEndian.PutUint32(hdr[6:], crc)
	s.buf.Write(hdr)
	s.buf.Write(payload)
	return s
}

// subvol starts a new subvolume of that name with a random-looking UUID.
func (s *sendStream) subvol(name string, n int) *sendStream {
	return s.cmd(cmdSubvol, aStr(attrPath, name), aUUID(attrUUID, fmt.Sprintf("0badc0de-0000-4000-8000-%012d", n)),
		aU64(attrCtransid, 7))
}

func (s *sendStream) file(p, data string) *sendStream {
	return s.cmd(cmdMkfile, aStr(attrPath, p), s.nextIno()).cmd(cmdWrite, aStr(attrPath, p), aU64(attrOffset, 0), aStr(attrData, data))
}

func (s *sendStream) setuid(p string) *sendStream {
	return s.cmd(cmdChown, aStr(attrPath, p), aU64(attrUID, 0), aU64(attrGID, 0)).cmd(cmdChmod, aStr(attrPath, p), aU64(attrMode, 0o4755))
}

// nextIno is the inode attribute creating commands carry.
func (s *sendStream) nextIno() tlv {
	s.ino++
	return aU64(attrIno, 300+s.ino)
}

func (s *sendStream) bytes() []byte {
	s.cmd(cmdEnd)
	return s.buf.Bytes()
}

// sshStream sends a stream into c1 with a private key (whose forced
// command decides what runs) and returns the exit status and its output,
// stdout then stderr.
func sshStream(t *testing.T, key, command string, stream []byte) (int, string) {
	t.Helper()
	cmd := lab.ToolCmd(context.Background(), "ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile="+storage.KnownHosts,
		"-o", "StrictHostKeyChecking=yes", "-p", "2222", "root@"+storage.Host("c1").Addr, command)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	cmd.Stdin = bytes.NewReader(stream)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String() + stderr.String()
}

func (s *sendStream) symlink(p, to string) *sendStream {
	return s.cmd(cmdSymlink, aStr(attrPath, p), s.nextIno(), aStr(attrPathLink, to))
}
