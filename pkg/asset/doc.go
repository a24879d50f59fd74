// Package asset serves the Remote Asset API (build.bazel.remote.asset.v1
// Fetch and Push) as a cache: it maps a URI plus qualifiers to the digest of
// a blob or of a directory tree held in the CAS, and answers from a local
// asset index and then from the index remotes of the request's project, in
// pull order (DESIGN.md §3.3 rule 2).
//
// castd is a cache, not a fetcher: it never downloads a URI itself. An asset
// that no index knows (or whose content is gone from every storage tier) is
// NOT_FOUND, and the client falls back to fetching from origin (Bazel's
// remote downloader and BuildStream's artifact and source caches both do).
//
// The pieces follow the storage pattern of the rest of castd: one small
// Index interface; implementations over the local store's records
// (NewLocalIndex) and over one upstream's asset client (NewRemoteIndex); a
// decorator that hides references to missing content
// (NewCompletenessCheckingIndex); the ordered fan-out (NewFanout); and the
// gRPC handlers (NewServer), which only ever hold an Index and a store.CAS.
package asset
