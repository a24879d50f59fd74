package disk

import (
	"context"
	"encoding/binary"
	"errors"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store"
)

// ActionCache returns the action cache of one instance name, stored in the
// same badger index. Entries of different instances never mix; the blobs
// they reference live in the shared CAS. Action results are small and are
// not counted against the quota nor evicted. Cheap; the result is safe for
// concurrent use and valid until Close.
func (l *Store) ActionCache(instance string) store.ActionCache {
	prefix := binary.AppendUvarint([]byte{'a'}, uint64(len(instance)))
	return &localAC{l: l, prefix: append(prefix, instance...)}
}

type localAC struct {
	l      *Store
	prefix []byte // 'a', uvarint length, instance name
}

func (a *localAC) key(action digest.Digest) ([]byte, error) {
	k, ok := keyOf(action)
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "action digest %s: malformed hash", action)
	}
	dk := k.dbKey(0)[1:]
	return append(append(make([]byte, 0, len(a.prefix)+len(dk)), a.prefix...), dk...), nil
}

// GetActionResult implements ActionCache: one badger read.
func (a *localAC) GetActionResult(_ context.Context, action digest.Digest) (*repb.ActionResult, error) {
	key, err := a.key(action)
	if err != nil {
		return nil, err
	}
	ar := &repb.ActionResult{}
	err = a.l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return proto.Unmarshal(v, ar) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, status.Errorf(codes.NotFound, "action result %s not found", action)
	}
	if err != nil {
		return nil, dbError("read action result "+action.String(), err)
	}
	return ar, nil
}

// UpdateActionResult implements ActionCache, replacing any previous entry.
func (a *localAC) UpdateActionResult(_ context.Context, action digest.Digest, result *repb.ActionResult) error {
	if result == nil {
		return status.Error(codes.InvalidArgument, "action_result is missing")
	}
	key, err := a.key(action)
	if err != nil {
		return err
	}
	val, err := proto.Marshal(result)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "action_result: cannot encode: %v", err)
	}
	if err := a.l.spaceFor(int64(len(val))); err != nil {
		return err
	}
	if err := a.l.db.Update(func(txn *badger.Txn) error { return txn.Set(key, val) }); err != nil {
		return dbError("write action result "+action.String(), err)
	}
	return nil
}
