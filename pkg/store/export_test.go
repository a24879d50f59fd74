package store

import (
	"github.com/dgraph-io/badger/v4"

	"github.com/castd/castd/pkg/digest"
)

// CorruptInlineForTest overwrites the stored value of an inline blob,
// bypassing verification, to simulate disk corruption (or an earlier layout).
func CorruptInlineForTest(l *Local, d digest.Digest, val []byte) error {
	k, _ := keyOf(d)
	return l.db.Update(func(txn *badger.Txn) error { return txn.Set(k.dbKey('d'), val) })
}

// BlobPathForTest returns where a file blob lives.
func BlobPathForTest(l *Local, d digest.Digest) string {
	k, _ := keyOf(d)
	return l.blobPath(k)
}

// SetBeforeCommitForTest installs (or, with nil, removes) a hook that runs
// before each group commit of index writes with the group's size; an error
// from it fails the whole group.
func SetBeforeCommitForTest(l *Local, hook func(n int) error) {
	if hook == nil {
		l.commits.beforeCommit.Store(nil)
		return
	}
	l.commits.beforeCommit.Store(&hook)
}

// QueuedCommitsForTest is how many Puts wait for the next group commit.
func QueuedCommitsForTest(l *Local) int { return l.commits.queued() }
