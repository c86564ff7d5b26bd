package replicate

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// How btrfs receive finds a subvolume a stream names by UUID: in the
// filesystem's UUID tree, under the received UUID first and then the
// UUID, taking the first (oldest) subvolume listed, wherever it is. A
// stream chooses its own subvolume's UUID, which becomes that
// subvolume's received UUID: one that an older subvolume outside the dir
// already has would let a later stream reach that subvolume through the
// planted one. So the filter asks the tree itself (linux/btrfs.h,
// linux/btrfs_tree.h).
const (
	// _IOWR(0x94, 17, struct btrfs_ioctl_search_args[4096])
	iocTreeSearch         = 3<<30 | 4096<<16 | 0x94<<8 | 17
	uuidTreeObjectID      = 9
	uuidKeySubvol         = 251
	uuidKeyReceivedSubvol = 252
	searchKeySize         = 104
	searchHeaderSize      = 32
)

// uuidTreeIDs is the subvolume ids the UUID tree of fd's filesystem lists
// for u under key type typ (uuidKeySubvol or uuidKeyReceivedSubvol).
func uuidTreeIDs(fd int, u [16]byte, typ uint32) ([]uint64, error) {
	var args [4096]byte
	ne := binary.NativeEndian
	objectid, offset := binary.LittleEndian.Uint64(u[:8]), binary.LittleEndian.Uint64(u[8:])
	ne.PutUint64(args[0:], uuidTreeObjectID)
	ne.PutUint64(args[8:], objectid)  // min_objectid
	ne.PutUint64(args[16:], objectid) // max_objectid
	ne.PutUint64(args[24:], offset)   // min_offset
	ne.PutUint64(args[32:], offset)   // max_offset
	ne.PutUint64(args[40:], 0)        // min_transid
	ne.PutUint64(args[48:], ^uint64(0))
	ne.PutUint32(args[56:], typ) // min_type
	ne.PutUint32(args[60:], typ) // max_type
	ne.PutUint32(args[64:], 16)  // nr_items
	if err := ioctl(fd, iocTreeSearch, unsafe.Pointer(&args[0])); err != nil {
		return nil, fmt.Errorf("searching the UUID tree: %w", err)
	}
	var ids []uint64
	buf := args[searchKeySize:]
	for i, n := 0, int(ne.Uint32(args[64:])); i < n; i++ {
		if len(buf) < searchHeaderSize {
			return nil, fmt.Errorf("searching the UUID tree: a cut item header")
		}
		obj, off, t, l := ne.Uint64(buf[8:]), ne.Uint64(buf[16:]), ne.Uint32(buf[24:]), int(ne.Uint32(buf[28:]))
		buf = buf[searchHeaderSize:]
		if l > len(buf) || l%8 != 0 {
			return nil, fmt.Errorf("searching the UUID tree: an item of %d bytes", l)
		}
		if obj == objectid && off == offset && t == typ {
			for j := 0; j < l; j += 8 {
				ids = append(ids, binary.LittleEndian.Uint64(buf[j:]))
			}
		}
		buf = buf[l:]
	}
	return ids, nil
}

// taken reports whether u is already the UUID or the received UUID of a
// subvolume anywhere on d's filesystem.
func (d *targetDir) taken(u [16]byte) (bool, error) {
	for _, typ := range []uint32{uuidKeyReceivedSubvol, uuidKeySubvol} {
		ids, err := uuidTreeIDs(d.fd, u, typ)
		if err != nil || len(ids) > 0 {
			return len(ids) > 0, err
		}
	}
	return false, nil
}

// resolvesInDir reports whether receive, looking u up, can only find a
// subvolume directly in d: there is one, and every subvolume the UUID
// tree lists for u, as a received UUID or a UUID, is directly in d.
func (d *targetDir) resolvesInDir(u [16]byte) (bool, error) {
	if d.ids == nil {
		subs, err := d.subvolumes()
		if err != nil {
			return false, err
		}
		d.ids = map[uint64]bool{}
		for _, s := range subs {
			d.ids[s.TreeID] = true
		}
	}
	found := false
	for _, typ := range []uint32{uuidKeyReceivedSubvol, uuidKeySubvol} {
		ids, err := uuidTreeIDs(d.fd, u, typ)
		if err != nil {
			return false, err
		}
		for _, id := range ids {
			if !d.ids[id] {
				return false, nil
			}
			found = true
		}
	}
	return found, nil
}
