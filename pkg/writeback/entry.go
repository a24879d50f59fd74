package writeback

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/castd/castd/pkg/digest"
)

// Kind is what an entry pushes.
type Kind uint8

// The kinds of queue entries.
const (
	// KindBlob pushes one CAS blob.
	KindBlob Kind = 1
	// KindActionResult pushes one action cache entry, after every blob it
	// references.
	KindActionResult Kind = 2
	// KindAsset pushes one Remote Asset association, after its content.
	KindAsset Kind = 3
)

// String returns "blob" or "action-result".
func (k Kind) String() string {
	switch k {
	case KindBlob:
		return "blob"
	case KindActionResult:
		return "action-result"
	case KindAsset:
		return "asset"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Entry is one pending push of one item to one remote.
type Entry struct {
	Kind Kind `json:"k"`
	// Digest is the blob, or the action digest of an action result, with
	// its digest function. Its JSON omits the function when it is
	// SHA-256, so a record written before castd knew other functions reads
	// back as SHA-256, and new SHA-256 records look the same.
	Digest digest.Digest `json:"d"`
	// Instance is the local action cache instance an action result is read
	// from; empty for blobs.
	Instance string `json:"i,omitempty"`
	// Asset is the association of a KindAsset entry.
	Asset *savedAsset `json:"a,omitempty"`
	// Remote is the target remote's name.
	Remote string `json:"r"`
	// Enqueued is when the entry was first recorded.
	Enqueued time.Time `json:"t"`
	// Attempts and NextTry are in-memory retry state (not persisted: a
	// restart retries at once).
	Attempts int       `json:"-"`
	NextTry  time.Time `json:"-"`

	seq      uint64
	inflight bool // handed to the worker; next skips it until finish
}

// identity is what makes two entries the same push; the queue keeps one.
type identity struct {
	kind     Kind
	d        digest.Digest
	instance string
	remote   string
	asset    string // savedAsset.key()
}

func (e *Entry) id() identity {
	id := identity{kind: e.Kind, d: e.Digest, instance: e.Instance, remote: e.Remote}
	if e.Asset != nil {
		id.asset = e.Asset.key()
	}
	return id
}

// seqKey is the record key: a big-endian sequence number, so that a scan
// returns entries in the order they were enqueued.
func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func encodeEntry(e *Entry) ([]byte, error) { return json.Marshal(e) }

func decodeEntry(key, value []byte) (*Entry, error) {
	if len(key) != 8 {
		return nil, fmt.Errorf("write-back record key %x: expected 8 bytes", key)
	}
	e := &Entry{}
	if err := json.Unmarshal(value, e); err != nil {
		return nil, fmt.Errorf("write-back record %x: %v", key, err)
	}
	e.seq = binary.BigEndian.Uint64(key)
	return e, nil
}
