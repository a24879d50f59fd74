package policy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// Built-in defaults that are not derived from the environment.
const (
	// DefaultMetrics is the Prometheus listener: loopback only, so that a
	// workstation does not expose it.
	DefaultMetrics = "127.0.0.1:9091"
	// DefaultSocketMode keeps the socket private to the user.
	DefaultSocketMode fs.FileMode = 0o600
	// DefaultLogLevel is the log level when none is configured.
	DefaultLogLevel = "info"
	// DefaultQuota is a fixed size rather than a percentage so that a store
	// on a large shared disk does not silently grow to hundreds of GB.
	DefaultQuota = "10G"
	// DefaultLowWatermark is the percentage of the quota eviction frees down to.
	DefaultLowWatermark = 80.0
	// DefaultReservedDiskSpace is the free space always left on the store's
	// filesystem.
	DefaultReservedDiskSpace = "5%"
)

// Defaults returns the built-in configuration for the current process's
// environment: castd with these settings runs with a local store only.
func Defaults() *Config {
	return defaults(os.Getenv)
}

// defaults builds the built-in configuration; getenv supplies
// XDG_RUNTIME_DIR, XDG_CACHE_HOME and HOME.
func defaults(getenv func(string) string) *Config {
	quota, _ := ParseQuota(DefaultQuota)
	reserved, _ := ParseQuota(DefaultReservedDiskSpace)
	return &Config{
		Listen:     []Listener{{Scheme: "unix", Address: defaultSocket(getenv)}},
		SocketMode: DefaultSocketMode,
		Metrics:    DefaultMetrics,
		LogLevel:   DefaultLogLevel,
		StoreDir:   defaultStoreDir(getenv),
		// RegistrationTTL: a month without a build in a checkout.
		RegistrationTTL: 30 * 24 * time.Hour,
		Cache: Cache{
			Quota:                 quota,
			LowWatermark:          DefaultLowWatermark,
			ReservedDiskSpace:     reserved,
			RecacheProjectContent: true,
			Remotes:               RemoteTuning{Compression: CompressionAuto},
		},
		LocalExecution: LocalExecution{Jobs: runtime.NumCPU(), Sandbox: "none"},
		RemotePlatform: map[string][]string{},
		Projects:       map[string]ProjectOverride{},
	}
}

// defaultSocket is $XDG_RUNTIME_DIR/castd/castd.sock, else a per-user
// directory under the temporary directory.
func defaultSocket(getenv func(string) string) string {
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "castd", "castd.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("castd-%d", os.Getuid()), "castd.sock")
}

// defaultStoreDir is $XDG_CACHE_HOME/castd, else ~/.cache/castd.
func defaultStoreDir(getenv func(string) string) string {
	if d := getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "castd")
	}
	if h := homeDir(getenv); h != "" {
		return filepath.Join(h, ".cache", "castd")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("castd-%d", os.Getuid()), "store")
}

// defaultConfigFile is $XDG_CONFIG_HOME/castd/castd.yaml, else
// ~/.config/castd/castd.yaml; Load reads it only when it exists.
func defaultConfigFile(getenv func(string) string) string {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "castd", "castd.yaml")
	}
	if h := homeDir(getenv); h != "" {
		return filepath.Join(h, ".config", "castd", "castd.yaml")
	}
	return ""
}

func homeDir(getenv func(string) string) string {
	if h := getenv("HOME"); h != "" {
		return h
	}
	h, _ := os.UserHomeDir()
	return h
}

// ConfiguredSocket is the path of the first unix listener of the user's
// configuration as Load reads it without flags (castd.yaml and CASTD_*
// variables; castd's defaults when that cannot be read), or "" when it
// listens on no unix socket: where a client on this machine finds the
// daemon when it is given no socket. It reads the configuration file on
// every call.
func ConfiguredSocket() string {
	cfg, err := Load(LoadOptions{})
	if err != nil {
		cfg = Defaults()
	}
	for _, l := range cfg.Listen {
		if l.Scheme == "unix" {
			return l.Address
		}
	}
	return ""
}
