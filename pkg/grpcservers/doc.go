// Package grpcservers holds every gRPC service castd serves on its
// listeners: the REAPI Capabilities, ContentAddressableStorage, ByteStream
// and ActionCache services, gRPC health and reflection, castd.v1.Control
// (project registration, status, configuration report, scrub), and the
// server-side interceptors of castd's TCP listeners (bearer-token
// authentication, request-metadata logging).
//
// Handlers are thin: they validate the request at the edge, resolve the
// instance name to storage through a Backend, and hand the data to a
// store.CAS or store.ActionCache. They own no policy: which remotes serve
// an instance, what is pushed where and how an action runs are decided
// behind the Backend (pkg/proxy) and by pkg/execution. Nothing here dials a
// remote.
package grpcservers
