package grpcservers

import (
	"context"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	castdpb "github.com/castd/castd/api/castd/v1"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/proxy"

	"github.com/castd/castd/pkg/store/disk"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// Info is the daemon's identity for Status.
type Info struct {
	Version   string
	StartTime time.Time
	// Listeners returns the served addresses ("unix:PATH", "grpc://…").
	Listeners func() []string
	// StoreDir is the local store's directory.
	StoreDir string
	// MetricsURL returns where /metrics is served, "" when disabled; nil
	// means disabled. It is a function because the endpoint starts after
	// the Control service is registered.
	MetricsURL func() string
	// Scrubber serves Scrub; nil makes Scrub UNIMPLEMENTED.
	Scrubber *Scrubber
}

// Server implements castdpb.ControlServer over a proxy.Set. Safe for
// concurrent use.
type Server struct {
	castdpb.UnimplementedControlServer
	cfg   *policy.Config
	set   *proxy.Set
	local *disk.Store
	info  Info
}

// New returns the Control service for the daemon's live configuration.
func New(cfg *policy.Config, set *proxy.Set, local *disk.Store, info Info) *Server {
	if info.StartTime.IsZero() {
		info.StartTime = time.Now()
	}
	return &Server{cfg: cfg, set: set, local: local, info: info}
}

// config is the configuration in force: the Set's, which a reload
// replaces, else the one New was given.
func (s *Server) config() *policy.Config {
	if s.set != nil {
		return s.set.Config()
	}
	return s.cfg
}

// RegisterProject binds a project's resolved remotes to an instance name.
func (s *Server) RegisterProject(ctx context.Context, req *castdpb.RegisterProjectRequest) (*castdpb.RegisterProjectResponse, error) {
	name, report, err := s.set.RegisterProject(ctx, req.GetName(), req.GetProjectConf(), req.GetBaseDir())
	if err != nil {
		return nil, err
	}
	return &castdpb.RegisterProjectResponse{InstanceName: name, ReportJson: string(report)}, nil
}

// ConfigReport returns `castd config check --json` for the live
// configuration and the given project directories.
func (s *Server) ConfigReport(_ context.Context, req *castdpb.ConfigReportRequest) (*castdpb.ConfigReportResponse, error) {
	var projects []*policy.Project
	for _, dir := range req.GetProjectDirs() {
		p, err := policy.LoadProject(dir)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "config report: %v", err)
		}
		projects = append(projects, p)
	}
	report, err := policy.BuildReport(s.config(), projects).JSON()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "config report: %v", err)
	}
	return &castdpb.ConfigReportResponse{ReportJson: string(report)}, nil
}

// Status reports the daemon, its store, every remote and the queue.
func (s *Server) Status(context.Context, *castdpb.StatusRequest) (*castdpb.StatusResponse, error) {
	resp := &castdpb.StatusResponse{
		Version:   s.info.Version,
		StartTime: timestamppb.New(s.info.StartTime),
		Uptime:    durationpb.New(time.Since(s.info.StartTime)),
		Store:     s.storeStatus(),
		Queue:     s.queueStatus(),
	}
	if s.info.Listeners != nil {
		resp.Listeners = s.info.Listeners()
	}
	if s.info.MetricsURL != nil {
		resp.MetricsUrl = s.info.MetricsURL()
	}
	if s.cfg != nil {
		resp.ConfigFile = s.cfg.File
	}
	hits, misses := s.set.Local()
	resp.Local = &castdpb.CacheCounters{Hits: int64(hits), Misses: int64(misses)}
	hits, misses = s.set.ActionCacheCounts()
	resp.ActionCache = &castdpb.CacheCounters{Hits: int64(hits), Misses: int64(misses)}
	for _, in := range s.set.InstanceRemotes() {
		resp.Instances = append(resp.Instances, &castdpb.InstanceStatus{Name: in.Name, Remotes: in.Remotes})
	}
	for _, r := range s.set.Remotes() {
		resp.Remotes = append(resp.Remotes, &castdpb.RemoteStatus{
			Name: r.Name, Url: r.URL, InstanceName: r.InstanceName, Roles: r.Roles, Origin: r.Origin, Push: r.Push,
			Health: r.Health, Breaker: r.Breaker, LastError: r.LastError,
			Counters:   &castdpb.CacheCounters{Hits: r.Hits, Misses: r.Misses},
			QueueDepth: int64(r.QueueDepth),
			RoleHealth: roleHealth(r.PerRole),
		})
	}
	return resp, nil
}

func (s *Server) storeStatus() *castdpb.StoreStatus {
	st := s.local.Stats()
	return &castdpb.StoreStatus{
		Dir: s.info.StoreDir, UsedBytes: st.UsedBytes, QuotaBytes: st.QuotaBytes,
		Objects: st.Objects, Evictions: st.Evictions, VerifyFailures: st.VerifyFailures,
		WritesRefused: st.WritesRefused,
	}
}

func (s *Server) queueStatus() *castdpb.QueueStatus {
	q := s.set.Queue()
	out := &castdpb.QueueStatus{
		Depth: int64(q.Depth), OldestAge: durationpb.New(q.Oldest),
		Failures: int64(q.Failures), Completed: int64(q.Completed), HeldBytes: q.HeldBytes,
	}
	for _, name := range slices.Sorted(maps.Keys(q.Remotes)) {
		for _, p := range q.Remotes[name].Parked {
			out.Parked = append(out.Parked, &castdpb.ParkedRole{
				Remote: name, Role: string(p.Role), Code: p.Code.String(), Message: p.Message,
				Entries: int64(p.Entries), Since: timestamppb.New(p.Since),
			})
		}
	}
	return out
}

// roleHealth converts the per-role health of one remote.
func roleHealth(hs []grpcclient.RoleHealth) []*castdpb.RoleHealth {
	out := make([]*castdpb.RoleHealth, 0, len(hs))
	for _, h := range hs {
		rh := &castdpb.RoleHealth{Role: string(h.Role), Health: h.Health, Breaker: h.Breaker, LastError: h.LastError}
		if h.LastError != "" {
			rh.Code = h.Code.String()
		}
		out = append(out, rh)
	}
	return out
}
