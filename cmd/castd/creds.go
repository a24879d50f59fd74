package main

import (
	"context"
	"errors"
	"net"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// mixedCreds lets one gRPC server serve plaintext listeners (the Unix socket,
// grpc://) and TLS listeners (grpcs://) at once: connections accepted by a
// TLS listener arrive as *tlsConn and get a TLS handshake with that
// listener's config; all others pass through as insecure. One server means
// one set of services and one set of metrics, whatever the listeners.
type mixedCreds struct{}

var _ credentials.TransportCredentials = mixedCreds{}

func (mixedCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if tc, ok := c.(*tlsConn); ok {
		return credentials.NewTLS(tc.cfg).ServerHandshake(tc.Conn)
	}
	return insecure.NewCredentials().ServerHandshake(c)
}

func (mixedCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("castd: server-side credentials used on a client")
}

func (mixedCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "castd-mixed"}
}

func (mixedCreds) Clone() credentials.TransportCredentials { return mixedCreds{} }

//nolint:staticcheck // required by the interface
func (mixedCreds) OverrideServerName(string) error { return nil }
