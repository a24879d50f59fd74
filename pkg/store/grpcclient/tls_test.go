package grpcclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, all written as PEM files to a temporary directory.
type pki struct {
	caFile, clientCert, clientKey string
	pool                          *x509.CertPool
	server                        tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	p := &pki{pool: x509.NewCertPool(), caFile: filepath.Join(dir, "ca.pem")}
	p.pool.AddCert(caCert)
	writePEM(t, p.caFile, "CERTIFICATE", caCert.Raw)
	srvKey, srvCert := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, caCert, caKey)
	p.server = tls.Certificate{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}
	cliKey, cliCert := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "castd"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, caKey)
	p.clientCert, p.clientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	writePEM(t, p.clientCert, "CERTIFICATE", cliCert.Raw)
	der, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.clientKey, "EC PRIVATE KEY", der)
	return p
}

// issue creates a key and a certificate from tmpl, signed by parent (self
// signed when parent is nil).
func issue(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	p := newPKI(t)
	tlsOnly := startServer(t, serverConfig{creds: credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.server}})})
	mutual := startServer(t, serverConfig{creds: credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{p.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool,
	})})
	for _, tc := range []struct {
		name string
		why  string
		cfg  grpcclient.Config
		ok   bool
	}{
		{"server cert as CA", "grpcs:// with server-cert trusts exactly that CA", grpcclient.Config{URL: "grpcs://" + tlsOnly.addr, ServerCert: p.caFile}, true},
		{"https scheme", "https:// is TLS too (BuildStream spelling)", grpcclient.Config{URL: "https://" + tlsOnly.addr, ServerCert: p.caFile}, true},
		{"system roots only", "without server-cert a private CA is not trusted", grpcclient.Config{URL: "grpcs://" + tlsOnly.addr}, false},
		{"mtls without client cert", "a server requiring a client certificate refuses us without one", grpcclient.Config{URL: "grpcs://" + mutual.addr, ServerCert: p.caFile}, false},
		{"mtls with client cert", "client-cert and client-key are presented to the remote", grpcclient.Config{URL: "grpcs://" + mutual.addr, ServerCert: p.caFile, ClientCert: p.clientCert, ClientKey: p.clientKey}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			r := dial(t, tc.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := r.CAS().FindMissing(ctx, []digest.Digest{digest.OfBytes([]byte("x"))})
			if tc.ok && err != nil {
				t.Fatalf("FindMissing: %v", err)
			}
			if !tc.ok && status.Code(err) != codes.Unavailable {
				t.Fatalf("FindMissing: %v; want UNAVAILABLE (handshake refused)", err)
			}
		})
	}
}

func TestDialRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		why  string
		cfg  grpcclient.Config
	}{
		{"unknown scheme", "a typo in the url must not silently become plaintext", grpcclient.Config{URL: "ftp://example.com:1"}},
		{"key without cert", "client-key without client-cert is a configuration error", grpcclient.Config{URL: "grpcs://example.com:1", ClientKey: "k.pem"}},
		{"certs on plaintext", "certificates on a grpc:// url would never be used", grpcclient.Config{URL: "grpc://example.com:1", ServerCert: "ca.pem"}},
		{"missing ca file", "an unreadable server-cert fails at Dial, not at the first call", grpcclient.Config{URL: "grpcs://example.com:1", ServerCert: "/nonexistent/ca.pem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			if _, err := grpcclient.Dial(context.Background(), tc.cfg); status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Dial: %v; want INVALID_ARGUMENT", err)
			}
		})
	}
}
