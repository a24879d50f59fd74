package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	castdpb "github.com/castd/castd/api/castd/v1"
)

// fixedStatus is a Status answer with one remote and a queue.
func fixedStatus() *castdpb.StatusResponse {
	return &castdpb.StatusResponse{
		Version:     "v1.2.3",
		StartTime:   timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		Uptime:      durationpb.New(90 * time.Minute),
		Listeners:   []string{"unix:/run/user/1000/castd/castd.sock"},
		Store:       &castdpb.StoreStatus{Dir: "/cache/castd", UsedBytes: 1 << 30, QuotaBytes: 4 << 30, Objects: 42, Evictions: 3, VerifyFailures: 1, WritesRefused: "filesystem full"},
		Local:       &castdpb.CacheCounters{Hits: 30, Misses: 10},
		ConfigFile:  "/home/me/.config/castd/castd.yaml",
		MetricsUrl:  "http://127.0.0.1:9464/metrics",
		ActionCache: &castdpb.CacheCounters{Hits: 3, Misses: 1},
		Instances: []*castdpb.InstanceStatus{
			{Name: "", Remotes: []string{"cache.example.com:11001/main"}},
			{Name: "p/demo-1", Remotes: []string{"cache.example.com:11001/main", "project.example.com:443"}},
		},
		Remotes: []*castdpb.RemoteStatus{{
			Name: "cache.example.com:11001/main", Url: "grpcs://cache.example.com:11001", InstanceName: "main", Roles: []string{"storage", "index"},
			Origin: "user", Push: true, Health: "down", Breaker: "open", LastError: "connection refused",
			Counters: &castdpb.CacheCounters{Hits: 5, Misses: 2}, QueueDepth: 7,
			RoleHealth: []*castdpb.RoleHealth{
				{Role: "cas", Health: "ok", Breaker: "closed"},
				{Role: "action-cache", Health: "refused", Breaker: "open", LastError: "permission denied", Code: "PermissionDenied"},
				{Role: "asset", Health: "unknown", Breaker: "closed"},
			},
		}, {
			Name: "project.example.com:443", Url: "grpcs://project.example.com", Roles: []string{"storage"},
			Origin: "project", Health: "ok", Breaker: "closed", Counters: &castdpb.CacheCounters{Hits: 1},
		}, {
			Name: "exec.example.com:8980", Url: "grpc://exec.example.com:8980", Roles: []string{"execution"},
			Origin: "remote-execution", Health: "unknown", Breaker: "closed", Counters: &castdpb.CacheCounters{},
		}},
		Queue: &castdpb.QueueStatus{Depth: 7, OldestAge: durationpb.New(2 * time.Second), Failures: 4, Completed: 9, HeldBytes: 3 << 20,
			Parked: []*castdpb.ParkedRole{{Remote: "cache.example.com:11001/main", Role: "action-cache", Code: "Unimplemented",
				Message: "unknown service", Entries: 5, Since: timestamppb.New(time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC))}}},
	}
}

func TestStatusJSON(t *testing.T) {
	// Scripts read these fields; every one must come through under its documented name.
	var got map[string]any
	b, _ := json.Marshal(toStatusJSON("/s.sock", fixedStatus()))
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	store := got["store"].(map[string]any)
	remote := got["remotes"].([]any)[0].(map[string]any)
	queue := got["queue"].(map[string]any)
	for name, c := range map[string]struct{ got, want any }{
		"running":             {got["running"], true},
		"socket":              {got["socket"], "/s.sock"},
		"version":             {got["version"], "v1.2.3"},
		"start_time":          {got["start_time"], "2026-01-02T03:04:05Z"},
		"uptime_seconds":      {got["uptime_seconds"], 5400.0},
		"listeners":           {got["listeners"].([]any)[0], "unix:/run/user/1000/castd/castd.sock"},
		"store.used_bytes":    {store["used_bytes"], float64(1 << 30)},
		"store.quota_bytes":   {store["quota_bytes"], float64(4 << 30)},
		"store.objects":       {store["objects"], 42.0},
		"store.refused":       {store["writes_refused"], "filesystem full"},
		"local.hits":          {got["local"].(map[string]any)["hits"], 30.0},
		"remote.url":          {remote["url"], "grpcs://cache.example.com:11001"},
		"remote.breaker":      {remote["breaker"], "open"},
		"remote.health":       {remote["health"], "down"},
		"remote.misses":       {remote["counters"].(map[string]any)["misses"], 2.0},
		"remote.queue":        {remote["queue_depth"], 7.0},
		"queue.depth":         {queue["depth"], 7.0},
		"queue.oldest_age":    {queue["oldest_age_seconds"], 2.0},
		"queue.held_bytes":    {queue["held_bytes"], float64(3 << 20)},
		"queue.parked.role":   {queue["parked"].([]any)[0].(map[string]any)["role"], "action-cache"},
		"queue.parked.code":   {queue["parked"].([]any)[0].(map[string]any)["code"], "Unimplemented"},
		"queue.parked.n":      {queue["parked"].([]any)[0].(map[string]any)["entries"], 5.0},
		"remote.role":         {remote["role_health"].([]any)[1].(map[string]any)["role"], "action-cache"},
		"remote.role.health":  {remote["role_health"].([]any)[1].(map[string]any)["health"], "refused"},
		"remote.role.code":    {remote["role_health"].([]any)[1].(map[string]any)["code"], "PermissionDenied"},
		"remote.name":         {remote["name"], "cache.example.com:11001/main"},
		"config_file":         {got["config_file"], "/home/me/.config/castd/castd.yaml"},
		"metrics_url":         {got["metrics_url"], "http://127.0.0.1:9464/metrics"},
		"action_cache.hits":   {got["action_cache"].(map[string]any)["hits"], 3.0},
		"action_cache.ratio":  {got["action_cache"].(map[string]any)["hit_ratio"], 0.75},
		"instances[0].name":   {got["instances"].([]any)[0].(map[string]any)["name"], ""},
		"instances[1].name":   {got["instances"].([]any)[1].(map[string]any)["name"], "p/demo-1"},
		"instances[1].remote": {got["instances"].([]any)[1].(map[string]any)["remotes"].([]any)[1], "project.example.com:443"},
	} {
		t.Run(name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func TestStatusText(t *testing.T) {
	// People read the text form: each fact must appear once, in words.
	var buf bytes.Buffer
	writeStatusText(&buf, fixedStatus())
	for _, want := range []string{
		"castd v1.2.3: running, up 1h30m0s", "1.0 GiB of 4.0 GiB (25%)", "42 objects",
		"30 hits, 10 misses (75% hit rate)", "7 pending (oldest 2s)",
		"grpcs://cache.example.com:11001 (instance main)  [storage,index] origin user, push yes",
		"health down, breaker open", "last error: connection refused", "3.0 MiB held in the store",
		"parked:   cache.example.com:11001/main action-cache refused with Unimplemented (5 entries kept",
		"roles: cas ok, action-cache refused (PermissionDenied, breaker open), asset unknown",
		"writes refused: filesystem full (stored blobs and cold reads from remotes are still served",
		"config:     /home/me/.config/castd/castd.yaml", "metrics:    http://127.0.0.1:9464/metrics",
		"action cache: 3 hits, 1 misses (75% hit rate) since start",
		"  instance \"\" (global user remotes):\n    grpcs://cache.example.com:11001 (instance main)  [storage,index]",
		"  instance p/demo-1:\n    grpcs://cache.example.com:11001 (as above)\n    grpcs://project.example.com  [storage] origin project",
		"  not read by any instance:\n    grpc://exec.example.com:8980  [execution]",
	} {
		t.Run(want, func(t *testing.T) {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("missing %q in\n%s", want, buf.String())
			}
		})
	}
}

// fixedReport is a RegisterProject answer: the global entry, then the project's.
const fixedReport = `{"valid":true,"config_file":"","errors":[],"projects":[
 {"project":"","directory":"","scenario":"local","pull":{"cas":[],"action_cache":[],"remote_asset":[]},
  "push":{"cas":[],"action_cache":[],"remote_asset":[]},"warnings":[]},
 {"project":"foo","directory":"/src/foo","scenario":"remote-cache-read-only",
  "pull":{"cas":[{"url":"https://a.example","instance_name":"i","type":"all","origin":"project","section":"artifacts","push":false,
                  "auth":{"server_cert":"<set>"}}],"action_cache":[],"remote_asset":[]},
  "push":{"cas":[],"action_cache":[],"remote_asset":[]},"warnings":["no push"]}]}`

func TestRemotes(t *testing.T) {
	// bst remotes shows the project's entry, not the global one, and never credential values.
	r, err := parseRemotes(&castdpb.RegisterProjectResponse{InstanceName: "p-foo-1", ReportJson: fixedReport})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	writeRemotesText(&text, r)
	for name, c := range map[string]struct {
		ok   bool
		info string
	}{
		"instance name":   {r.InstanceName == "p-foo-1", r.InstanceName},
		"project entry":   {r.Project != nil && r.Project.Project == "foo", ""},
		"scenario":        {strings.Contains(text.String(), "scenario:      remote-cache-read-only"), text.String()},
		"pull order":      {strings.Contains(text.String(), "1. https://a.example (instance i)  all, origin project (artifacts), auth: server_cert"), text.String()},
		"no push":         {strings.Contains(text.String(), "push to:\n  cas: none"), text.String()},
		"warning":         {strings.Contains(text.String(), "warning: no push"), text.String()},
		"no secret value": {!strings.Contains(text.String(), "<set>"), text.String()},
	} {
		t.Run(name, func(t *testing.T) {
			if !c.ok {
				t.Errorf("failed; %s", c.info)
			}
		})
	}
}

func TestStatusJSONBeforeAnyLookup(t *testing.T) {
	// A hit ratio of nothing is unknown, not 0 (which would read as "the cache never helps").
	b, _ := json.Marshal(toStatusJSON("/s.sock", &castdpb.StatusResponse{}))
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	ac := got["action_cache"].(map[string]any)
	if r, ok := ac["hit_ratio"]; !ok || r != nil {
		t.Errorf("action_cache.hit_ratio = %v (present %v), want null", r, ok)
	}
	if in, ok := got["instances"].([]any); !ok || len(in) != 0 {
		t.Errorf("instances = %v, want []", got["instances"])
	}
}
