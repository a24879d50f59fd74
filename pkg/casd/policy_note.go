package casd

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	castdpb "github.com/castd/castd/api/castd/v1"
	"github.com/castd/castd/pkg/policy"
)

// warnPolicyOverride logs, once per remote, that BuildStream asks to push
// to a remote (one it did not mark read_only) which the castd daemon's
// policy does not push to: castd's policy wins, and the user should know
// why BuildStream's push never reaches that server. The daemon's push
// remotes come from its ConfigReport (global user remotes); if it cannot
// be read, the note says so instead.
func (d *Daemon) warnPolicyOverride(ctx context.Context, sock string, req *localcaspb.GetInstanceNameForRemotesRequest) {
	var wanted []*localcaspb.Remote
	for _, rm := range []*localcaspb.Remote{req.GetContentAddressableStorage(), req.GetRemoteAsset()} {
		if rm.GetUrl() != "" && !rm.GetReadOnly() {
			wanted = append(wanted, rm)
		}
	}
	if len(wanted) == 0 {
		return
	}
	pushes, err := daemonPushTargets(ctx, sock)
	for _, rm := range wanted {
		key := remoteKey(rm.GetUrl(), rm.GetInstanceName())
		if pushes[key] {
			continue
		}
		if _, seen := d.policyNoted.LoadOrStore(key, true); seen {
			continue
		}
		if err != nil {
			d.log.Warn("BuildStream asks to push to a remote; the castd daemon's policy decides where pushes go and its push remotes could not be read (castd's policy wins)",
				"remote", rm.GetUrl(), "castd", sock, "err", err)
			continue
		}
		d.log.Warn("BuildStream asks to push to a remote that castd's policy does not push to: castd's policy wins, pushes go only to the push-enabled remotes of castd.yaml",
			"remote", rm.GetUrl(), "castd", sock)
	}
}

// daemonPushTargets asks the castd daemon on sock which remotes its
// global user remotes push blobs and assets to, as remoteKey values.
func daemonPushTargets(ctx context.Context, sock string) (map[string]bool, error) {
	cc, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, castdProbeTimeout*5)
	defer cancel()
	resp, err := castdpb.NewControlClient(cc).ConfigReport(ctx, &castdpb.ConfigReportRequest{})
	if err != nil {
		return nil, err
	}
	var rep policy.Report
	if err := json.Unmarshal([]byte(resp.GetReportJson()), &rep); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range rep.Projects {
		if p.Project != "" {
			continue
		}
		for _, r := range append(p.Push.CAS, p.Push.RemoteAsset...) {
			out[remoteKey(r.URL, r.InstanceName)] = true
		}
	}
	return out, nil
}

// remoteKey identifies a remote across spellings of its URL: host:port
// (or socket path) and instance name, the scheme dropped (BuildStream's
// http:// is castd's grpc://).
func remoteKey(raw, instance string) string {
	host := raw
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		host = u.Host
	} else if _, rest, ok := strings.Cut(raw, "://"); ok {
		host = rest
	}
	return host + "#" + instance
}
