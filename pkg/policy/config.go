package policy

import (
	"io/fs"
	"time"

	"github.com/castd/castd/pkg/digest"
)

// Config is castd's whole user configuration: the daemon's own settings and
// the BuildStream-compatible remote sections. Load and ParseUser return it
// validated, with every path expanded and made relative to the right
// directory. A Config is a plain value: read it from many goroutines, but do
// not mutate one that others are reading.
type Config struct {
	// File is the configuration file that was read, or "" when none was.
	File string `json:"file"`

	Listen     []Listener `json:"listen"`
	ListenTLS  ListenTLS  `json:"listen-tls"`
	ListenAuth ListenAuth `json:"listen-auth"`
	// RegistrationTTL drops a project registration (bst remotes --project)
	// that no request has used for this long; zero keeps them forever.
	RegistrationTTL time.Duration `json:"registration-ttl"`
	// LogRequestMetadata is a debugging switch: log, per RPC, the metadata
	// key names a client sent and whether it carried an authorization
	// header (never the header's value).
	LogRequestMetadata bool        `json:"log-request-metadata"`
	SocketMode         fs.FileMode `json:"socket-mode"`
	Metrics            string      `json:"metrics"`
	// MetricsSet is true when the file, environment or a flag set
	// metrics, even to its default value: a busy address the user chose is
	// an error, a busy built-in default only a warning.
	MetricsSet     bool                `json:"-"`
	LogLevel       string              `json:"log-level"`
	StoreDir       string              `json:"store-dir"`
	Cache          Cache               `json:"cache"`
	LocalExecution LocalExecution      `json:"local-execution"`
	RemotePlatform map[string][]string `json:"remote-platform"`

	Artifacts       Section                    `json:"artifacts"`
	SourceCaches    Section                    `json:"source-caches"`
	RemoteExecution *RemoteExecution           `json:"remote-execution"`
	Projects        map[string]ProjectOverride `json:"projects"`

	// BuildStreamSettings are the keys of BuildStream 2's user
	// configuration found in the file that castd accepts but does not use
	// (cachedir, scheduler, projects.NAME.strict, ...), positioned like
	// errors, each with the message BuildStreamSettingMsg.
	BuildStreamSettings []Error `json:"buildstream-settings,omitempty"`
}

// Listener is one address castd serves on: "unix:PATH", "grpc://HOST:PORT"
// or "grpcs://HOST:PORT" (TLS with ListenTLS).
type Listener struct {
	// Scheme is "unix", "grpc" or "grpcs".
	Scheme string `json:"scheme"`
	// Address is the socket path for unix, HOST:PORT otherwise.
	Address string `json:"address"`
}

// Network returns the net.Listen network: "unix" or "tcp".
func (l Listener) Network() string {
	if l.Scheme == "unix" {
		return "unix"
	}
	return "tcp"
}

// TLS reports whether the listener serves TLS (the grpcs scheme).
func (l Listener) TLS() bool { return l.Scheme == "grpcs" }

// String returns the listener in configuration syntax.
func (l Listener) String() string {
	if l.Scheme == "unix" {
		return "unix:" + l.Address
	}
	return l.Scheme + "://" + l.Address
}

// ListenTLS is the server certificate for grpcs listeners; ClientCA, when
// set, makes castd require and verify client certificates (mTLS).
type ListenTLS struct {
	ServerCert string `json:"server-cert"`
	ServerKey  string `json:"server-key"`
	ClientCA   string `json:"client-ca"`
}

// ListenAuth is what clients on TCP listeners must present. When
// AccessToken is set, every RPC on a grpc:// or grpcs:// listener must carry
// "authorization: Bearer <token>" with the file's contents (trimmed); Unix
// socket clients are not asked. The field is the file path, not the token.
type ListenAuth struct {
	AccessToken string `json:"access-token"`
}

// Cache holds the local store's limits and the optional remote CAS that
// backs it.
type Cache struct {
	// Quota is the most the store may hold.
	Quota Quota `json:"quota"`
	// LowWatermark is the percentage of Quota eviction brings usage down to.
	LowWatermark float64 `json:"low-watermark"`
	// ReservedDiskSpace is the free space the store always leaves on its
	// filesystem, whatever Quota says; the zero Quota (configured as 0)
	// means no reserve.
	ReservedDiskSpace Quota `json:"reserved-disk-space"`
	// StorageService is a remote CAS used as the primary store, the local
	// store filling on demand; nil when not configured.
	StorageService *Service `json:"storage-service"`
	// RecacheProjectContent controls whether content pulled from
	// project-recommended remotes is kept in the local store.
	RecacheProjectContent bool `json:"recache-project-content"`
	// ScrubInterval is how often the whole local store is verified in the
	// background (corrupt blobs deleted and refetched); zero, the default,
	// turns the background scrub off.
	ScrubInterval time.Duration `json:"scrub-interval"`
	// UploadIdleTimeout is how long a ByteStream upload may make no
	// progress before it is dropped (an open stream is closed, a broken
	// one is no longer resumable); zero means the server's default (60s).
	UploadIdleTimeout time.Duration `json:"upload-idle-timeout"`
	// ReadBufferLimit bounds, in bytes, the memory ByteStream reads hold
	// for clients that have not received it yet; zero means the server's
	// default (256M).
	ReadBufferLimit int64 `json:"read-buffer-limit"`
	// SyncWrites fsyncs every write to the store (blob files, packs, the
	// index and so the write-back queue) before it is acknowledged, so
	// that acknowledged writes also survive a power loss or kernel crash.
	// Off by default: kill -9 loses nothing either way.
	SyncWrites bool `json:"sync-writes"`
	// DigestFunctions are the digest functions castd accepts from clients
	// and advertises in Capabilities, e.g. [sha256, blake3]. Empty (the
	// default) means every function castd verifies: SHA256, SHA1, MD5,
	// SHA384, SHA512 and BLAKE3. SHA256 is always included.
	DigestFunctions []digest.Function `json:"digest-functions"`

	// MaxIdleUploads and MaxIdleUploadBytes bound the ByteStream uploads
	// kept for resumption, by count and by the bytes of their spool
	// files; zero means the server's default.
	MaxIdleUploads     int   `json:"max-idle-uploads"`
	MaxIdleUploadBytes int64 `json:"max-idle-upload-bytes"`

	// Remotes tunes the read fan-out and the client of every remote.
	Remotes RemoteTuning `json:"remotes"`
	// Push tunes the write-back queue.
	Push PushTuning `json:"push"`
}

// RemoteTuning is cache.remotes: how castd reads from and talks to its
// remotes, for all of them. A zero field means the default
// (internal/defaults); ExistenceTTL and BreakerFailures are negative when
// the file says off.
type RemoteTuning struct {
	// FailoverDelay is how long a remote with a later one behind it may
	// take to answer a read before the next is asked.
	FailoverDelay time.Duration `json:"failover-delay"`
	// StreamStallDelay is how long a stream from such a remote may go
	// without bytes, once started, before it is continued from the next.
	StreamStallDelay time.Duration `json:"stream-stall-delay"`
	// StreamIdleTimeout cuts any remote stream without progress.
	StreamIdleTimeout time.Duration `json:"stream-idle-timeout"`
	// MaxConcurrent bounds the calls in flight to one remote.
	MaxConcurrent int `json:"max-concurrent"`
	// ExistenceTTL is how long a remote's "present" answer is believed.
	ExistenceTTL time.Duration `json:"existence-ttl"`
	// ExistenceMaxEntries bounds each remote's existence cache.
	ExistenceMaxEntries int `json:"existence-max-entries"`
	// BreakerFailures consecutive failures open a remote's breaker, for
	// BreakerCoolDown.
	BreakerFailures int           `json:"breaker-failures"`
	BreakerCoolDown time.Duration `json:"breaker-cool-down"`
	// Compression is CompressionAuto (the default; empty means the same):
	// zstd toward a remote whose Capabilities list it, except over a Unix
	// socket, or CompressionOff: identity toward every remote.
	Compression string `json:"compression"`
}

// The values of cache.remotes.compression.
const (
	// CompressionAuto transfers zstd to a remote that advertises it,
	// never over unix:.
	CompressionAuto = "auto"
	// CompressionOff transfers identity (uncompressed) to every remote.
	CompressionOff = "off"
)

// PushTuning is cache.push: the write-back queue's bounds and retry
// delays. A zero field means the default (internal/defaults).
type PushTuning struct {
	// MaxPending bounds the entries waiting over all remotes.
	MaxPending int `json:"max-pending"`
	// FullWait is how long a write waits for room in a full queue.
	FullWait time.Duration `json:"full-wait"`
	// BackoffMin and BackoffMax bound a failed push's retry delay.
	BackoffMin time.Duration `json:"backoff-min"`
	BackoffMax time.Duration `json:"backoff-max"`
	// Batch is how many ready entries of one remote a worker takes.
	Batch int `json:"batch"`
	// Parallelism bounds the uploads in flight to one remote.
	Parallelism int `json:"parallelism"`
}

// LocalExecution configures actions run on this machine.
type LocalExecution struct {
	Jobs    int    `json:"jobs"`
	Sandbox string `json:"sandbox"`
	// Workdir is where inputs are staged; empty means a directory under
	// StoreDir, chosen by the executor.
	Workdir       string `json:"workdir"`
	CacheFailures bool   `json:"cache-failures"`
	LocalFallback bool   `json:"local-fallback"`
	// OutputPathsOnly makes castd's Execution service one of REAPI 2.1 and
	// later only, as Buildbarn is: Capabilities advertise low_api_version
	// 2.1 and a Command listing its outputs only in the 2.0 output_files
	// and output_directories is refused with FAILED_PRECONDITION.
	OutputPathsOnly bool `json:"output-paths-only"`
	// DefaultTimeout applies to actions without a timeout; zero is no limit.
	DefaultTimeout time.Duration `json:"default-timeout"`
}

// Section is a user-config `artifacts` or `source-caches` block.
type Section struct {
	OverrideProjectCaches bool     `json:"override-project-caches"`
	Servers               []Server `json:"servers"`
}

// RemoteType is a server's role: index (Remote Asset and ActionCache
// references), storage (CAS blobs) or both.
type RemoteType string

// The server types; "both" in a file is read as TypeAll.
const (
	TypeAll     RemoteType = "all"
	TypeIndex   RemoteType = "index"
	TypeStorage RemoteType = "storage"
)

// Index reports whether the server holds references (index role).
func (t RemoteType) Index() bool { return t == TypeAll || t == TypeIndex }

// Storage reports whether the server holds blobs (storage role).
func (t RemoteType) Storage() bool { return t == TypeAll || t == TypeStorage }

// Server is one artifact or source cache server.
type Server struct {
	URL  string     `json:"url"`
	Type RemoteType `json:"type"`
	// Push is the configured value; nil when the file does not say.
	Push             *bool            `json:"push"`
	InstanceName     string           `json:"instance-name"`
	Auth             Auth             `json:"auth"`
	ConnectionConfig ConnectionConfig `json:"connection-config"`
}

// Auth is the credentials configured for one remote. The fields are file
// paths (already resolved), never the secrets themselves.
type Auth struct {
	ServerCert                string        `json:"server-cert"`
	ClientKey                 string        `json:"client-key"`
	ClientCert                string        `json:"client-cert"`
	AccessToken               string        `json:"access-token"`
	AccessTokenReloadInterval time.Duration `json:"access-token-reload-interval"`
}

// HasClientCredentials reports whether the remote authenticates the client:
// a client certificate and key, or an access token.
func (a Auth) HasClientCredentials() bool {
	return a.ClientCert != "" && a.ClientKey != "" || a.AccessToken != ""
}

// ConnectionConfig tunes the gRPC connection to one remote; a zero
// duration means the client's default (keepalive-time: no pings).
// RetryLimit is nil when retry-limit is not set (the client's default);
// 0 means no retries.
type ConnectionConfig struct {
	KeepaliveTime  time.Duration `json:"keepalive-time"`
	RetryLimit     *int          `json:"retry-limit,omitempty"`
	RetryDelay     time.Duration `json:"retry-delay"`
	RequestTimeout time.Duration `json:"request-timeout"`
}

// Service is one service block of `remote-execution` or
// `cache.storage-service`. Push is only ever set on an action-cache-service.
type Service struct {
	URL              string           `json:"url"`
	InstanceName     string           `json:"instance-name"`
	Auth             Auth             `json:"auth"`
	ConnectionConfig ConnectionConfig `json:"connection-config"`
	Push             *bool            `json:"push,omitempty"`
}

// RemoteExecution is the BuildStream `remote-execution` block. At least one
// of ExecutionService and ActionCacheService is set; StorageService is nil
// only when cache.storage-service is configured.
type RemoteExecution struct {
	ExecutionService   *Service `json:"execution-service"`
	StorageService     *Service `json:"storage-service"`
	ActionCacheService *Service `json:"action-cache-service"`
}

// ProjectOverride is one `projects: NAME:` entry of the user config; nil
// fields were not given and leave the global setting in force.
type ProjectOverride struct {
	Artifacts       *Section         `json:"artifacts"`
	SourceCaches    *Section         `json:"source-caches"`
	RemoteExecution *RemoteExecution `json:"remote-execution"`
}

// Project is what castd takes from a project's project.conf: its name and
// recommended cache servers, with auth paths resolved against Dir.
type Project struct {
	Name         string   `json:"name"`
	Dir          string   `json:"dir"`
	Artifacts    []Server `json:"artifacts"`
	SourceCaches []Server `json:"source-caches"`
}
