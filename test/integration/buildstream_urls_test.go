package integration_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// bsListenToken is the listen-auth token of the castd the https+token form reaches.
const bsListenToken = "bs-listen-token"

// bearer sends "authorization: Bearer <token>" on every call, over TLS only
// (as buildbox-common's AccessTokenCredentials do).
type bearer string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (bearer) RequireTransportSecurity() bool { return true }

// casdDial opens the channel buildbox-casd opens for a buildstream.conf url
// (buildbox-common's ConnectionOptions): http:// and https:// are stripped
// to HOST:PORT, plaintext or TLS; unix: is handed to gRPC as it is.
func casdDial(t *testing.T, url string, tlsConf *tls.Config, token string) *grpc.ClientConn {
	t.Helper()
	target, creds := url, insecure.NewCredentials()
	switch {
	case strings.HasPrefix(url, "http://"):
		target = "passthrough:///" + strings.TrimPrefix(url, "http://")
	case strings.HasPrefix(url, "https://"):
		target, creds = "passthrough:///"+strings.TrimPrefix(url, "https://"), credentials.NewTLS(tlsConf)
	case !strings.HasPrefix(url, "unix:"):
		t.Fatalf("buildbox-casd refuses %q (Unsupported URL scheme)", url)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestBuildStreamURLForms pins the README's BuildStream 2 recipe without
// BuildStream: for each url form it gives, castd answers the calls
// BuildStream's buildbox-casd makes on that channel — GetCapabilities when
// the remote is opened, FetchBlob and PushBlob without URIs as BuildStream's
// start-up check (only INVALID_ARGUMENT counts as healthy there), then a
// source push and fetch by its Remote Asset URN.
func TestBuildStreamURLForms(t *testing.T) {
	plain := newLayout(t)
	pki := newTestPKI(t, plain.base)
	tlsListen := fmt.Sprintf("listen-tls:\n  server-cert: %s\n  server-key: %s\n", pki.certFile, pki.keyFile)
	p := startCastd(t, plain, fmt.Sprintf("listen:\n  - unix:%s\n  - grpc://127.0.0.1:0\n  - grpcs://127.0.0.1:0\n"+
		"store-dir: %s\nmetrics: 127.0.0.1:0\n%s", plain.socket, plain.store, tlsListen))

	authed := newLayout(t)
	tokenFile := filepath.Join(authed.base, "token")
	writeFile(t, tokenFile, []byte(bsListenToken))
	a := startCastd(t, authed, fmt.Sprintf("listen:\n  - unix:%s\n  - grpc://127.0.0.1:0\n  - grpcs://127.0.0.1:0\n"+
		"store-dir: %s\nmetrics: 127.0.0.1:0\n%slisten-auth:\n  access-token: %s\n", authed.socket, authed.store, tlsListen, tokenFile))

	trusting := &tls.Config{RootCAs: pki.pool}
	tests := []struct {
		name  string
		url   string
		tls   *tls.Config
		token string
		want  codes.Code // of GetCapabilities; OK runs the whole sequence
	}{
		{name: "unix:PATH", url: "unix:" + plain.socket, want: codes.OK},
		{name: "unix:///PATH", url: "unix://" + plain.socket, want: codes.OK},
		{name: "http to grpc listener", url: "http://" + p.listenAddr("grpc"), want: codes.OK},
		{name: "https to grpcs listener", url: "https://" + p.listenAddr("grpcs"), tls: trusting, want: codes.OK},
		{name: "unix needs no token under listen-auth", url: "unix:" + authed.socket, want: codes.OK},
		{name: "https with the listen-auth token", url: "https://" + a.listenAddr("grpcs"), tls: trusting, token: bsListenToken, want: codes.OK},
		{name: "http under listen-auth is refused", url: "http://" + a.listenAddr("grpc"), want: codes.Unauthenticated},
		{name: "https without the token under listen-auth is refused", url: "https://" + a.listenAddr("grpcs"), tls: trusting, want: codes.Unauthenticated},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := casdDial(t, tt.url, tt.tls, tt.token)
			ctx := ctxFor(t, 30*time.Second)
			caps, err := repb.NewCapabilitiesClient(conn).GetCapabilities(ctx, &repb.GetCapabilitiesRequest{})
			if code := status.Code(err); code != tt.want {
				t.Fatalf("GetCapabilities over %s = %v, want %v", tt.url, err, tt.want)
			}
			if tt.want != codes.OK {
				return
			}
			checkCapabilities(t, caps)
			checkBuildStreamProbe(ctx, t, conn)
			checkSourceRoundTrip(ctx, t, conn, fmt.Sprintf("urn:fdc:buildstream.build:2020:source:url-form-%d", i))
		})
	}
}

// checkBuildStreamProbe sends BuildStream's start-up check of an artifact
// or source cache with push: true (AssetRemote._check).
func checkBuildStreamProbe(ctx context.Context, t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	_, err := assetpb.NewFetchClient(conn).FetchBlob(ctx, &assetpb.FetchBlobRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("FetchBlob without URIs = %v, want INVALID_ARGUMENT (BuildStream's healthy answer)", err)
	}
	_, err = assetpb.NewPushClient(conn).PushBlob(ctx, &assetpb.PushBlobRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("PushBlob without URIs = %v, want INVALID_ARGUMENT (BuildStream's healthy answer)", err)
	}
}

// checkSourceRoundTrip does what `bst source push` and `bst source fetch`
// make buildbox-casd do for an element's sources: upload the Source proto
// blob, push it under uri, then fetch uri and read the blob back.
func checkSourceRoundTrip(ctx context.Context, t *testing.T, conn *grpc.ClientConn, uri string) {
	t.Helper()
	b := blobOf([]byte(uri + " source proto"))
	if err := batchUpdate(ctx, conn, b); err != nil {
		t.Fatalf("BatchUpdateBlobs: %v", err)
	}
	if _, err := assetpb.NewPushClient(conn).PushBlob(ctx, &assetpb.PushBlobRequest{Uris: []string{uri}, BlobDigest: b.d}); err != nil {
		t.Fatalf("PushBlob %s: %v", uri, err)
	}
	got, err := assetpb.NewFetchClient(conn).FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: []string{uri}})
	if err != nil || codes.Code(got.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("FetchBlob %s = %v, %v; want the pushed blob", uri, got, err)
	}
	if !proto.Equal(got.GetBlobDigest(), b.d) {
		t.Fatalf("FetchBlob %s digest = %v, want %v", uri, got.GetBlobDigest(), b.d)
	}
	data, err := readBlob(ctx, conn, got.GetBlobDigest())
	if err != nil || string(data) != string(b.data) {
		t.Fatalf("reading the fetched blob = %q, %v; want %q", data, err, b.data)
	}
}
