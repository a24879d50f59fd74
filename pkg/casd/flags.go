// Package casd is castd standing in for BuildStream 2's local CAS daemon,
// buildbox-casd: the command line BuildStream passes when it starts the
// daemon (its _cas/casdprocessmanager.py), parsed without side effects;
// the daemon (Main, Run) over a pkg/store/casdir cache directory; and
// the build.buildgrid LocalContentAddressableStorage service with the
// filesystem work behind it (capturing files and trees, staging trees).
// On the same socket it serves castd's own REAPI handlers
// (pkg/grpcservers) over the same store, and Remote Asset answers.
//
// The LocalCAS service lives here rather than in pkg/grpcservers because
// most of it is not a thin handler: it reads and writes the client's
// files. It knows no policy of its own. The remote work of an instance
// that GetInstanceNameForRemotes handed out takes a route (route.go):
// when the user's castd daemon answers (castd_socket.go: found as bst
// finds it), everything goes to the daemon, whose castd.yaml decides pull
// order and pushes (castd's policy wins over BuildStream's push wishes,
// noted once in the log: policy_note.go); without a daemon the remotes
// BuildStream named are dialled with pkg/store/grpcclient, read through
// pkg/store/fanout into the cache directory and uploaded to unless
// read_only (remote_blobs.go, remote_cas.go). With --cas-remote (`cache:
// storage-service`) the local instance "" is itself such a remote
// instance (storage.go): misses are fetched from that CAS, captures and
// uploads go to it, through the castd daemon when one answers.
package casd

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/castd/castd/internal/longflags"
	"github.com/spf13/pflag"
)

// CompatibleVersion is the buildbox-casd version castd answers to. BuildStream
// 2.8 requires at least 1.3.41 and reads it from `--version` with the regular
// expression `.*buildbox-casd (\d+).(\d+).(\d+).*` on the first line.
const CompatibleVersion = "1.3.41"

// VersionText is what `buildbox-casd --version` prints: the compatible
// version first, as BuildStream parses it, then castd's own.
func VersionText(castdVersion string) string {
	return fmt.Sprintf("buildbox-casd %s (castd %s)\n", CompatibleVersion, castdVersion)
}

// Config is a parsed buildbox-casd command line. Zero values mean the flag
// was not given; the caller applies defaults.
type Config struct {
	Version  bool   // --version: print VersionText and exit
	Help     bool   // --help or -h: print Usage and exit
	CacheDir string // the positional argument; blobs live in CacheDir/cas/objects
	Bind     string // --bind: "unix:PATH" (BuildStream) or "HOST:PORT"
	LogLevel string // --log-level: trace, debug, info, warning or error

	QuotaHigh           Size // --quota-high: evict above this
	QuotaLow            Size // --quota-low: evict down to this (BuildStream: a percentage of QuotaHigh)
	Reserved            Size // --reserved: keep this much free on the filesystem
	ProtectSessionBlobs bool // --protect-session-blobs

	CacheFailures bool   // --cache-failures (default true; BuildStream passes false)
	BuildboxRun   string // --buildbox-run: the runner for local execution
	Jobs          int    // --jobs: concurrent local actions

	// CastdSocket is --castd-socket: the socket of the user's castd
	// daemon that remote work goes to; empty means find it as bst does
	// ($CASTD_SOCKET, castd.yaml's unix listener, the default socket),
	// NoCastd means use none. Not a buildbox-casd flag: BuildStream never
	// passes it.
	CastdSocket string

	// Remote is the storage-service remote (--cas-*), nil without --cas-remote.
	Remote *Remote
}

// Remote is the upstream CAS of BuildStream's `cache: storage-service`.
type Remote struct {
	URL                 string        // --cas-remote
	Instance            string        // --cas-instance
	ServerCert          string        // --cas-server-cert: a PEM file
	ClientKey           string        // --cas-client-key: a PEM file
	ClientCert          string        // --cas-client-cert: a PEM file
	AccessToken         string        // --cas-access-token: a file holding the token
	TokenReloadInterval time.Duration // --cas-token-reload-interval, in minutes
	KeepaliveTime       time.Duration // --cas-keepalive-time, in seconds
	RetryLimit          int           // --cas-retry-limit
	RetryDelay          time.Duration // --cas-retry-delay, in milliseconds
	RequestTimeout      time.Duration // --cas-request-timeout, in seconds
}

// Size is a byte count or a percentage, as --quota-low=80% is.
type Size struct {
	Bytes   int64
	Percent float64 // when > 0, Bytes is 0 and the size is relative
}

// IsSet reports whether the size was given.
func (s Size) IsSet() bool { return s.Bytes > 0 || s.Percent > 0 }

// Of resolves s against whole (QuotaHigh for QuotaLow): Bytes, or Percent
// of whole.
func (s Size) Of(whole int64) int64 {
	if s.Percent > 0 {
		return int64(float64(whole) * s.Percent / 100)
	}
	return s.Bytes
}

// Parse parses a buildbox-casd command line (args without the program
// name). Every flag not listed in Config is an error naming all of them.
// Values take either form, `--flag=value` or `--flag value`.
func Parse(args []string) (Config, error) {
	var c Config
	var r Remote
	fs := newFlagSet(&c, &r)
	if unknown := longflags.Unknown(fs, args, "-h"); len(unknown) > 0 {
		return Config{}, fmt.Errorf("buildbox-casd: unknown flag(s) %s (castd accepts the flags BuildStream 2 passes: %s)",
			strings.Join(unknown, ", "), strings.Join(longflags.Names(fs), ", "))
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("buildbox-casd: %w", err)
	}
	if fs.Changed("cas-remote") {
		c.Remote = &r
	} else if names := changedWithPrefix(fs, "cas-"); len(names) > 0 {
		return Config{}, fmt.Errorf("buildbox-casd: %s given without --cas-remote", strings.Join(names, ", "))
	}
	return c, checkPositional(&c, fs.Args())
}

// newFlagSet declares every flag into c and r.
func newFlagSet(c *Config, r *Remote) *pflag.FlagSet {
	fs := pflag.NewFlagSet("buildbox-casd", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.BoolVar(&c.Version, "version", false, "print the version and exit")
	fs.BoolVarP(&c.Help, "help", "h", false, "print this help and exit")
	fs.StringVar(&c.Bind, "bind", "", "address to serve on")
	fs.Var(&logLevel{&c.LogLevel}, "log-level", "trace, debug, info, warning or error")
	fs.Var(&sizeValue{&c.QuotaHigh}, "quota-high", "evict above this size")
	fs.Var(&sizeValue{&c.QuotaLow}, "quota-low", "evict down to this size")
	fs.Var(&sizeValue{&c.Reserved}, "reserved", "space to keep free on the filesystem")
	fs.BoolVar(&c.ProtectSessionBlobs, "protect-session-blobs", false, "never evict blobs used in this session")
	fs.BoolVar(&c.CacheFailures, "cache-failures", true, "cache results of failed actions")
	fs.StringVar(&c.BuildboxRun, "buildbox-run", "", "runner for local execution")
	fs.IntVar(&c.Jobs, "jobs", 0, "concurrent local actions")
	fs.StringVar(&c.CastdSocket, "castd-socket", "", "castd daemon socket for remote work ('none': contact remotes directly)")
	fs.StringVar(&r.URL, "cas-remote", "", "storage-service URL")
	fs.StringVar(&r.Instance, "cas-instance", "", "storage-service instance name")
	fs.StringVar(&r.ServerCert, "cas-server-cert", "", "server certificate file")
	fs.StringVar(&r.ClientKey, "cas-client-key", "", "client key file")
	fs.StringVar(&r.ClientCert, "cas-client-cert", "", "client certificate file")
	fs.StringVar(&r.AccessToken, "cas-access-token", "", "access token file")
	fs.Var(&durationValue{&r.TokenReloadInterval, time.Minute}, "cas-token-reload-interval", "minutes")
	fs.Var(&durationValue{&r.KeepaliveTime, time.Second}, "cas-keepalive-time", "seconds")
	fs.IntVar(&r.RetryLimit, "cas-retry-limit", 0, "retries per request")
	fs.Var(&durationValue{&r.RetryDelay, time.Millisecond}, "cas-retry-delay", "milliseconds")
	fs.Var(&durationValue{&r.RequestTimeout, time.Second}, "cas-request-timeout", "seconds")
	return fs
}

// Usage is what `buildbox-casd --help` prints: the synopsis and every
// flag castd accepts.
func Usage() string {
	fs := newFlagSet(&Config{}, &Remote{})
	return "usage: buildbox-casd [flags] CACHE_DIRECTORY\n\n" +
		"castd standing in for buildbox-casd, BuildStream 2's local CAS daemon.\n\nFlags:\n" + fs.FlagUsages()
}

// checkPositional takes the cache directory: required unless --version
// or --help
// (BuildStream passes "/" with --version, as some buildbox-casd versions
// required), and only one.
func checkPositional(c *Config, rest []string) error {
	switch {
	case len(rest) > 1:
		return fmt.Errorf("buildbox-casd: one cache directory expected, got %d arguments: %s", len(rest), strings.Join(rest, " "))
	case len(rest) == 1:
		c.CacheDir = rest[0]
	case !c.Version && !c.Help:
		return errors.New("buildbox-casd: the cache directory (the last argument) is missing")
	}
	return nil
}

// changedWithPrefix lists the flags given whose name starts with prefix.
func changedWithPrefix(fs *pflag.FlagSet, prefix string) []string {
	var names []string
	fs.Visit(func(f *pflag.Flag) {
		if strings.HasPrefix(f.Name, prefix) {
			names = append(names, "--"+f.Name)
		}
	})
	return names
}

// logLevels are the levels buildbox-casd accepts; BuildStream passes
// warning, info or trace.
var logLevels = []string{"trace", "debug", "info", "warning", "error"}

type logLevel struct{ p *string }

func (l *logLevel) String() string { return *l.p }
func (l *logLevel) Type() string   { return "level" }
func (l *logLevel) Set(v string) error {
	if !slices.Contains(logLevels, v) {
		return fmt.Errorf("%q is not one of %s", v, strings.Join(logLevels, ", "))
	}
	*l.p = v
	return nil
}

// sizeValue parses bytes (with an optional K, M, G or T suffix, powers of
// 1024) or a percentage ("80%").
type sizeValue struct{ p *Size }

func (s *sizeValue) String() string {
	if s.p.Percent > 0 {
		return strconv.FormatFloat(s.p.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatInt(s.p.Bytes, 10)
}
func (s *sizeValue) Type() string { return "size" }
func (s *sizeValue) Set(v string) error {
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil || f <= 0 || f > 100 {
			return fmt.Errorf("%q is not a percentage in (0, 100]", v)
		}
		*s.p = Size{Percent: f}
		return nil
	}
	mult := int64(1)
	if i := strings.IndexAny(v, "KMGT"); i >= 0 && i == len(v)-1 {
		mult = int64(1) << (10 * (strings.IndexByte("KMGT", v[i]) + 1))
		v = v[:i]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size in bytes (optionally K, M, G, T) or a percentage", v)
	}
	*s.p = Size{Bytes: n * mult}
	return nil
}

// durationValue parses a whole number of unit.
type durationValue struct {
	p    *time.Duration
	unit time.Duration
}

func (d *durationValue) String() string { return strconv.FormatInt(int64(*d.p/d.unit), 10) }
func (d *durationValue) Type() string   { return "int" }
func (d *durationValue) Set(v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a whole non-negative number", v)
	}
	*d.p = time.Duration(n) * d.unit
	return nil
}
