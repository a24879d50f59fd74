package policy

// Block is the configuration block a resolved remote came from.
type Block string

// The blocks remotes are configured in.
const (
	BlockArtifacts          Block = "artifacts"
	BlockSourceCaches       Block = "source-caches"
	BlockCacheStorage       Block = "cache.storage-service"
	BlockStorageService     Block = "remote-execution.storage-service"
	BlockActionCacheService Block = "remote-execution.action-cache-service"
	BlockExecutionService   Block = "remote-execution.execution-service"
)

// Role is what a resolved remote serves an instance for: the REAPI
// services of DESIGN §3.3 rule 2. Resolve stamps every Remote of a pull or
// push list with the list's role, so that a builder picks tiers by role
// rather than by configuration block.
type Role int

// The roles a remote can be resolved in. The zero Role is no role (a
// Remote not taken from a resolved list).
const (
	// RoleStorage serves CAS and ByteStream (Resolved.CAS, PushCAS).
	RoleStorage Role = iota + 1
	// RoleActionCache serves GetActionResult (Resolved.ActionCache,
	// PushActionCache).
	RoleActionCache
	// RoleIndex serves Remote Asset references (Resolved.Assets,
	// PushAssets) and is a server's index role in Roles.Index.
	RoleIndex
	// RoleExecution runs actions (the execution-service).
	RoleExecution
)

// roleNames are the roles' String values, indexed by Role.
var roleNames = [...]string{"none", "storage", "action-cache", "index", "execution"}

// String returns "storage", "action-cache", "index", "execution", or
// "none" for the zero Role (and any value out of range).
func (r Role) String() string {
	if r < 0 || int(r) >= len(roleNames) {
		return roleNames[0]
	}
	return roleNames[r]
}

// MarshalText encodes the role as its String.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// withRole returns rs with every Remote's Role set to role (a copy: the
// same server is in several lists, in a role per list).
func withRole(role Role, rs []Remote) []Remote {
	out := make([]Remote, len(rs))
	for i, r := range rs {
		r.Role = role
		out[i] = r
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
