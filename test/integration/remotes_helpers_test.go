package integration_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"

	castdpb "github.com/castd/castd/api/castd/v1"
)

// upstreamToken is the bearer token the token-protected upstream wants.
const upstreamToken = "upstream-s3cret-token"

// upstream is a castd process serving as a remote cache on TCP.
type upstream struct {
	*castdProc
	l      *layout
	url    string // as the workstation configures it
	addr   string // HOST:PORT
	config string // to restart it with the same settings
	creds  credentials.TransportCredentials
	token  string // "" when none is required
}

// freePort returns a loopback address that was free a moment ago, so that
// an upstream can be restarted on the same port.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startTokenUpstream starts a plaintext grpc:// castd that requires
// upstreamToken and logs the metadata keys of every request.
func startTokenUpstream(t *testing.T) *upstream {
	t.Helper()
	l := newLayout(t)
	addr := freePort(t)
	tokenFile := filepath.Join(l.base, "token")
	writeFile(t, tokenFile, []byte(upstreamToken+"\n"))
	cfg := fmt.Sprintf("listen:\n  - unix:%s\n  - grpc://%s\nstore-dir: %s\nmetrics: 127.0.0.1:0\n"+
		"listen-auth:\n  access-token: %s\nlog-request-metadata: true\n", l.socket, addr, l.store, tokenFile)
	u := &upstream{l: l, url: "grpc://" + addr, addr: addr, config: cfg, creds: insecure.NewCredentials(), token: upstreamToken}
	u.castdProc = startCastd(t, l, cfg)
	return u
}

// startPlainUpstream starts a plaintext grpc:// castd without auth that
// logs request metadata.
func startPlainUpstream(t testing.TB) *upstream {
	t.Helper()
	u := newPlainUpstream(t)
	u.restart(t)
	return u
}

// newPlainUpstream is startPlainUpstream without the start: its address
// is fixed, nothing listens there until restart.
func newPlainUpstream(t testing.TB) *upstream {
	t.Helper()
	l := newLayout(t)
	addr := freePort(t)
	cfg := fmt.Sprintf("listen:\n  - unix:%s\n  - grpc://%s\nstore-dir: %s\nmetrics: 127.0.0.1:0\nlog-request-metadata: true\n", l.socket, addr, l.store)
	return &upstream{l: l, url: "grpc://" + addr, addr: addr, config: cfg, creds: insecure.NewCredentials()}
}

// mtlsUpstream is a grpcs:// castd requiring a client certificate, with
// the files a workstation needs to reach it.
type mtlsUpstream struct {
	*upstream
	caFile, clientCert, clientKey string
}

func startMTLSUpstream(t *testing.T) *mtlsUpstream {
	t.Helper()
	l := newLayout(t)
	pki := newTestPKI(t, l.base)
	addr := freePort(t)
	cfg := fmt.Sprintf("listen:\n  - unix:%s\n  - grpcs://%s\nstore-dir: %s\nmetrics: 127.0.0.1:0\nlog-request-metadata: true\n"+
		"listen-tls:\n  server-cert: %s\n  server-key: %s\n  client-ca: %s\n", l.socket, addr, l.store, pki.certFile, pki.keyFile, pki.caFile)
	m := &mtlsUpstream{upstream: &upstream{l: l, url: "grpcs://" + addr, addr: addr, config: cfg,
		creds: credentials.NewTLS(&tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}})}}
	m.caFile = pki.caFile
	m.clientCert, m.clientKey = writeClientCert(t, l.base, pki.client)
	m.castdProc = startCastd(t, l, cfg)
	return m
}

// writeClientCert writes c as PEM certificate and key files in dir.
func writeClientCert(t *testing.T, dir string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return certFile, keyFile
}

// restart starts the upstream again on the same port and store.
func (u *upstream) restart(t testing.TB) {
	t.Helper()
	u.castdProc = startCastd(t, u.l, u.config)
}

// serverYAML is the workstation's server entry for u (flow-style YAML)
// with fast-failing connection settings, so that dead remotes are
// skipped quickly.
func (u *upstream) serverYAML(typ string, push bool) string {
	auth := ""
	if u.token != "" {
		tokenFile := filepath.Join(u.l.base, "token")
		auth = fmt.Sprintf(", auth: {access-token: %s}", tokenFile)
	}
	return fmt.Sprintf("{url: %s, type: %s, push: %v%s, connection-config: {retry-limit: 1, retry-delay: 10, request-timeout: 2}}", u.url, typ, push, auth)
}

func (m *mtlsUpstream) serverYAML(typ string, push bool) string {
	return fmt.Sprintf("{url: %s, type: %s, push: %v, auth: {server-cert: %s, client-cert: %s, client-key: %s}, connection-config: {retry-limit: 1, retry-delay: 10, request-timeout: 2}}",
		m.url, typ, push, m.caFile, m.clientCert, m.clientKey)
}

// conn is a direct client of the upstream over its own socket.
func (u *upstream) conn(t testing.TB) *grpc.ClientConn { return dialUnix(t, u.socket) }

// has reports whether the upstream's own store holds d (asked directly
// over its Unix socket, so no credentials are involved).
func (u *upstream) has(t *testing.T, d *repb.Digest) bool {
	t.Helper()
	missing, err := findMissing(ctxFor(t, 10*time.Second), u.conn(t), d)
	if err != nil {
		t.Fatalf("FindMissing on upstream %s: %v", u.addr, err)
	}
	return len(missing) == 0
}

// requestLines are the upstream's "request metadata" log lines for method
// (a substring of the full method name) received over TCP.
func (u *upstream) requestLines(method string) []string {
	var out []string
	for _, line := range strings.Split(u.logs.String(), "\n") {
		if strings.Contains(line, "request metadata") && strings.Contains(line, "tcp=true") && strings.Contains(line, method) {
			out = append(out, line)
		}
	}
	return out
}

// ctxFor is a context cancelled after d or when t ends.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// workstation starts a castd on a Unix socket with the given remote
// configuration (YAML appended to the layout's base config).
func startWorkstation(t testing.TB, l *layout, remotesYAML string) (*castdProc, *grpc.ClientConn, castdpb.ControlClient) {
	t.Helper()
	p := startCastd(t, l, l.configYAML(remotesYAML))
	conn := dialUnix(t, p.socket)
	return p, conn, castdpb.NewControlClient(conn)
}

// status fetches the workstation's Status.
func ctlStatus(t *testing.T, ctl castdpb.ControlClient) *castdpb.StatusResponse {
	t.Helper()
	st, err := ctl.Status(ctxFor(t, 10*time.Second), &castdpb.StatusRequest{})
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

// remoteStatus returns the Status entry of the remote with url.
func remoteStatus(t *testing.T, st *castdpb.StatusResponse, url string) *castdpb.RemoteStatus {
	t.Helper()
	for _, r := range st.GetRemotes() {
		if r.GetUrl() == url {
			return r
		}
	}
	t.Fatalf("no remote %s in Status: %v", url, st.GetRemotes())
	return nil
}

// instanceRead reads d from instance over conn with BatchReadBlobs.
func instanceRead(ctx context.Context, conn *grpc.ClientConn, instance string, d *repb.Digest) ([]byte, error) {
	resp, err := repb.NewContentAddressableStorageClient(conn).BatchReadBlobs(ctx, &repb.BatchReadBlobsRequest{
		InstanceName: instance, Digests: []*repb.Digest{d}, DigestFunction: repb.DigestFunction_SHA256,
	})
	if err != nil {
		return nil, err
	}
	r := resp.GetResponses()[0]
	if err := grpcStatusErr(r.GetStatus().GetCode(), r.GetStatus().GetMessage()); err != nil {
		return nil, err
	}
	return r.GetData(), nil
}

// instanceWrite uploads blobs to instance over conn with BatchUpdateBlobs.
func instanceWrite(ctx context.Context, conn *grpc.ClientConn, instance string, blobs ...blob) error {
	req := &repb.BatchUpdateBlobsRequest{InstanceName: instance, DigestFunction: repb.DigestFunction_SHA256}
	for _, b := range blobs {
		req.Requests = append(req.Requests, &repb.BatchUpdateBlobsRequest_Request{Digest: b.d, Data: b.data})
	}
	resp, err := repb.NewContentAddressableStorageClient(conn).BatchUpdateBlobs(ctx, req)
	if err != nil {
		return err
	}
	for _, r := range resp.GetResponses() {
		if err := grpcStatusErr(r.GetStatus().GetCode(), r.GetStatus().GetMessage()); err != nil {
			return err
		}
	}
	return nil
}

// grpcStatusErr turns a per-blob status into an error (nil for OK).
func grpcStatusErr(code int32, msg string) error {
	return grpcstatus.Error(codes.Code(code), msg)
}

// blobFile is where a castd store keeps d as a file (blobs above the
// inline threshold).
func blobFile(storeDir string, d *repb.Digest) string {
	return filepath.Join(storeDir, "cas", d.GetHash()[:2], fmt.Sprintf("%s-%d", d.GetHash(), d.GetSizeBytes()))
}

// corruptFile flips bytes in the middle of path.
func corruptFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) / 2; i < len(data)/2+16; i++ {
		data[i] ^= 0xff
	}
	writeFile(t, path, data)
}
