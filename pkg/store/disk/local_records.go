package disk

import (
	"encoding/binary"
	"errors"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Records is a durable key-value namespace inside the local store's index,
// for small metadata that must survive restarts with the store it describes:
// the write-back queue and the Remote Asset index. Keys are ordered
// byte-wise, so big-endian sequence numbers scan in order. A write is
// acknowledged once badger has it (it survives kill -9; see Local for power
// loss). Safe for concurrent use.
type Records struct {
	l      *Store
	prefix []byte // 'r', uvarint length, namespace
}

// Records returns the record namespace called name. Namespaces never see
// each other's keys.
func (l *Store) Records(name string) *Records {
	p := binary.AppendUvarint([]byte{'r'}, uint64(len(name)))
	return &Records{l: l, prefix: append(p, name...)}
}

func (r *Records) key(k []byte) []byte {
	return append(append(make([]byte, 0, len(r.prefix)+len(k)), r.prefix...), k...)
}

// Put stores value under key, replacing any previous value. It fails with
// the store's write error when its filesystem is full or it is read-only.
func (r *Records) Put(key, value []byte) error {
	if err := r.l.spaceFor(int64(len(value))); err != nil {
		return err
	}
	return r.l.db.Update(func(txn *badger.Txn) error { return txn.Set(r.key(key), value) })
}

// Get returns the value stored under key, or NOT_FOUND.
func (r *Records) Get(key []byte) ([]byte, error) {
	var out []byte
	err := r.l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(r.key(key))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, status.Errorf(codes.NotFound, "record %q not found", key)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "store %s: read record: %v", r.l.dir, err)
	}
	return out, nil
}

// Delete removes key; deleting a missing key is not an error.
func (r *Records) Delete(key []byte) error {
	return r.l.db.Update(func(txn *badger.Txn) error { return txn.Delete(r.key(key)) })
}

// Scan calls fn for every record in key order until fn returns an error,
// which Scan returns. fn must not keep key or value after it returns, and
// must not write to r (collect keys and write after Scan).
func (r *Records) Scan(fn func(key, value []byte) error) error {
	return r.l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: r.prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error { return fn(item.Key()[len(r.prefix):], v) })
			if err != nil {
				return err
			}
		}
		return nil
	})
}
