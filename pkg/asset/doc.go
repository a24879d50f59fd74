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
//
// The digest function is part of an association: a request's
// digest_function (unset: SHA-256 for a Fetch, inferred from the hash
// length for a Push, as the API says) is resolved once, every digest of
// the request is read in it, and the indexes file and find associations
// per function (Asset.Func), so a BLAKE3 push is found only by a BLAKE3
// fetch. An index remote is asked only in functions it advertises.
package asset
