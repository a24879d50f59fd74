package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	castdpb "github.com/castd/castd/api/castd/v1"
)

// statusJSON is the --json shape of bst status. Sizes are bytes, durations
// seconds; lists are [] rather than null.
type statusJSON struct {
	Running       bool     `json:"running"`
	Socket        string   `json:"socket"`
	Error         string   `json:"error,omitempty"`
	Version       string   `json:"version,omitempty"`
	StartTime     string   `json:"start_time,omitempty"`
	UptimeSeconds float64  `json:"uptime_seconds"`
	Listeners     []string `json:"listeners"`
	// ConfigFile is the file castd loaded, "" on the built-in defaults.
	ConfigFile string `json:"config_file"`
	// MetricsURL is where /metrics is served, "" when disabled.
	MetricsURL string       `json:"metrics_url"`
	Store      storeJSON    `json:"store"`
	Local      countersJSON `json:"local"`
	// ActionCache counts action-cache lookups since start, in any tier.
	ActionCache ratioJSON      `json:"action_cache"`
	Instances   []instanceJSON `json:"instances"`
	Remotes     []remoteJSON   `json:"remotes"`
	Queue       queueJSON      `json:"queue"`
}

// ratioJSON is counters with their hit ratio (0..1), null before the
// first lookup.
type ratioJSON struct {
	Hits     int64    `json:"hits"`
	Misses   int64    `json:"misses"`
	HitRatio *float64 `json:"hit_ratio"`
}

// instanceJSON is one instance name and the names of the remotes it reads
// from (remoteJSON.Name), in pull order.
type instanceJSON struct {
	Name    string   `json:"name"`
	Remotes []string `json:"remotes"`
}

type storeJSON struct {
	Dir            string `json:"dir"`
	UsedBytes      int64  `json:"used_bytes"`
	QuotaBytes     int64  `json:"quota_bytes"`
	Objects        int64  `json:"objects"`
	Evictions      int64  `json:"evictions"`
	VerifyFailures int64  `json:"verify_failures"`
	// WritesRefused is why the store refuses writes, "" while it accepts
	// them.
	WritesRefused string `json:"writes_refused"`
}

type countersJSON struct {
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
}

type remoteJSON struct {
	Name         string       `json:"name"`
	URL          string       `json:"url"`
	InstanceName string       `json:"instance_name"`
	Roles        []string     `json:"roles"`
	Origin       string       `json:"origin"`
	Push         bool         `json:"push"`
	Health       string       `json:"health"`
	Breaker      string       `json:"breaker"`
	LastError    string       `json:"last_error"`
	Counters     countersJSON `json:"counters"`
	QueueDepth   int64        `json:"queue_depth"`
	RoleHealth   []roleJSON   `json:"role_health"`
}

// roleJSON is the health of one role (cas, action-cache, asset) of a remote.
type roleJSON struct {
	Role      string `json:"role"`
	Health    string `json:"health"`
	Breaker   string `json:"breaker"`
	LastError string `json:"last_error,omitempty"`
	Code      string `json:"code,omitempty"`
}

type queueJSON struct {
	Depth            int64        `json:"depth"`
	OldestAgeSeconds float64      `json:"oldest_age_seconds"`
	Failures         int64        `json:"failures"`
	Completed        int64        `json:"completed"`
	HeldBytes        int64        `json:"held_bytes"`
	Parked           []parkedJSON `json:"parked"`
}

// parkedJSON is a push remote's role that refused pushes for good.
type parkedJSON struct {
	Remote  string `json:"remote"`
	Role    string `json:"role"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Entries int64  `json:"entries"`
	Since   string `json:"since"`
}

func newStatusCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show whether castd runs, its store, counters, remotes and write-back queue",
		Example: "  bst status\n  bst status --json | jq .store.used_bytes",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.status(cmd.Context(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (shape in the README)")
	return cmd
}

// status prints Control.Status; when castd cannot be reached, --json still
// prints {"running": false, ...} before failing.
func (a *app) status(ctx context.Context, asJSON bool) error {
	resp, err := a.fetchStatus(ctx)
	if err != nil {
		if asJSON {
			_ = writeJSON(a.stdout, statusJSON{Socket: a.socketPath(), Error: message(err), Listeners: []string{}, Instances: []instanceJSON{}, Remotes: []remoteJSON{}})
		}
		return err
	}
	if asJSON {
		return writeJSON(a.stdout, toStatusJSON(a.conn.socket, resp))
	}
	writeStatusText(a.stdout, resp)
	return nil
}

func (a *app) fetchStatus(ctx context.Context) (*castdpb.StatusResponse, error) {
	c, err := a.connect()
	if err != nil {
		return nil, err
	}
	return c.control().Status(ctx, &castdpb.StatusRequest{})
}

// toStatusJSON converts the response into the documented JSON shape.
func toStatusJSON(socket string, r *castdpb.StatusResponse) statusJSON {
	s := statusJSON{
		Running: true, Socket: socket, Version: r.GetVersion(),
		UptimeSeconds: r.GetUptime().AsDuration().Seconds(),
		Listeners:     append([]string{}, r.GetListeners()...),
		ConfigFile:    r.GetConfigFile(), MetricsURL: r.GetMetricsUrl(),
		Local:       counters(r.GetLocal()),
		ActionCache: ratio(r.GetActionCache()),
		Instances:   []instanceJSON{},
		Remotes:     []remoteJSON{},
	}
	for _, in := range r.GetInstances() {
		s.Instances = append(s.Instances, instanceJSON{Name: in.GetName(), Remotes: append([]string{}, in.GetRemotes()...)})
	}
	if r.GetStartTime() != nil {
		s.StartTime = r.GetStartTime().AsTime().UTC().Format(time.RFC3339)
	}
	st := r.GetStore()
	s.Store = storeJSON{Dir: st.GetDir(), UsedBytes: st.GetUsedBytes(), QuotaBytes: st.GetQuotaBytes(),
		Objects: st.GetObjects(), Evictions: st.GetEvictions(), VerifyFailures: st.GetVerifyFailures(),
		WritesRefused: st.GetWritesRefused()}
	q := r.GetQueue()
	s.Queue = queueJSON{Depth: q.GetDepth(), OldestAgeSeconds: q.GetOldestAge().AsDuration().Seconds(),
		Failures: q.GetFailures(), Completed: q.GetCompleted(), HeldBytes: q.GetHeldBytes(), Parked: []parkedJSON{}}
	for _, p := range q.GetParked() {
		s.Queue.Parked = append(s.Queue.Parked, parkedJSON{Remote: p.GetRemote(), Role: p.GetRole(), Code: p.GetCode(),
			Message: p.GetMessage(), Entries: p.GetEntries(), Since: p.GetSince().AsTime().UTC().Format(time.RFC3339)})
	}
	for _, rm := range r.GetRemotes() {
		roles := []roleJSON{}
		for _, h := range rm.GetRoleHealth() {
			roles = append(roles, roleJSON{Role: h.GetRole(), Health: h.GetHealth(), Breaker: h.GetBreaker(), LastError: h.GetLastError(), Code: h.GetCode()})
		}
		s.Remotes = append(s.Remotes, remoteJSON{
			Name: rm.GetName(), URL: rm.GetUrl(), InstanceName: rm.GetInstanceName(), Roles: append([]string{}, rm.GetRoles()...),
			Origin: rm.GetOrigin(), Push: rm.GetPush(), Health: rm.GetHealth(), Breaker: rm.GetBreaker(),
			LastError: rm.GetLastError(), Counters: counters(rm.GetCounters()), QueueDepth: rm.GetQueueDepth(),
			RoleHealth: roles,
		})
	}
	return s
}

func counters(c *castdpb.CacheCounters) countersJSON {
	return countersJSON{Hits: c.GetHits(), Misses: c.GetMisses()}
}

func ratio(c *castdpb.CacheCounters) ratioJSON {
	out := ratioJSON{Hits: c.GetHits(), Misses: c.GetMisses()}
	if n := c.GetHits() + c.GetMisses(); n > 0 {
		r := float64(c.GetHits()) / float64(n)
		out.HitRatio = &r
	}
	return out
}

// writeStatusText prints the status for people.
func writeStatusText(w io.Writer, r *castdpb.StatusResponse) {
	fmt.Fprintf(w, "castd %s: running, up %s\n", r.GetVersion(), r.GetUptime().AsDuration().Round(time.Second))
	fmt.Fprintf(w, "listeners:  %s\n", strings.Join(r.GetListeners(), ", "))
	fmt.Fprintf(w, "config:     %s\n", orText(r.GetConfigFile(), "none (built-in defaults)"))
	fmt.Fprintf(w, "metrics:    %s\n", orText(r.GetMetricsUrl(), "disabled"))
	st := r.GetStore()
	fmt.Fprintf(w, "store:      %s of %s (%s) in %s, %d objects, %d evictions, %d verify failures\n",
		humanBytes(st.GetUsedBytes()), humanBytes(st.GetQuotaBytes()), percent(st.GetUsedBytes(), st.GetQuotaBytes()),
		st.GetDir(), st.GetObjects(), st.GetEvictions(), st.GetVerifyFailures())
	if why := st.GetWritesRefused(); why != "" {
		fmt.Fprintf(w, "  writes refused: %s (stored blobs and cold reads from remotes are still served, without storing)\n", why)
	}
	fmt.Fprintf(w, "local:      %s\n", hitsText(r.GetLocal()))
	fmt.Fprintf(w, "action cache: %s since start\n", hitsText(r.GetActionCache()))
	q := r.GetQueue()
	fmt.Fprintf(w, "write-back: %d pending (oldest %s), %d done, %d failed attempts, %s held in the store\n",
		q.GetDepth(), q.GetOldestAge().AsDuration().Round(time.Second), q.GetCompleted(), q.GetFailures(), humanBytes(q.GetHeldBytes()))
	for _, p := range q.GetParked() {
		fmt.Fprintf(w, "  parked:   %s %s refused with %s (%d entries kept, retried after a restart): %s\n",
			p.GetRemote(), p.GetRole(), p.GetCode(), p.GetEntries(), p.GetMessage())
	}
	if len(r.GetRemotes()) == 0 {
		fmt.Fprintln(w, "remotes:    none (local store only)")
		return
	}
	writeRemotesByInstance(w, r)
}

// writeRemotesByInstance prints each instance's remotes under it, a
// remote shared by several instances in full the first time only, then
// the remotes no instance reads from (push-only, execution).
func writeRemotesByInstance(w io.Writer, r *castdpb.StatusResponse) {
	byName := map[string]*castdpb.RemoteStatus{}
	for _, rm := range r.GetRemotes() {
		byName[rm.GetName()] = rm
	}
	shown := map[string]bool{}
	fmt.Fprintln(w, "remotes:")
	for _, in := range r.GetInstances() {
		fmt.Fprintf(w, "  %s:\n", instanceTitle(in.GetName()))
		if len(in.GetRemotes()) == 0 {
			fmt.Fprintln(w, "    none (local store only)")
		}
		for _, name := range in.GetRemotes() {
			rm, ok := byName[name]
			switch {
			case !ok:
				fmt.Fprintf(w, "    %s\n", name)
			case shown[name]:
				fmt.Fprintf(w, "    %s (as above)\n", rm.GetUrl())
			default:
				writeRemoteText(w, "    ", rm)
			}
			shown[name] = true
		}
	}
	title := false
	for _, rm := range r.GetRemotes() {
		if shown[rm.GetName()] {
			continue
		}
		if !title && len(r.GetInstances()) > 0 {
			fmt.Fprintln(w, "  not read by any instance:")
			title = true
		}
		writeRemoteText(w, "    ", rm)
	}
}

// instanceTitle names an instance for people.
func instanceTitle(name string) string {
	if name == "" {
		return `instance "" (global user remotes)`
	}
	return "instance " + name
}

// writeRemoteText prints one remote, each line after indent.
func writeRemoteText(w io.Writer, indent string, rm *castdpb.RemoteStatus) {
	fmt.Fprintf(w, "%s%s%s  [%s] origin %s, push %s\n", indent, rm.GetUrl(), instanceSuffix(rm.GetInstanceName()),
		strings.Join(rm.GetRoles(), ","), rm.GetOrigin(), yesNo(rm.GetPush()))
	fmt.Fprintf(w, "%s  health %s, breaker %s, %s, %d queued\n",
		indent, rm.GetHealth(), rm.GetBreaker(), hitsText(rm.GetCounters()), rm.GetQueueDepth())
	if roles := roleHealthText(rm.GetRoleHealth()); roles != "" {
		fmt.Fprintf(w, "%s  roles: %s\n", indent, roles)
	}
	if e := rm.GetLastError(); e != "" {
		fmt.Fprintf(w, "%s  last error: %s\n", indent, e)
	}
}

// orText is s, or alt when s is empty.
func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// roleHealthText is "cas ok, action-cache refused (PermissionDenied, breaker
// open), asset unknown": each role's health, with the code and breaker of a
// role that is not ok.
func roleHealthText(hs []*castdpb.RoleHealth) string {
	var parts []string
	for _, h := range hs {
		part := h.GetRole() + " " + h.GetHealth()
		var detail []string
		if h.GetHealth() != "ok" && h.GetCode() != "" {
			detail = append(detail, h.GetCode())
		}
		if h.GetBreaker() != "" && h.GetBreaker() != "closed" {
			detail = append(detail, "breaker "+h.GetBreaker())
		}
		if len(detail) > 0 {
			part += " (" + strings.Join(detail, ", ") + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

func hitsText(c *castdpb.CacheCounters) string {
	return fmt.Sprintf("%d hits, %d misses (%s hit rate)", c.GetHits(), c.GetMisses(), percent(c.GetHits(), c.GetHits()+c.GetMisses()))
}

func instanceSuffix(instance string) string {
	if instance == "" {
		return ""
	}
	return " (instance " + instance + ")"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func percent(n, of int64) string {
	if of <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(n)/float64(of))
}

// writeJSON prints v as indented JSON with a trailing newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
