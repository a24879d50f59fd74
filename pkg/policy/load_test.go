package policy_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/policy"
	"github.com/spf13/pflag"
)

func TestParseQuota(t *testing.T) {
	tests := []struct {
		name, in string
		want     policy.Quota
		bad      bool
	}{
		// Each valid form from the documentation, and the mistakes users make.
		{name: "plain bytes", in: "1000", want: policy.Quota{Bytes: 1000}},
		{name: "kibibytes", in: "512K", want: policy.Quota{Bytes: 512 << 10}},
		{name: "gibibytes", in: "20G", want: policy.Quota{Bytes: 20 << 30}},
		{name: "fractional tebibytes", in: "1.5T", want: policy.Quota{Bytes: 3 << 39}},
		{name: "lower case suffix", in: "2m", want: policy.Quota{Bytes: 2 << 20}},
		{name: "percentage", in: "50%", want: policy.Quota{Percent: 50}},
		{name: "zero", in: "0", bad: true},
		{name: "negative", in: "-5G", bad: true},
		{name: "unknown suffix", in: "5X", bad: true},
		{name: "over 100 percent", in: "150%", bad: true},
		{name: "empty", in: "", bad: true},
		{name: "overflow", in: "99999999999T", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: the quota syntax is shared by quota and reserved-disk-space.
			got, err := policy.ParseQuota(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseQuota(%q) = %+v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseQuota(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if back, err := policy.ParseQuota(got.String()); err != nil || back != got {
				t.Errorf("String() %q does not round-trip: %+v, %v", got.String(), back, err)
			}
		})
	}
}

func TestReservedDiskSpaceZero(t *testing.T) {
	tests := []struct {
		name, file string
		env        []string
		want       policy.Quota
		bad        bool
	}{
		// Zero is "no reserve" here (it is no valid quota), in every spelling and layer.
		{name: "integer zero in the file", file: "cache: {reserved-disk-space: 0}\n"},
		{name: "zero percent in the file", file: "cache: {reserved-disk-space: 0%}\n"},
		{name: "zero with a suffix in the environment", env: []string{"CASTD_CACHE_RESERVED_DISK_SPACE=0G"}},
		{name: "a size still parses", file: "cache: {reserved-disk-space: 2G}\n", want: policy.Quota{Bytes: 2 << 30}},
		{name: "negative is still refused", file: "cache: {reserved-disk-space: -1}\n", bad: true},
		{name: "zero with an unknown suffix is refused", file: "cache: {reserved-disk-space: 0X}\n", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "castd.yaml")
			if err := os.WriteFile(file, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := policy.Load(policy.LoadOptions{File: file, Env: append([]string{"HOME=" + dir}, tc.env...)})
			if tc.bad {
				if err == nil || !strings.Contains(err.Error(), "reserved-disk-space") {
					t.Fatalf("Load = %v, want an error naming cache.reserved-disk-space", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Cache.ReservedDiskSpace != tc.want {
				t.Errorf("ReservedDiskSpace = %+v, want %+v", cfg.Cache.ReservedDiskSpace, tc.want)
			}
		})
	}
}

func TestLoadDefaults(t *testing.T) {
	// castd with no config file runs on its embedded defaults, derived from XDG.
	env := []string{"XDG_RUNTIME_DIR=/run/user/1000", "XDG_CACHE_HOME=/home/u/.cache", "XDG_CONFIG_HOME=" + t.TempDir(), "HOME=/home/u"}
	cfg, err := policy.Load(policy.LoadOptions{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != "" {
		t.Errorf("File = %q, want none", cfg.File)
	}
	if len(cfg.Listen) != 1 || cfg.Listen[0].String() != "unix:/run/user/1000/castd/castd.sock" {
		t.Errorf("Listen = %v", cfg.Listen)
	}
	if cfg.StoreDir != "/home/u/.cache/castd" || cfg.SocketMode != 0o600 || cfg.LogLevel != "info" || cfg.Metrics != policy.DefaultMetrics {
		t.Errorf("defaults = %+v", cfg)
	}
	if cfg.LocalExecution.Jobs < 1 || cfg.LocalExecution.Sandbox != "none" || !cfg.Cache.RecacheProjectContent {
		t.Errorf("defaults = %+v", cfg)
	}
	if policy.Resolve(cfg, nil).Scenario != policy.ScenarioLocal {
		t.Errorf("default scenario is not local")
	}
}

func TestLoadLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "castd.yaml")
	text := "log-level: warn\nstore-dir: store\nsocket-mode: 0660\ncache:\n  quota: 5G\n  low-watermark: 70%\nlisten: [unix:~/castd.sock]\n"
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"HOME=/home/u", "XDG_RUNTIME_DIR=/run/user/1"}
	tests := []struct {
		name, why string
		env       []string
		flags     []string
		check     func(t *testing.T, cfg *policy.Config)
	}{
		{
			name: "file over defaults",
			why:  "the file's values replace the defaults; relative paths resolve against its directory",
			check: func(t *testing.T, cfg *policy.Config) {
				if cfg.LogLevel != "warn" || cfg.StoreDir != filepath.Join(dir, "store") || cfg.SocketMode != 0o660 {
					t.Errorf("cfg = %+v", cfg)
				}
				if cfg.Cache.Quota.Bytes != 5<<30 || cfg.Cache.LowWatermark != 70 || cfg.Cache.ReservedDiskSpace.Percent != 5 {
					t.Errorf("cache = %+v", cfg.Cache)
				}
				if cfg.Listen[0].Address != "/home/u/castd.sock" {
					t.Errorf("listen = %v, want ~ expanded", cfg.Listen)
				}
			},
		},
		{
			name: "environment over file",
			why:  "CASTD_* variables override the file key by key",
			env:  []string{"CASTD_LOG_LEVEL=debug", "CASTD_CACHE_QUOTA=10%", "CASTD_LOCAL_EXECUTION_JOBS=3", "CASTD_LISTEN=unix:/tmp/a.sock, grpc://127.0.0.1:8980", "CASTD_CACHE_SCRUB_INTERVAL=12h"},
			check: func(t *testing.T, cfg *policy.Config) {
				if cfg.LogLevel != "debug" || cfg.Cache.Quota.Percent != 10 || cfg.Cache.LowWatermark != 70 || cfg.LocalExecution.Jobs != 3 || cfg.Cache.ScrubInterval != 12*time.Hour {
					t.Errorf("cfg = %+v", cfg)
				}
				if len(cfg.Listen) != 2 || cfg.Listen[1].String() != "grpc://127.0.0.1:8980" {
					t.Errorf("listen = %v", cfg.Listen)
				}
			},
		},
		{
			name:  "flags over environment",
			why:   "a flag the user set wins over everything; unset flags change nothing",
			env:   []string{"CASTD_LOG_LEVEL=debug", "CASTD_METRICS="},
			flags: []string{"--log-level=error", "--cache.quota=1T", "--local-execution.cache-failures"},
			check: func(t *testing.T, cfg *policy.Config) {
				if cfg.LogLevel != "error" || cfg.Cache.Quota.Bytes != 1<<40 || !cfg.LocalExecution.CacheFailures || cfg.Metrics != "" {
					t.Errorf("cfg = %+v", cfg)
				}
				if cfg.StoreDir != filepath.Join(dir, "store") || cfg.SocketMode != fs.FileMode(0o660) {
					t.Errorf("unset flags overrode the file: %+v", cfg)
				}
			},
		},
		{
			name:  "tuning from environment and flags",
			why:   "the nested cache.remotes and cache.push keys are settable like any other, off included",
			env:   []string{"CASTD_CACHE_REMOTES_EXISTENCE_TTL=off", "CASTD_CACHE_REMOTES_MAX_CONCURRENT=8", "CASTD_CACHE_PUSH_BACKOFF_MAX=2m", "CASTD_CACHE_REMOTES_COMPRESSION=off"},
			flags: []string{"--cache.remotes.breaker-failures=3", "--cache.push.batch=10", "--cache.max-idle-upload-bytes=2G"},
			check: func(t *testing.T, cfg *policy.Config) {
				r, p := cfg.Cache.Remotes, cfg.Cache.Push
				if r.ExistenceTTL != -1 || r.MaxConcurrent != 8 || r.BreakerFailures != 3 || r.Compression != policy.CompressionOff || p.BackoffMax != 2*time.Minute || p.Batch != 10 || cfg.Cache.MaxIdleUploadBytes != 2<<30 {
					t.Errorf("remotes %+v, push %+v, max-idle-upload-bytes %d", r, p, cfg.Cache.MaxIdleUploadBytes)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			fset := pflag.NewFlagSet("castd", pflag.ContinueOnError)
			policy.RegisterFlags(fset)
			if err := fset.Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			cfg, err := policy.Load(policy.LoadOptions{File: file, Env: append(append([]string{}, base...), tc.env...), Flags: fset})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tc.check(t, cfg)
		})
	}
}

func TestLoadLayerErrors(t *testing.T) {
	tests := []struct {
		name, why string
		env       []string
		flags     []string
		want      string
	}{
		{
			name: "bad environment value",
			why:  "an environment error names the variable and the key",
			env:  []string{"CASTD_LOG_LEVEL=chatty"},
			want: `$CASTD_LOG_LEVEL: log-level: expected one of debug, info, warn, error, found "chatty"`,
		},
		{
			name: "unknown environment variable",
			why:  "a misspelt CASTD_ variable must not be ignored",
			env:  []string{"CASTD_LOG_LEVLE=debug"},
			want: `$CASTD_LOG_LEVLE: unknown castd environment variable`,
		},
		{
			name: "environment type error",
			why:  "integers are parsed before merging and the error names the variable",
			env:  []string{"CASTD_LOCAL_EXECUTION_JOBS=many"},
			want: `$CASTD_LOCAL_EXECUTION_JOBS: local-execution.jobs: expected an integer, found "many"`,
		},
		{
			name:  "bad scrub interval",
			why:   "cache.scrub-interval is a duration; the error names the flag and the key",
			flags: []string{"--cache.scrub-interval=daily"},
			want:  `--cache.scrub-interval: cache.scrub-interval: expected a duration such as 90s or 10m (or whole seconds), found "daily"`,
		},
		{
			name: "bad tuning count",
			why:  "a count given as a string (flag or variable) must be a whole number; off is only for the keys that allow it",
			env:  []string{"CASTD_CACHE_REMOTES_BREAKER_FAILURES=never"},
			want: `$CASTD_CACHE_REMOTES_BREAKER_FAILURES: cache.remotes.breaker-failures: expected a whole number, found "never"`,
		},
		{
			name:  "bad flag value",
			why:   "a flag error names the flag and the key",
			flags: []string{"--cache.quota=lots"},
			want:  `--cache.quota: cache.quota: invalid size "lots": expected a byte count (1000), a size with a K, M, G or T suffix (512K, 20G, 1.5T; powers of 1024), or a percentage of the filesystem (50%)`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			fset := pflag.NewFlagSet("castd", pflag.ContinueOnError)
			policy.RegisterFlags(fset)
			if err := fset.Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			env := append([]string{"HOME=/h", "XDG_CONFIG_HOME=" + t.TempDir()}, tc.env...)
			_, err := policy.Load(policy.LoadOptions{Env: env, Flags: fset})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Load error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoadMissingExplicitFile(t *testing.T) {
	// --config naming a file that does not exist is an error, not "use defaults".
	_, err := policy.Load(policy.LoadOptions{File: filepath.Join(t.TempDir(), "nope.yaml"), Env: []string{}})
	if err == nil || !strings.Contains(err.Error(), "cannot read config file") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadProjectReadsProjectConf(t *testing.T) {
	// LoadProject is ParseProject on dir/project.conf.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "project.conf"), []byte("name: x\nartifacts: [{url: 'grpc://h:1'}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := policy.LoadProject(dir)
	if err != nil || p.Name != "x" || p.Dir != dir || len(p.Artifacts) != 1 {
		t.Fatalf("LoadProject = %+v, %v", p, err)
	}
	if _, err := policy.LoadProject(t.TempDir()); err == nil {
		t.Fatalf("LoadProject of a directory without project.conf succeeded")
	}
}

func TestCacheDigestFunctions(t *testing.T) {
	// cache.digest-functions narrows what castd accepts; SHA-256 stays, as
	// clients that name no function use it.
	dir := t.TempDir()
	file := filepath.Join(dir, "castd.yaml")
	if err := os.WriteFile(file, []byte("cache:\n  digest-functions: [blake3, SHA1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(policy.LoadOptions{File: file, Env: []string{"HOME=/home/u", "XDG_CONFIG_HOME=" + t.TempDir()}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := []digest.Function{digest.SHA256, digest.SHA1, digest.BLAKE3}
	if !slices.Equal(cfg.Cache.DigestFunctions, want) {
		t.Fatalf("digest-functions = %v, want %v", cfg.Cache.DigestFunctions, want)
	}
}

func TestCacheSyncWrites(t *testing.T) {
	// cache.sync-writes is off unless set, from the file or the environment.
	dir := t.TempDir()
	file := filepath.Join(dir, "castd.yaml")
	if err := os.WriteFile(file, []byte("cache:\n  sync-writes: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"HOME=/home/u", "XDG_CONFIG_HOME=" + t.TempDir()}
	for _, tc := range []struct {
		name string
		opts policy.LoadOptions
		want bool
	}{
		{"default", policy.LoadOptions{Env: base}, false},
		{"file", policy.LoadOptions{File: file, Env: base}, true},
		{"environment", policy.LoadOptions{Env: append(base, "CASTD_CACHE_SYNC_WRITES=true")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := policy.Load(tc.opts)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.Cache.SyncWrites != tc.want {
				t.Errorf("cache.sync-writes = %v, want %v", cfg.Cache.SyncWrites, tc.want)
			}
		})
	}
}
