// Package proxy is castd's composition root: it turns the resolved
// configuration (pkg/policy) into the storage each REAPI instance name is
// served from: one upstream client per distinct remote (url, instance name
// and credentials), the ordered fan-out over them in pull order for every
// instance, and the write-back queue feeding the user's push remotes. It
// builds and wires; the behaviour of each piece lives in its own package
// (pkg/store and its subpackages, pkg/asset, pkg/writeback,
// pkg/execution), and nothing here serves gRPC. Each resolved list goes
// from policy.Remote to tiers through one loop (Set.dial), by the list's
// policy.Role; the layers' tuning comes from the configuration's
// cache.remotes and cache.push keys (tuning.go).
//
// Instance names: "" is the global user remotes; each static `projects:`
// name of the user configuration is itself an instance name; a project
// registered at run time (RegisterProject) gets "p/NAME-HASH", where HASH
// identifies the resolved remote set, so the same project with the same
// remotes always gets the same name. Registrations are persisted in the
// store and restored on start.
//
// *Set implements grpcservers.Backend and reports per-remote status for the
// castd.v1.Control service.
package proxy
