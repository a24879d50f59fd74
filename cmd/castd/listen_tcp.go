package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// listenTCP opens a plaintext gRPC listener (grpc://HOST:PORT). Port 0 picks
// a free port; the log line reports the bound one.
func listenTCP(hostport string) (net.Listener, error) {
	l, err := net.Listen("tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("listen grpc://%s: %w", hostport, err)
	}
	return l, nil
}

// tlsFiles names the PEM files of a grpcs listener.
type tlsFiles struct {
	cert, key string // server certificate chain and private key
	clientCA  string // optional: require client certificates signed by it
}

// listenTLS opens a grpcs://HOST:PORT listener. Its connections are marked so
// that the server's transport credentials run the TLS handshake on them
// (see mixedCreds); the other listeners of the same server stay plaintext.
func listenTLS(hostport string, files tlsFiles) (net.Listener, error) {
	cfg, err := serverTLSConfig(files)
	if err != nil {
		return nil, fmt.Errorf("listen grpcs://%s: %w", hostport, err)
	}
	l, err := net.Listen("tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("listen grpcs://%s: %w", hostport, err)
	}
	return &tlsMarkingListener{Listener: l, cfg: cfg}, nil
}

// serverTLSConfig loads the server key pair and, when configured, the client
// CA; with a client CA every client must present a certificate it signed.
func serverTLSConfig(files tlsFiles) (*tls.Config, error) {
	if files.cert == "" || files.key == "" {
		return nil, errors.New("a grpcs listener needs listen-tls server-cert and server-key")
	}
	pair, err := tls.LoadX509KeyPair(files.cert, files.key)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"},
	}
	if files.clientCA != "" {
		pem, err := os.ReadFile(files.clientCA)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate found", files.clientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// tlsMarkingListener wraps accepted connections in tlsConn so the transport
// credentials know to run a TLS handshake on them.
type tlsMarkingListener struct {
	net.Listener
	cfg *tls.Config
}

func (l *tlsMarkingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsConn{Conn: c, cfg: l.cfg}, nil
}

// tlsConn is a raw TCP connection that must be upgraded to TLS with cfg.
type tlsConn struct {
	net.Conn
	cfg *tls.Config
}
