package execution

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store"
)

// maxAnswerExcerpt bounds how much of the execution service's answer a
// learned refusal quotes.
const maxAnswerExcerpt = 120

// learnedPlatforms remembers, per instance, platforms the execution service
// refused with a FAILED_PRECONDITION that was not about missing blobs, so
// later actions with the same platform fail early (or fall back) instead of
// uploading their inputs to be refused again. An entry is the whole
// platform, or a single property when the refusal named one. Entries live
// for ttl, at most max of them (the oldest go first). Safe for concurrent
// use; every operation is O(1) amortized, lookups O(properties).
type learnedPlatforms struct {
	now func() time.Time
	ttl time.Duration
	max int

	mu      sync.Mutex
	byKey   map[learnedKey]*learnedEntry
	order   []*learnedEntry // oldest first: the ttl is fixed, so also by expiry
	perInst map[string]int
}

// learnedKey is an instance (castd's instance name and the remote's) and
// a canonical platform or "name=value" property.
type learnedKey struct{ instance, platform string }

// learnedEntry is one remembered refusal.
type learnedEntry struct {
	key     learnedKey
	what    string // "name=value, ..." as the client wrote it, sorted
	single  bool   // what is one property the refusal named
	answer  string // excerpt of the execution service's message
	expires time.Time
}

// learnPlatform remembers j's platform as one its instance's execution
// service cannot satisfy, when answer (the service's FAILED_PRECONDITION)
// qualifies; see learnedPlatforms.learn.
func (s *Server) learnPlatform(ctx context.Context, j *job, answer error) {
	p, err := platformOf(ctx, j)
	if err != nil {
		s.cfg.Logger.Warn("execution: cannot read the platform of a refused action", "action", j.digest, "err", err)
		return
	}
	if e, ok := s.learned.learn(learnedInstance(j), p, answer); ok {
		s.cfg.Logger.Warn("execution: the execution service refused a platform; failing it early for a while",
			"instance", j.req.GetInstanceName(), "platform", e.what, "for", LearnedPlatformTTL, "answer", e.answer)
	}
}

// learnedInstance keys what is learned: castd's instance and the
// execution service's instance it maps to.
func learnedInstance(j *job) string {
	return j.req.GetInstanceName() + "\x00" + j.plan.RemoteInstance
}

func newLearnedPlatforms(now func() time.Time, ttl time.Duration, max int) *learnedPlatforms {
	return &learnedPlatforms{now: now, ttl: ttl, max: max,
		byKey: map[learnedKey]*learnedEntry{}, perInst: map[string]int{}}
}

// any reports whether anything is remembered for instance, so that the
// platform need not be read (a Command read for REAPI 2.0 clients) when
// nothing could match.
func (l *learnedPlatforms) any(instance string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune()
	return l.perInst[instance] > 0
}

// lookup returns the unexpired refusal matching p: the whole platform, or
// one of its properties.
func (l *learnedPlatforms) lookup(instance string, p *repb.Platform) (*learnedEntry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune()
	if e := l.byKey[learnedKey{instance, platformKey(p)}]; e != nil {
		return e, true
	}
	for _, prop := range p.GetProperties() {
		if e := l.byKey[learnedKey{instance, propertyKey(prop)}]; e != nil {
			return e, true
		}
	}
	return nil, false
}

// learn remembers that instance's execution service refused p with answer,
// if answer is a FAILED_PRECONDITION that lists no missing blobs and p is
// not empty (an empty platform asks nothing the service could lack). It
// reports the entry it added, if any.
func (l *learnedPlatforms) learn(instance string, p *repb.Platform, answer error) (*learnedEntry, bool) {
	st := status.Convert(answer)
	if answer == nil || st.Code() != codes.FailedPrecondition || len(store.MissingBlobsIn(answer)) > 0 || len(p.GetProperties()) == 0 {
		return nil, false
	}
	e := &learnedEntry{key: learnedKey{instance, platformKey(p)}, what: platformString(p),
		answer: excerpt(st.Message()), expires: l.now().Add(l.ttl)}
	if prop := namedProperty(st, p); prop != nil {
		e.key.platform, e.what, e.single = propertyKey(prop), prop.GetName()+"="+prop.GetValue(), true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune()
	if l.byKey[e.key] != nil {
		return nil, false // a concurrent refusal taught it already
	}
	l.byKey[e.key] = e
	l.order = append(l.order, e)
	l.perInst[instance]++
	for len(l.order) > l.max {
		l.drop()
	}
	return e, true
}

// prune forgets expired entries. l.mu must be held.
func (l *learnedPlatforms) prune() {
	now := l.now()
	for len(l.order) > 0 && !now.Before(l.order[0].expires) {
		l.drop()
	}
}

// drop forgets the oldest entry. l.mu must be held.
func (l *learnedPlatforms) drop() {
	e := l.order[0]
	l.order[0] = nil
	l.order = l.order[1:]
	delete(l.byKey, e.key)
	if l.perInst[e.key.instance]--; l.perInst[e.key.instance] <= 0 {
		delete(l.perInst, e.key.instance)
	}
}

// err is the early FAILED_PRECONDITION for an action whose platform
// matches e.
func (e *learnedEntry) err() error {
	kind := "platform"
	if e.single {
		kind = "platform property"
	}
	return platformFailure(e.what, "learned from the execution service's earlier FAILED_PRECONDITION",
		"%s %s is not supported by the execution service (learned from its earlier answer %q)", kind, e.what, e.answer)
}

// namedProperty returns the one property of p that the PreconditionFailure
// violations of st name as their subject ("OSFamily", "OSFamily=windows",
// "platform:OSFamily"), or nil when they name none or several.
func namedProperty(st *status.Status, p *repb.Platform) *repb.Platform_Property {
	var found *repb.Platform_Property
	for _, det := range st.Details() {
		pf, _ := det.(*errdetails.PreconditionFailure)
		for _, v := range pf.GetViolations() {
			subject := v.GetSubject()
			for _, prefix := range []string{"platform:", "platform.", "platform/"} {
				subject = strings.TrimPrefix(subject, prefix)
			}
			for _, prop := range p.GetProperties() {
				if subject != prop.GetName() && subject != prop.GetName()+"="+prop.GetValue() {
					continue
				}
				if found != nil && found != prop {
					return nil
				}
				found = prop
			}
		}
	}
	return found
}

// sortedProperties returns p's properties sorted by name then value,
// without touching the client's message.
func sortedProperties(p *repb.Platform) []*repb.Platform_Property {
	props := slices.Clone(p.GetProperties())
	slices.SortFunc(props, func(a, b *repb.Platform_Property) int {
		if c := strings.Compare(a.GetName(), b.GetName()); c != 0 {
			return c
		}
		return strings.Compare(a.GetValue(), b.GetValue())
	})
	return props
}

// platformKey is an unambiguous canonical form of p.
func platformKey(p *repb.Platform) string {
	var b strings.Builder
	b.WriteString("platform:")
	for _, prop := range sortedProperties(p) {
		b.WriteString(strconv.Quote(prop.GetName()) + "=" + strconv.Quote(prop.GetValue()) + ",")
	}
	return b.String()
}

// propertyKey is an unambiguous form of one property, distinct from any
// platformKey.
func propertyKey(prop *repb.Platform_Property) string {
	return "property:" + strconv.Quote(prop.GetName()) + "=" + strconv.Quote(prop.GetValue())
}

// platformString is p as "name=value, name=value" for messages.
func platformString(p *repb.Platform) string {
	parts := make([]string, 0, len(p.GetProperties()))
	for _, prop := range sortedProperties(p) {
		parts = append(parts, prop.GetName()+"="+prop.GetValue())
	}
	return strings.Join(parts, ", ")
}

// excerpt shortens msg to at most maxAnswerExcerpt bytes, on a rune boundary.
func excerpt(msg string) string {
	if len(msg) <= maxAnswerExcerpt {
		return msg
	}
	cut := maxAnswerExcerpt
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}
