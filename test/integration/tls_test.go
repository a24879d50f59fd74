package integration_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// testPKI is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files into dir.
type testPKI struct {
	pool                      *x509.CertPool
	caFile, certFile, keyFile string
	client                    tls.Certificate
}

func newTestPKI(t *testing.T, dir string) *testPKI {
	t.Helper()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "castd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, []byte) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: fmt.Sprintf("castd test %d", serial)},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	}
	serverCert, serverKey := issue(2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	clientCert, clientKey := issue(3, x509.ExtKeyUsageClientAuth, nil)
	client, err := tls.X509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{
		pool:     x509.NewCertPool(),
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server.key"),
		client:   client,
	}
	p.pool.AddCert(ca)
	writeFile(t, p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	writeFile(t, p.certFile, serverCert)
	writeFile(t, p.keyFile, serverKey)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// dialTCP connects to addr with creds, closed when t ends.
func dialTCP(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestTCPListeners(t *testing.T) {
	tests := []struct {
		name      string
		why       string
		listen    string // extra listener
		clientCA  bool   // configure listen-tls client-ca
		creds     func(p *testPKI) credentials.TransportCredentials
		wantError bool
	}{
		{
			name:   "grpc plaintext on port 0",
			why:    "a configured grpc:// listener serves, and port 0 is reported as the bound port",
			listen: "grpc://127.0.0.1:0",
			creds:  func(*testPKI) credentials.TransportCredentials { return insecure.NewCredentials() },
		},
		{
			name:   "grpcs server tls",
			why:    "a client trusting the CA reaches castd over TLS",
			listen: "grpcs://127.0.0.1:0",
			creds: func(p *testPKI) credentials.TransportCredentials {
				return credentials.NewTLS(&tls.Config{RootCAs: p.pool})
			},
		},
		{
			name:   "grpcs refuses plaintext",
			why:    "the TLS listener never falls back to plaintext",
			listen: "grpcs://127.0.0.1:0",
			creds:  func(*testPKI) credentials.TransportCredentials { return insecure.NewCredentials() },

			wantError: true,
		},
		{
			name:     "mtls without client cert",
			why:      "with client-ca set, a client without a certificate is rejected",
			listen:   "grpcs://127.0.0.1:0",
			clientCA: true,
			creds: func(p *testPKI) credentials.TransportCredentials {
				return credentials.NewTLS(&tls.Config{RootCAs: p.pool})
			},
			wantError: true,
		},
		{
			name:     "mtls with client cert",
			why:      "with client-ca set, a client with a certificate the CA signed is served",
			listen:   "grpcs://127.0.0.1:0",
			clientCA: true,
			creds: func(p *testPKI) credentials.TransportCredentials {
				return credentials.NewTLS(&tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log(tt.why)
			l := newLayout(t)
			pki := newTestPKI(t, l.base)
			extra := fmt.Sprintf("listen-tls:\n  server-cert: %s\n  server-key: %s\n", pki.certFile, pki.keyFile)
			if tt.clientCA {
				extra += fmt.Sprintf("  client-ca: %s\n", pki.caFile)
			}
			cfg := fmt.Sprintf("listen:\n  - unix:%s\n  - %s\nstore-dir: %s\nmetrics: 127.0.0.1:0\n%s", l.socket, tt.listen, l.store, extra)
			p := startCastd(t, l, cfg)
			scheme := "grpc"
			if tt.listen[:6] == "grpcs:" {
				scheme = "grpcs"
			}
			conn := dialTCP(t, p.listenAddr(scheme), tt.creds(pki))
			caps, err := capabilitiesOver(conn)
			if tt.wantError {
				if err == nil {
					t.Fatal("GetCapabilities succeeded, want the connection refused")
				}
				return
			}
			if err != nil {
				t.Fatalf("GetCapabilities over %s: %v", tt.listen, err)
			}
			checkCapabilities(t, caps)
		})
	}
}
