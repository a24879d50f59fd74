package disk

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// Where a pack file is sealed and the next one begun: 64 MiB, or for a
// small quota a sixteenth of it (at least 64 KiB), so that compaction can
// reclaim space at a grain well below the quota.
const (
	maxPackSize = 64 << 20
	minPackSize = 64 << 10
)

func packSizeFor(quota int64) int64 {
	if quota <= 0 {
		return maxPackSize
	}
	return min(max(quota/16, minPackSize), maxPackSize)
}

// errPackGone is a read of a pack that compaction has removed (the blob has
// moved; look it up again).
var errPackGone = errors.New("pack file removed")

// packSet is the pack files holding small blobs: dir/packs/<n>.pack, each
// the plain bytes of blobs appended one after another. The index holds every
// blob's pack, offset and CRC, so a pack has no headers of its own.
//
// Appends come only from the committer's goroutine, a whole group commit at
// a time in one pwritev, before the group's index entries are written: an
// index entry never points at bytes not yet written, and bytes of a group
// that failed or was cut short by a crash are garbage no entry points at.
// The newest pack is the active one; once it reaches its size it is sealed
// and never written again, until compaction (see compactPacks) rewrites its
// live blobs elsewhere and removes it.
//
// Reads copy from a read-only shared mapping of the pack (pread where it
// cannot be mapped), safe alongside appends and removal: a read of a
// removed pack fails with errPackGone and the caller looks the blob up
// again.
type packSet struct {
	dir     string
	maxSize int64
	sync    bool

	mu     sync.RWMutex // guards files, active and nextID
	files  map[uint32]*packFile
	active *packFile
	nextID uint32
	disk   atomic.Int64 // bytes of every pack: Σ size
	live   atomic.Int64 // bytes of indexed blobs in packs: Σ live
	// saveNext persists the lowest pack number never used, before a pack
	// of that number is created: numbers are never reused, so an index
	// entry of a pack lost in a crash never points into a newer one.
	saveNext func(uint32) error
}

// packFile is one open pack.
type packFile struct {
	id   uint32
	path string
	f    *os.File
	size atomic.Int64 // bytes appended: the offset of the next append
	live atomic.Int64 // bytes of blobs the index points at

	mu   sync.RWMutex // readers of data hold it shared; unmap exclusively
	data []byte       // read-only shared mapping of the pack; nil once closed
}

// nextPackKey is the badger key of the lowest pack number never used.
var nextPackKey = []byte{'p'}

// openPacks opens dir/packs with the persisted pack number.
func (l *Store) openPacks(size int64) (*packSet, error) {
	if size <= 0 {
		size = packSizeFor(l.quota.Load())
	}
	var next uint32
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(nextPackKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) == 4 {
				next = binary.BigEndian.Uint32(v)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read pack number: %w", err)
	}
	save := func(n uint32) error {
		return l.db.Update(func(txn *badger.Txn) error {
			return txn.Set(nextPackKey, binary.BigEndian.AppendUint32(nil, n))
		})
	}
	if l.readOnly {
		save = func(uint32) error { return nil } // no pack is written to; see errReadOnly
	}
	return openPacks(filepath.Join(l.dir, "packs"), size, l.syncWrites, next, save)
}

func packName(id uint32) string { return fmt.Sprintf("%010d.pack", id) }

func parsePackName(name string) (uint32, bool) {
	num, ok := strings.CutSuffix(name, ".pack")
	id, err := strconv.ParseUint(num, 10, 32)
	return uint32(id), ok && err == nil && id > 0 && packName(uint32(id)) == name
}

// openPacks opens every pack in dir (creating dir if needed) and makes the
// newest one the active pack, or starts a new one when it is full. next is
// the persisted lowest unused pack number (0 if none); see saveNext.
func openPacks(dir string, maxSize int64, sync bool, next uint32, saveNext func(uint32) error) (*packSet, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	ps := &packSet{dir: dir, maxSize: maxSize, sync: sync, files: map[uint32]*packFile{}, nextID: max(next, 1), saveNext: saveNext}
	for _, de := range names {
		id, ok := parsePackName(de.Name())
		if !ok {
			continue
		}
		pf, err := ps.openFile(id, os.O_RDWR)
		if err != nil {
			ps.close()
			return nil, err
		}
		ps.files[id] = pf
		ps.nextID = max(ps.nextID, id+1)
	}
	if newest := ps.newest(); newest != nil && newest.size.Load() < maxSize {
		ps.active = newest
	} else if err := ps.roll(); err != nil {
		ps.close()
		return nil, err
	}
	return ps, nil
}

func (ps *packSet) newest() *packFile {
	var n *packFile
	for id, pf := range ps.files {
		if n == nil || id > n.id {
			n = pf
		}
	}
	return n
}

func (ps *packSet) openFile(id uint32, flag int) (*packFile, error) {
	path := filepath.Join(ps.dir, packName(id))
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, ioError("open pack", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, ioError("stat pack", path, err)
	}
	pf := &packFile{id: id, path: path, f: f}
	pf.size.Store(st.Size())
	ps.disk.Add(st.Size())
	// Mapped once at its final size, so appends need no remapping. Bytes
	// are read from the mapping only below size (appended, hence inside
	// the file); without a mapping reads fall back to pread.
	if data, err := unix.Mmap(int(f.Fd()), 0, int(max(ps.maxSize, st.Size())), unix.PROT_READ, unix.MAP_SHARED); err == nil {
		pf.data = data
	}
	return pf, nil
}

// close unmaps and closes the pack, once no read is copying from it.
func (pf *packFile) close() {
	pf.mu.Lock()
	if pf.data != nil {
		_ = unix.Munmap(pf.data)
		pf.data = nil
	}
	pf.mu.Unlock()
	_ = pf.f.Close()
}

// roll seals the active pack and starts a new one.
func (ps *packSet) roll() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err := ps.saveNext(ps.nextID + 1); err != nil {
		return fmt.Errorf("record pack number: %w", err)
	}
	pf, err := ps.openFile(ps.nextID, os.O_RDWR|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	if ps.sync {
		syncDir(ps.dir)
	}
	ps.files[pf.id] = pf
	ps.active = pf
	ps.nextID++
	return nil
}

// place appends the blobs of a group commit and records where each one
// went (r.e.pack, r.e.off); a roll request seals the active pack. Called
// only by the committer's goroutine. On error the group must fail: some of
// its bytes may be written, but no index entry will point at them.
func (ps *packSet) place(group []*commitReq) error {
	pf := ps.activePack()
	off := pf.size.Load()
	var iovs [][]byte
	flush := func() error {
		if len(iovs) == 0 {
			return nil
		}
		n, err := pwriteAll(pf, iovs, pf.size.Load())
		pf.size.Add(n) // short writes leave garbage, never a gap
		ps.disk.Add(n)
		iovs = iovs[:0]
		return err
	}
	for _, r := range group {
		if r.blob == nil && !r.roll {
			continue
		}
		if off > 0 && (r.roll || off+int64(len(r.blob)) > ps.maxSize) {
			if err := flush(); err != nil {
				return err
			}
			if err := ps.sealAndRoll(pf); err != nil {
				return err
			}
			pf, off = ps.activePack(), 0
		}
		if r.blob == nil {
			continue // a roll
		}
		r.e.pack, r.e.off = pf.id, uint32(off)
		iovs = append(iovs, r.blob)
		off += int64(len(r.blob))
	}
	wrote := off > pf.size.Load()
	if err := flush(); err != nil {
		return err
	}
	if ps.sync && wrote {
		return ps.syncActive()
	}
	return nil
}

func (ps *packSet) activePack() *packFile {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return ps.active
}

// sealAndRoll syncs a full pack (with SyncWrites) before moving on.
func (ps *packSet) sealAndRoll(pf *packFile) error {
	if ps.sync {
		if err := unix.Fdatasync(int(pf.f.Fd())); err != nil {
			return ioError("sync pack", pf.path, err)
		}
	}
	return ps.roll()
}

// syncActive makes the bytes just written durable; with SyncWrites only.
func (ps *packSet) syncActive() error {
	pf := ps.activePack()
	if err := unix.Fdatasync(int(pf.f.Fd())); err != nil {
		return ioError("sync pack", pf.path, err)
	}
	return nil
}

// pwriteAll writes iovs at off in as few pwritev calls as the kernel
// allows and returns how many bytes it wrote.
func pwriteAll(pf *packFile, iovs [][]byte, off int64) (int64, error) {
	const iovMax = 1024
	var total int64
	fd := int(pf.f.Fd())
	for len(iovs) > 0 {
		n, err := unix.Pwritev(fd, iovs[:min(len(iovs), iovMax)], off+total)
		if n > 0 { // -1 on error: counted, it would move the next append back a byte
			total += int64(n)
		}
		if err == unix.EINTR {
			err = nil
		}
		if err != nil {
			return total, ioError("write pack", pf.path, err)
		}
		if n == 0 {
			return total, ioError("write pack", pf.path, io.ErrShortWrite)
		}
		iovs = advance(iovs, n)
	}
	return total, nil
}

// advance drops the first n bytes of iovs.
func advance(iovs [][]byte, n int) [][]byte {
	for n > 0 && len(iovs) > 0 {
		if n < len(iovs[0]) {
			iovs[0] = iovs[0][n:]
			return iovs
		}
		n -= len(iovs[0])
		iovs = iovs[1:]
	}
	return iovs
}

// read returns a copy of n bytes of pack id at off. A pack removed since
// the caller looked the blob up is errPackGone; bytes missing from a pack
// that exists (cut short by a power loss, say) are io.ErrUnexpectedEOF.
func (ps *packSet) read(id, off uint32, n int64) ([]byte, error) {
	ps.mu.RLock()
	pf := ps.files[id]
	ps.mu.RUnlock()
	if pf == nil {
		return nil, errPackGone
	}
	end := int64(off) + n
	if end > pf.size.Load() {
		return nil, io.ErrUnexpectedEOF
	}
	pf.mu.RLock()
	defer pf.mu.RUnlock()
	switch {
	case end <= int64(len(pf.data)):
		return copyMapped(pf.data[off:end])
	}
	buf := make([]byte, n)
	_, err := pf.f.ReadAt(buf, int64(off))
	switch {
	case errors.Is(err, os.ErrClosed):
		return nil, errPackGone
	case errors.Is(err, io.EOF):
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	return buf, nil
}

// copyMapped copies mapped bytes. Should the file have been cut short
// behind the store's back, the fault is an error for this read, not a
// crash of the daemon.
func copyMapped(src []byte) (out []byte, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			out, err = nil, io.ErrUnexpectedEOF
		}
	}()
	return append([]byte(nil), src...), nil
}

// holds reports whether pack id exists with at least end bytes.
func (ps *packSet) holds(id uint32, end int64) bool {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	pf := ps.files[id]
	return pf != nil && pf.size.Load() >= end
}

// account adds delta to the live bytes of pack id, if it exists.
func (ps *packSet) account(id uint32, delta int64) {
	ps.mu.RLock()
	pf := ps.files[id]
	ps.mu.RUnlock()
	if pf != nil {
		pf.live.Add(delta)
		ps.live.Add(delta)
	}
}

// garbage is the bytes of packs that no index entry points at: deleted
// blobs not yet compacted away, and appends a crash or a failed write left.
func (ps *packSet) garbage() int64 { return max(ps.disk.Load()-ps.live.Load(), 0) }

// mostlyGarbage reports whether pf's live bytes are at most compactRatio
// of its size.
func mostlyGarbage(pf *packFile) bool {
	return float64(pf.live.Load()) <= compactRatio*float64(pf.size.Load())
}

// sparse returns the sealed packs that are mostly garbage, emptiest first.
func (ps *packSet) sparse() []*packFile {
	return ps.sealed(mostlyGarbage, func(pf *packFile) int64 { return pf.live.Load() })
}

// worthForcing reports whether pf holds enough garbage (forcedGarbage of
// its size) to be compacted under pressure, when it is not mostly garbage.
func worthForcing(pf *packFile) bool {
	size := pf.size.Load()
	return size > 0 && float64(size-pf.live.Load()) >= forcedGarbage*float64(size)
}

// forcing returns the sealed packs worth compacting under pressure
// (worthForcing), the most garbage first.
func (ps *packSet) forcing() []*packFile {
	return ps.sealed(worthForcing, func(pf *packFile) int64 { return pf.live.Load() - pf.size.Load() })
}

// sealed returns the sealed packs for which keep holds, in increasing
// order of key.
func (ps *packSet) sealed(keep func(*packFile) bool, key func(*packFile) int64) []*packFile {
	ps.mu.RLock()
	var out []*packFile
	for _, pf := range ps.files {
		if pf != ps.active && keep(pf) {
			out = append(out, pf)
		}
	}
	ps.mu.RUnlock()
	slices.SortFunc(out, func(a, b *packFile) int { return cmp.Compare(key(a), key(b)) })
	return out
}

// remove deletes a sealed pack. Reads still in flight fail with
// errPackGone.
func (ps *packSet) remove(pf *packFile) error {
	ps.mu.Lock()
	if ps.files[pf.id] != pf || ps.active == pf {
		ps.mu.Unlock()
		return nil
	}
	delete(ps.files, pf.id)
	ps.mu.Unlock()
	ps.disk.Add(-pf.size.Load())
	ps.live.Add(-pf.live.Load())
	pf.close()
	if err := os.Remove(pf.path); err != nil && !os.IsNotExist(err) {
		return ioError("remove pack", pf.path, err)
	}
	return nil
}

// diskBytes is the size of every pack, garbage included.
func (ps *packSet) diskBytes() int64 { return ps.disk.Load() }

func (ps *packSet) close() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, pf := range ps.files {
		pf.close()
	}
}
