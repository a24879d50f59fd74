// Package casdir is the blob store in the layout BuildStream 2 reads
// directly from disk: buildbox-casd's `<cachedir>/cas/objects/<hash[:2]>/<hash[2:]>`,
// one complete, read-only file per blob. castd serves it when it stands in
// for buildbox-casd; BuildStream hardlinks, copies and parses these files
// without asking the daemon, so the files themselves are the index: there
// is no database, and a directory written by the real buildbox-casd opens
// as it is.
//
// *Store implements store.CAS. It knows nothing of remotes, gRPC or
// BuildStream's own directories beside `cas/`.
//
// # Writing
//
// A blob is written to a temporary file in `cas/tmp` (on the objects'
// filesystem, so that publishing it is atomic), hashed as it is written, and made visible only
// when its SHA-256 and size match the digest: chmod 0444, then a hard link
// to its final name (rename where the filesystem has no hard links). A link
// never replaces an existing file, so a blob BuildStream has already
// hardlinked elsewhere is never touched, and the writer knows whether it
// added the blob (for the usage count). The empty blob is always present.
//
// The layout names a file by its hex hash alone, so it holds SHA-256
// blobs only (as buildbox-casd's does): a digest of another function is
// INVALID_ARGUMENT on a write, NOT_FOUND on a read and missing in
// FindMissing, never stored under, or answered by, a SHA-256 name.
//
// # Reading
//
// Get hashes every byte of the file, including any prefix before the
// offset, and withholds the last bytes of a blob whose hash does not
// match: the Read fails with DATA_LOSS and the file is removed. A file of
// the wrong size is removed at once and is NOT_FOUND.
//
// # Recency, quota and sessions
//
// A blob's mtime is its last use: Put, Get and FindMissing set it to now
// (the clock of Options.Now), and eviction removes the least recently used
// first; the files of a directory written by buildbox-casd bring their
// mtimes as their recency. (FindMissing, and a Put of a blob present,
// leave the time of a blob already used in this store's protecting
// session: it is protected anyway, and an lstat is much cheaper than an
// inode write.) When a Put would take the usage over QuotaHigh, or
// leave less than Reserved bytes free on the filesystem, an eviction pass
// brings the usage down to QuotaLow (and the free space up to Reserved).
// With ProtectSessionBlobs, a blob used since the start of a running
// session (written, read, or found by FindMissing) is never evicted; when
// only such blobs are left, Put fails with RESOURCE_EXHAUSTED, which
// BuildStream reports as "cache too full".
//
// # Several processes on one directory
//
// BuildStream starts one daemon per command, and two commands may overlap
// on one cache, so no process owns the directory. castd keeps its shared
// state under `cas/castd/`:
//   - `sessions/<start ns>.<pid>.<n>`: one file per running store with
//     ProtectSessionBlobs, flocked by its owner for its lifetime. A file
//     whose lock can be taken belongs to a process that has died and is
//     removed. Eviction protects every blob whose mtime is at or after the
//     oldest live session's start (less a second of clock slack).
//   - `usage`: the bytes stored, updated under an flock by every Put that
//     added a blob, every damaged file removed, and each pass. Each eviction pass recounts the
//     files and corrects it (a crash between link and count, or another
//     program writing objects, makes it drift until then).
//   - `evict.lock`: flocked for the length of a pass, so one pass runs at
//     a time across processes; a process that waited re-reads the usage and
//     does nothing if the pass before freed enough.
//   - `use.lock`: see below.
//
// A pass stats every object, then lists the live sessions (after the scan,
// so a session that touched a scanned blob before its stat is seen), then
// removes candidates oldest first. Uses and removals exclude each other
// through `use.lock`: FindMissing and a Put of a blob already present hold
// it shared while they touch the blobs they will report present; the pass
// holds it exclusively while it removes a batch, and skips a blob whose
// mtime changed since the scan. So a use that overlaps a pass either
// touched the blob before its batch (the pass keeps it) or finds it gone
// (and reports it missing): a pass never removes a blob it was not sure is
// unused, and a blob is never removed between its touch and the answer
// that reports it present. With ProtectSessionBlobs, the blobs reported
// present stay until the session ends: time-based, this protects every
// blob any process used since the oldest running session began, not only
// this session's own.
//
// Races accepted:
//   - A blob removed while another process reads it is still read to its
//     end (the open file stays valid), so a Get in progress is not cut off.
//   - A used blob whose mtime cannot change (another user's file, or a
//     filesystem with coarse timestamps used twice in one tick) is not
//     protected by its use. Wall clock steps backwards of more than the
//     slack may expose session blobs.
//   - The usage count is approximate between passes (see above); quota
//     decisions made on it are corrected by the next pass's recount.
package casdir
