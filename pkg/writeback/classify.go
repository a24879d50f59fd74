package writeback

import (
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// Role is the part of a remote a push uses: its CAS, its action cache or
// its Remote Asset API. A remote that refuses one role for good (say, an
// artifact server without UpdateActionResult) may still take the others.
type Role string

// The roles of a push target.
const (
	RoleCAS         Role = "cas"
	RoleActionCache Role = "action-cache"
	RoleAsset       Role = "asset"
)

// role is the role whose answer decides e: the content of action results
// and assets is pushed first, but a refusal there is the CAS role's.
func (k Kind) role() Role {
	switch k {
	case KindActionResult:
		return RoleActionCache
	case KindAsset:
		return RoleAsset
	}
	return RoleCAS
}

// remoteError is an answer of the remote in one role (as opposed to a
// failure reading the local copy).
type remoteError struct {
	role Role
	err  error
}

func (r remoteError) Error() string { return r.err.Error() }
func (r remoteError) Unwrap() error { return r.err }

// fromRemote labels err, when not nil, as the remote's answer in role.
func fromRemote(role Role, err error) error {
	if err == nil {
		return nil
	}
	return remoteError{role: role, err: err}
}

// message is err's status message, without the remote label.
func message(err error) string {
	var re remoteError
	if errors.As(err, &re) {
		err = re.err
	}
	return status.Convert(err).Message()
}

// refusal returns the role and code when err is a remote's answer that no
// retry can change (grpcclient.Permanent, the one classification shared with
// the read path): the remote lacks the API, denies us, or rejects the
// request. UNAUTHENTICATED counts only because the upstream client has
// already re-read the access token once before answering it. Every other
// code (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED,
// INTERNAL, UNKNOWN, ...) is transient and retried with backoff.
//
// A digest function the remote does not take (store.IsUnsupportedFunction)
// is no refusal of the role: only that entry is dropped (see finish).
func refusal(err error) (Role, codes.Code, bool) {
	var re remoteError
	if !errors.As(err, &re) || store.IsUnsupportedFunction(err) {
		return "", codes.OK, false
	}
	if c := status.Code(re.err); grpcclient.Permanent(c) {
		return re.role, c, true
	}
	return "", codes.OK, false
}

// parking is why a remote's role is parked: its entries stay queued (and
// on disk) but are not attempted until a restart, which is also what a
// configuration change takes.
type parking struct {
	code    codes.Code
	message string
	since   time.Time
}

// blocked reports whether e waits for a parked role of rq: its own, or for
// action results and assets the CAS role their content goes through. The
// caller holds mu.
func (rq *remoteQueue) blocked(e *Entry) bool {
	if _, ok := rq.parked[e.Kind.role()]; ok {
		return true
	}
	_, cas := rq.parked[RoleCAS]
	return cas && e.Kind != KindBlob
}

// park stops retries of role on rq, logging one warning per remote and
// role; the caller holds mu.
func (q *Queue) park(rq *remoteQueue, role Role, code codes.Code, err error) {
	if _, ok := rq.parked[role]; ok {
		return
	}
	msg := message(err)
	rq.parked[role] = parking{code: code, message: msg, since: q.opts.Clock.Now()}
	q.opts.Logger.Warn("write-back: remote refuses pushes; its entries of this role stay queued but are not retried until the configuration is reloaded or castd restarts",
		"remote", rq.name, "role", string(role), "code", code.String(), "err", msg)
}

// Unpark lets every parked role be retried again: the configuration
// changed (a reload), so a refusal for good may not hold any more. It
// returns how many roles were parked. Safe for concurrent use.
func (q *Queue) Unpark() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, rq := range q.remotes {
		if len(rq.parked) == 0 {
			continue
		}
		n += len(rq.parked)
		clear(rq.parked)
		select {
		case rq.wake <- struct{}{}:
		default:
		}
	}
	return n
}
