package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
	yamlv3 "go.yaml.in/yaml/v3"
)

// LoadOptions says where Load takes configuration from.
type LoadOptions struct {
	// File is the user config file. When empty,
	// $XDG_CONFIG_HOME/castd/castd.yaml (else ~/.config/castd/castd.yaml)
	// is read if it exists; when set, the file must exist.
	File string
	// Env is the environment as "KEY=value" entries; nil means os.Environ().
	// It supplies the CASTD_* settings, $VAR expansion in paths, and the
	// XDG directories the defaults derive from.
	Env []string
	// Flags, when set, overrides everything else with the flags the user
	// changed; define them with RegisterFlags.
	Flags *pflag.FlagSet
}

// setting is a daemon key that the environment and flags can set.
type setting struct {
	key   string
	kind  string // "string", "bool", "int" or "list"
	usage string
}

// settings lists the keys settable from CASTD_* variables and flags. The
// variable name is CASTD_ followed by the key in upper case with "." and
// "-" turned into "_" (cache.quota → CASTD_CACHE_QUOTA); the flag name is
// the key itself (--cache.quota).
var settings = []setting{
	{"listen", "list", "addresses to serve on: unix:PATH, grpc://HOST:PORT, grpcs://HOST:PORT (comma-separated in CASTD_LISTEN)"},
	{"listen-tls.server-cert", "string", "server certificate for grpcs listeners"},
	{"listen-tls.server-key", "string", "server key for grpcs listeners"},
	{"listen-tls.client-ca", "string", "CA that client certificates must chain to (enables mTLS)"},
	{"listen-auth.access-token", "string", "file whose contents TCP clients must send as a bearer token"},
	{"log-request-metadata", "bool", "debugging: log the metadata key names of each RPC (never values)"},
	{"socket-mode", "string", "permission bits of the unix socket, octal (default 0600)"},
	{"metrics", "string", "Prometheus HTTP listen address; empty disables (default " + DefaultMetrics + ")"},
	{"log-level", "string", "debug, info, warn or error (default info)"},
	{"store-dir", "string", "local store directory (default $XDG_CACHE_HOME/castd)"},
	{"cache.quota", "string", "store size limit: bytes, K/M/G/T suffix, or N% of the filesystem (default " + DefaultQuota + ")"},
	{"cache.low-watermark", "string", "percentage of the quota eviction frees down to (default 80%)"},
	{"cache.reserved-disk-space", "string", "free space always left on the filesystem (default " + DefaultReservedDiskSpace + ")"},
	{"cache.upload-idle-timeout", "string", "drop a ByteStream upload after this long without progress (default 60s)"},
	{"cache.read-buffer-limit", "string", "memory ByteStream reads may hold for slow clients, e.g. 256M (default 256M)"},
	{"cache.recache-project-content", "bool", "keep content pulled from project-recommended remotes in the local store (default true)"},
	{"cache.scrub-interval", "string", "verify the whole store in the background this often, e.g. 24h (default 0: off)"},
	{"cache.max-idle-uploads", "int", "ByteStream uploads kept for resumption at once (default 256)"},
	{"cache.max-idle-upload-bytes", "string", "bytes the uploads kept for resumption may hold, e.g. 4G (default 4G)"},
	{"cache.remotes.failover-delay", "string", "time a remote with a later one behind it has to answer a read (default 1s)"},
	{"cache.remotes.stream-stall-delay", "string", "time such a remote's stream may go without bytes before the next continues it (default 5 × failover-delay)"},
	{"cache.remotes.stream-idle-timeout", "string", "cut any remote stream without progress for this long (default 60s)"},
	{"cache.remotes.max-concurrent", "int", "calls in flight to one remote (default 64)"},
	{"cache.remotes.existence-ttl", "string", "how long a remote's \"present\" answer is believed; off disables (default 60s)"},
	{"cache.remotes.existence-max-entries", "int", "entries of each remote's existence cache (default 1048576)"},
	{"cache.remotes.breaker-failures", "string", "consecutive failures that open a remote's circuit breaker; off disables (default 5)"},
	{"cache.remotes.breaker-cool-down", "string", "how long an open breaker fails fast before a probe (default 30s)"},
	{"cache.remotes.compression", "string", "auto: zstd to remotes that advertise it, never over unix:; off: identity to every remote (default auto)"},
	{"cache.push.max-pending", "int", "pushes waiting over all remotes before writes wait (default 200000)"},
	{"cache.push.full-wait", "string", "how long a write waits for room in a full push queue (default 10s)"},
	{"cache.push.backoff-min", "string", "first retry delay of a failed push (default 500ms)"},
	{"cache.push.backoff-max", "string", "longest retry delay of a failed push (default 1m)"},
	{"cache.push.batch", "int", "ready pushes of one remote taken at once (default 512)"},
	{"cache.push.parallelism", "int", "uploads in flight to one remote (default 8)"},
	{"cache.digest-functions", "list", "digest functions clients may use: sha256, sha1, md5, sha384, sha512, blake3 (default all; sha256 always)"},
	{"cache.sync-writes", "bool", "fsync each write before acknowledging it, so that it also survives a power loss (default false)"},
	{"local-execution.jobs", "int", "concurrent local actions (default: number of CPUs)"},
	{"local-execution.sandbox", "string", "none or bwrap (default none)"},
	{"local-execution.workdir", "string", "staging directory for local actions"},
	{"local-execution.cache-failures", "bool", "cache results of failed actions"},
	{"local-execution.local-fallback", "bool", "run locally when remote execution is unavailable"},
	{"local-execution.default-timeout", "string", "timeout for actions without one (e.g. 30m; 0 is none)"},
	{"local-execution.output-paths-only", "bool", "serve execution as REAPI 2.1+ only: refuse 2.0 Commands (output_files/output_directories)"},
}

// EnvName returns the environment variable that sets key, e.g.
// "cache.quota" → "CASTD_CACHE_QUOTA".
func EnvName(key string) string {
	return "CASTD_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// envIgnored are CASTD_* variables that are not settings but belong to
// the castd command line (the config file is given with --config).
var envIgnored = map[string]bool{"CASTD_CONFIG": true}

// RegisterFlags defines one flag per daemon setting on fs, named after its
// key (--log-level, --listen, --store-dir, --cache.quota, ...). Only flags
// the user sets override the file and environment.
func RegisterFlags(fs *pflag.FlagSet) {
	for _, s := range settings {
		switch s.kind {
		case "list":
			fs.StringSlice(s.key, nil, s.usage)
		case "bool":
			fs.Bool(s.key, false, s.usage)
		case "int":
			fs.Int(s.key, 0, s.usage)
		default:
			fs.String(s.key, "", s.usage)
		}
	}
}

// Load builds the user configuration from, in increasing precedence, the
// built-in defaults, the YAML file, CASTD_* environment variables and
// flags. All problems are returned together as Errors. Load reads the
// config file and checks that credential files it names are readable; it
// does nothing else with the file system.
func Load(opts LoadOptions) (*Config, error) {
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	getenv := envLookup(env)
	file, data, errs := readUserFile(opts.File, getenv)
	if errs != nil {
		return nil, errs
	}
	return load(file, data, env, opts.Flags)
}

// ParseUser validates data as the user config file named filename over the
// built-in defaults, without consulting the environment or flags (other
// than for the defaults' XDG directories and $VAR expansion).
func ParseUser(filename string, data []byte) (*Config, error) {
	return load(filename, data, nil, nil)
}

// readUserFile reads the explicit or default config file.
func readUserFile(file string, getenv func(string) string) (string, []byte, Errors) {
	explicit := file != ""
	if !explicit {
		file = defaultConfigFile(getenv)
		if file == "" {
			return "", nil, nil
		}
	}
	data, err := os.ReadFile(file)
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, Errors{{File: file, Msg: fmt.Sprintf("cannot read config file: %v", unwrapPathError(err))}}
	}
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	return file, data, nil
}

func envLookup(env []string) func(string) string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) string { return m[k] }
}

// load layers file (may be empty), env and flags over the defaults.
func load(file string, data []byte, env []string, flags *pflag.FlagSet) (*Config, error) {
	var getenv func(string) string
	if env == nil {
		getenv = os.Getenv
	} else {
		getenv = envLookup(env)
	}
	cfg := defaults(getenv)
	cfg.File = file
	d := &decoder{file: file, idx: newPosIndex(), expand: true, getenv: getenv, home: homeDir(getenv)}
	if file != "" {
		d.baseDir = filepath.Dir(file)
	}
	k := koanf.New(".")
	if file != "" {
		root, idx, errs := parseYAML(file, data)
		d.idx, d.errs = idx, errs
		switch {
		case errs != nil:
		case root != nil && root.Kind != yamlv3.MappingNode:
			d.errs = append(d.errs, Error{File: file, Line: root.Line, Col: root.Column, Msg: "expected a mapping of settings at the top level, found " + kindName(root)})
		case root != nil:
			if err := k.Load(rawbytes.Provider(data), yaml.Parser()); err != nil {
				d.errs = append(d.errs, yamlErrors(file, data, err)...)
			}
		}
	}
	if env != nil {
		d.loadEnv(k, env)
	}
	if flags != nil {
		d.loadFlags(k, flags)
	}
	if len(d.errs) == 0 {
		d.user(k.Raw(), cfg)
	}
	if err := d.errs.asError(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// loadEnv applies CASTD_* variables. An unknown CASTD_ variable is an
// error, so that a typo does not go unnoticed.
func (d *decoder) loadEnv(k *koanf.Koanf, env []string) {
	byName := map[string]setting{}
	for _, s := range settings {
		byName[EnvName(s.key)] = s
	}
	m := map[string]any{}
	names := []string{}
	vals := map[string]string{}
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "CASTD_") && !envIgnored[name] {
			names = append(names, name)
			vals[name] = val
		}
	}
	sort.Strings(names)
	for _, name := range names {
		src := pos{File: "$" + name}
		s, ok := byName[name]
		if !ok {
			d.errs = append(d.errs, Error{File: src.File, Msg: "unknown castd environment variable"})
			continue
		}
		v, err := convertSetting(s, vals[name])
		if err != nil {
			d.errs = append(d.errs, Error{File: src.File, Key: s.key, Msg: err.Error()})
			continue
		}
		m[s.key] = v
		d.idx.override(s.key, src)
	}
	if len(m) > 0 {
		_ = k.Load(confmap.Provider(m, "."), nil) // confmap never fails
	}
}

func convertSetting(s setting, v string) (any, error) {
	switch s.kind {
	case "bool":
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("expected true or false, found %q", v)
		}
		return b, nil
	case "int":
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("expected an integer, found %q", v)
		}
		return n, nil
	case "list":
		out := []any{}
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out, nil
	}
	return v, nil
}

// loadFlags applies the setting flags the user changed.
func (d *decoder) loadFlags(k *koanf.Koanf, fs *pflag.FlagSet) {
	known := map[string]bool{}
	for _, s := range settings {
		known[s.key] = true
	}
	p := posflag.ProviderWithFlag(fs, ".", nil, func(f *pflag.Flag) (string, any) {
		if !f.Changed || !known[f.Name] {
			return "", nil
		}
		d.idx.override(f.Name, pos{File: "--" + f.Name})
		return f.Name, posflag.FlagVal(fs, f)
	})
	if err := k.Load(p, nil); err != nil {
		d.errs = append(d.errs, Error{File: "flags", Msg: err.Error()})
	}
}
