package policy

import (
	"io/fs"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	userKeys = []string{
		"listen", "listen-tls", "listen-auth", "log-request-metadata", "socket-mode", "metrics", "log-level", "store-dir",
		"registration-ttl",
		"cache", "local-execution", "remote-platform",
		"artifacts", "source-caches", "remote-execution", "projects",
	}
	listenTLSKeys  = []string{"server-cert", "server-key", "client-ca"}
	listenAuthKeys = []string{"access-token"}
	cacheKeys      = []string{"quota", "low-watermark", "reserved-disk-space", "storage-service", "recache-project-content", "upload-idle-timeout", "read-buffer-limit", "scrub-interval", "sync-writes", "digest-functions",
		"max-idle-uploads", "max-idle-upload-bytes", "remotes", "push"}
	remoteTuningKeys = []string{"failover-delay", "stream-stall-delay", "stream-idle-timeout", "max-concurrent",
		"existence-ttl", "existence-max-entries", "breaker-failures", "breaker-cool-down", "compression"}
	pushTuningKeys = []string{"max-pending", "full-wait", "backoff-min", "backoff-max", "batch", "parallelism"}
	localExecKeys  = []string{"jobs", "sandbox", "workdir", "cache-failures", "local-fallback", "default-timeout", "output-paths-only"}
	projectKeys    = []string{"artifacts", "source-caches", "remote-execution"}
	logLevels      = []string{"debug", "info", "warn", "error"}
)

// user decodes the merged user configuration m over cfg (which holds the
// defaults). A key whose value is null keeps its default.
func (d *decoder) user(m map[string]any, cfg *Config) {
	m = d.buildStreamOnly("", m, buildStreamTopKeys)
	d.checkKeys("", m, userKeys...)
	has := func(k string) (any, bool) { x, ok := m[k]; return x, ok && x != nil }

	if x, ok := has("listen-tls"); ok {
		cfg.ListenTLS = d.listenTLS("listen-tls", x)
	}
	if x, ok := has("listen-auth"); ok {
		cfg.ListenAuth = d.listenAuth("listen-auth", x)
	}
	if x, ok := has("log-request-metadata"); ok {
		cfg.LogRequestMetadata, _ = d.boolean("log-request-metadata", x)
	}
	if x, ok := has("listen"); ok {
		cfg.Listen = d.listeners("listen", x, cfg.ListenTLS)
	}
	_, listenSet := has("listen")
	d.own = ownListeners{list: cfg.Listen, set: listenSet}
	if x, ok := has("socket-mode"); ok {
		cfg.SocketMode = d.socketMode("socket-mode", x)
	}
	if x, ok := has("metrics"); ok {
		cfg.Metrics = d.metrics("metrics", x)
		cfg.MetricsSet = true
	}
	if x, ok := has("log-level"); ok {
		cfg.LogLevel, _ = d.enum("log-level", x, logLevels...)
	}
	if x, ok := has("store-dir"); ok {
		if s, ok := d.path("store-dir", x); ok && s == "" {
			d.errorf("store-dir", "expected a directory path, found an empty string")
		} else if ok {
			cfg.StoreDir = s
		}
	}
	if x, ok := has("registration-ttl"); ok {
		cfg.RegistrationTTL = d.duration("registration-ttl", x)
	}
	if x, ok := has("cache"); ok {
		d.cache("cache", x, &cfg.Cache)
	}
	if x, ok := has("local-execution"); ok {
		d.localExecution("local-execution", x, &cfg.LocalExecution)
	}
	if x, ok := has("remote-platform"); ok {
		cfg.RemotePlatform = d.remotePlatform("remote-platform", x)
	}
	if x, ok := has("artifacts"); ok {
		cfg.Artifacts = d.section("artifacts", x)
	}
	if x, ok := has("source-caches"); ok {
		cfg.SourceCaches = d.section("source-caches", x)
	}
	haveCacheStorage := cfg.Cache.StorageService != nil
	if x, ok := m["remote-execution"]; ok {
		cfg.RemoteExecution = d.remoteExecution("remote-execution", x, haveCacheStorage)
	}
	if x, ok := has("projects"); ok {
		cfg.Projects = d.projects("projects", x, haveCacheStorage)
	}
	cfg.BuildStreamSettings = Errors(d.bstSettings).sorted()
}

func (d *decoder) listenTLS(path string, v any) ListenTLS {
	var t ListenTLS
	m, ok := d.keyedMapping(path, v, listenTLSKeys...)
	if !ok {
		return t
	}
	for _, f := range []struct {
		key, what string
		dst       *string
	}{
		{"server-cert", "server certificate file", &t.ServerCert},
		{"server-key", "server key file", &t.ServerKey},
		{"client-ca", "client CA file", &t.ClientCA},
	} {
		if x, ok := m[f.key]; ok && x != nil {
			p := childPath(path, f.key)
			*f.dst, _ = d.path(p, x)
			d.readableFile(p, f.what, *f.dst)
		}
	}
	return t
}

func (d *decoder) listenAuth(path string, v any) ListenAuth {
	var a ListenAuth
	m, ok := d.keyedMapping(path, v, listenAuthKeys...)
	if !ok {
		return a
	}
	if x, ok := m["access-token"]; ok && x != nil {
		p := childPath(path, "access-token")
		a.AccessToken, _ = d.path(p, x)
		d.readableFile(p, "access token file", a.AccessToken)
	}
	return a
}

func (d *decoder) listeners(path string, v any, tls ListenTLS) []Listener {
	l, ok := d.list(path, "a list of listeners (unix:PATH, grpc://HOST:PORT, grpcs://HOST:PORT)", v)
	if !ok {
		return nil
	}
	out := []Listener{}
	for i, x := range l {
		p := indexPath(path, i)
		s, ok := d.str(p, x)
		if !ok {
			continue
		}
		lis, ok := d.listener(p, s)
		if !ok {
			continue
		}
		if lis.TLS() && (tls.ServerCert == "" || tls.ServerKey == "") {
			d.errorf(p, "a grpcs listener needs listen-tls.server-cert and listen-tls.server-key")
		}
		out = append(out, lis)
	}
	return out
}

func (d *decoder) listener(p, s string) (Listener, bool) {
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		rest = strings.TrimPrefix(rest, "//")
		if rest == "" {
			d.errorf(p, "expected unix:PATH with a socket path, found %q", s)
			return Listener{}, false
		}
		path, _ := d.path(p, rest)
		return Listener{Scheme: "unix", Address: path}, true
	}
	for _, scheme := range []string{"grpc", "grpcs"} {
		if hp, ok := strings.CutPrefix(s, scheme+"://"); ok {
			if !validHostPort(hp) {
				d.errorf(p, "expected %s://HOST:PORT, found %q", scheme, s)
				return Listener{}, false
			}
			return Listener{Scheme: scheme, Address: hp}, true
		}
	}
	d.errorf(p, "expected unix:PATH, grpc://HOST:PORT or grpcs://HOST:PORT, found %q", s)
	return Listener{}, false
}

func validHostPort(hp string) bool {
	_, port, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// socketMode accepts an octal string ("0660", "660", "0o660") or a YAML
// number, whose source text is read as octal too, so that `660` means 0660.
func (d *decoder) socketMode(path string, v any) fs.FileMode {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case int, int64, uint64:
		s = d.idx.value(path, pos{}).Raw
		if s == "" || !d.fromFile(path) {
			s = strconv.FormatInt(toInt64(x), 8)
		}
	default:
		d.errorf(path, "expected an octal permission mode such as \"0600\", found %s", kindOf(v))
		return DefaultSocketMode
	}
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0o"), "0O")
	n, err := strconv.ParseUint(t, 8, 32)
	if err != nil || n > 0o777 {
		d.errorf(path, "expected an octal permission mode from 0000 to 0777 such as \"0600\", found %q", s)
		return DefaultSocketMode
	}
	return fs.FileMode(n)
}

func toInt64(v any) int64 {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int64:
		return x
	case uint64:
		return int64(x)
	}
	return 0
}

func (d *decoder) metrics(path string, v any) string {
	s, ok := d.str(path, v)
	if !ok || s == "" {
		return s
	}
	if !validHostPort(s) {
		d.errorf(path, "expected an HTTP listen address HOST:PORT (empty disables metrics), found %q", s)
	}
	return s
}

// quota reads a Quota from a string or a YAML integer (bytes).
func (d *decoder) quota(path string, v any) (Quota, bool) {
	return d.size(path, v, ParseQuota)
}

// reserve reads cache.reserved-disk-space, where zero (no reserve) is valid.
func (d *decoder) reserve(path string, v any) (Quota, bool) {
	return d.size(path, v, ParseReserve)
}

// size reads a size as a string or number and parses it with parse.
func (d *decoder) size(path string, v any, parse func(string) (Quota, error)) (Quota, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case int, int64, uint64:
		s = strconv.FormatInt(toInt64(x), 10)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		d.errorf(path, "expected %s, found %s", quotaForms, kindOf(v))
		return Quota{}, false
	}
	q, err := parse(s)
	if err != nil {
		d.errorf(path, "%v", err)
		return Quota{}, false
	}
	return q, true
}

// percent reads "80%" or a plain number in (0, 100].
func (d *decoder) percent(path string, v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(x), "%")), 64)
		if err != nil {
			d.errorf(path, "expected a percentage such as 80%%, found %q", x)
			return 0, false
		}
		f = n
	case int, int64, uint64:
		f = float64(toInt64(x))
	case float64:
		f = x
	default:
		d.errorf(path, "expected a percentage such as 80%%, found %s", kindOf(v))
		return 0, false
	}
	if !(f > 0 && f <= 100) {
		d.errorf(path, "expected a percentage above 0 and at most 100, found %v", f)
		return 0, false
	}
	return f, true
}

func (d *decoder) cache(path string, v any, c *Cache) {
	m, ok := d.mapping(path, v)
	if !ok {
		return
	}
	m = d.buildStreamOnly(path, m, buildStreamCacheKeys)
	d.checkKeys(path, m, cacheKeys...)
	if x, ok := m["quota"]; ok && x != nil {
		if q, ok := d.quota(childPath(path, "quota"), x); ok {
			c.Quota = q
		}
	}
	if x, ok := m["low-watermark"]; ok && x != nil {
		if f, ok := d.percent(childPath(path, "low-watermark"), x); ok {
			c.LowWatermark = f
		}
	}
	if x, ok := m["reserved-disk-space"]; ok && x != nil {
		if q, ok := d.reserve(childPath(path, "reserved-disk-space"), x); ok {
			c.ReservedDiskSpace = q
		}
	}
	if x, ok := m["storage-service"]; ok && x != nil {
		c.StorageService = d.service(childPath(path, "storage-service"), x, false)
	}
	if x, ok := m["recache-project-content"]; ok && x != nil {
		c.RecacheProjectContent, _ = d.boolean(childPath(path, "recache-project-content"), x)
	}
	if x, ok := m["scrub-interval"]; ok && x != nil {
		c.ScrubInterval = d.duration(childPath(path, "scrub-interval"), x)
	}
	if x, ok := m["upload-idle-timeout"]; ok && x != nil {
		p := childPath(path, "upload-idle-timeout")
		if c.UploadIdleTimeout = d.duration(p, x); c.UploadIdleTimeout == 0 {
			d.errorf(p, "expected a positive duration such as 60s")
		}
	}
	if x, ok := m["read-buffer-limit"]; ok && x != nil {
		c.ReadBufferLimit = d.byteCount(childPath(path, "read-buffer-limit"), x)
	}
	if x, ok := m["sync-writes"]; ok && x != nil {
		c.SyncWrites, _ = d.boolean(childPath(path, "sync-writes"), x)
	}
	if x, ok := m["digest-functions"]; ok && x != nil {
		c.DigestFunctions = d.digestFunctions(childPath(path, "digest-functions"), x)
	}
	if x, ok := m["max-idle-uploads"]; ok && x != nil {
		c.MaxIdleUploads = d.count(childPath(path, "max-idle-uploads"), x)
	}
	if x, ok := m["max-idle-upload-bytes"]; ok && x != nil {
		c.MaxIdleUploadBytes = d.byteCount(childPath(path, "max-idle-upload-bytes"), x)
	}
	if x, ok := m["remotes"]; ok && x != nil {
		d.remoteTuning(childPath(path, "remotes"), x, &c.Remotes)
	}
	if x, ok := m["push"]; ok && x != nil {
		d.pushTuning(childPath(path, "push"), x, &c.Push)
	}
}

// remoteTuning reads cache.remotes. Every key is optional; 0 means the
// default, and existence-ttl and breaker-failures also take off;
// compression is auto or off.
func (d *decoder) remoteTuning(path string, v any, t *RemoteTuning) {
	m, ok := d.keyedMapping(path, v, remoteTuningKeys...)
	if !ok {
		return
	}
	d.durations(path, m, []string{"failover-delay", "stream-stall-delay", "stream-idle-timeout", "breaker-cool-down"},
		&t.FailoverDelay, &t.StreamStallDelay, &t.StreamIdleTimeout, &t.BreakerCoolDown)
	if x, ok := m["existence-ttl"]; ok && x != nil {
		if t.ExistenceTTL = -1; !isOff(x) {
			t.ExistenceTTL = d.duration(childPath(path, "existence-ttl"), x)
		}
	}
	if x, ok := m["breaker-failures"]; ok && x != nil {
		if t.BreakerFailures = -1; !isOff(x) {
			t.BreakerFailures = d.count(childPath(path, "breaker-failures"), x)
		}
	}
	if x, ok := m["max-concurrent"]; ok && x != nil {
		t.MaxConcurrent = d.count(childPath(path, "max-concurrent"), x)
	}
	if x, ok := m["existence-max-entries"]; ok && x != nil {
		t.ExistenceMaxEntries = d.count(childPath(path, "existence-max-entries"), x)
	}
	if x, ok := m["compression"]; ok && x != nil {
		if c, ok := d.enum(childPath(path, "compression"), x, CompressionAuto, CompressionOff); ok {
			t.Compression = c
		}
	}
}

// pushTuning reads cache.push. Every key is optional; 0 means the default.
func (d *decoder) pushTuning(path string, v any, t *PushTuning) {
	m, ok := d.keyedMapping(path, v, pushTuningKeys...)
	if !ok {
		return
	}
	d.durations(path, m, []string{"full-wait", "backoff-min", "backoff-max"}, &t.FullWait, &t.BackoffMin, &t.BackoffMax)
	for k, dst := range map[string]*int{"max-pending": &t.MaxPending, "batch": &t.Batch, "parallelism": &t.Parallelism} {
		if x, ok := m[k]; ok && x != nil {
			*dst = d.count(childPath(path, k), x)
		}
	}
}

// durations reads the duration keys of m under path into dsts, in order.
func (d *decoder) durations(path string, m map[string]any, keys []string, dsts ...*time.Duration) {
	for i, k := range keys {
		if x, ok := m[k]; ok && x != nil {
			*dsts[i] = d.duration(childPath(path, k), x)
		}
	}
}

// isOff reports whether v is the word off, which switches a feature off
// where a key allows it.
func isOff(v any) bool { return v == "off" }

// count reads a non-negative integer, from YAML or as the decimal string
// an environment variable or flag gives.
func (d *decoder) count(path string, v any) int {
	if s, ok := v.(string); ok {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || n < 0 {
			d.errorf(path, "expected a whole number, found %q", s)
			return 0
		}
		return int(n)
	}
	n, _ := d.integer(path, v, 0)
	return int(n)
}

// byteCount reads a byte count ("256M", 1048576): a quota without the
// percentage form.
func (d *decoder) byteCount(path string, v any) int64 {
	q, ok := d.quota(path, v)
	if ok && q.Percent > 0 {
		d.errorf(path, "expected a size such as 256M, found a percentage")
	}
	return q.Bytes
}

func (d *decoder) localExecution(path string, v any, l *LocalExecution) {
	m, ok := d.keyedMapping(path, v, localExecKeys...)
	if !ok {
		return
	}
	if x, ok := m["jobs"]; ok && x != nil {
		if n, ok := d.integer(childPath(path, "jobs"), x, 1); ok {
			l.Jobs = int(n)
		}
	}
	if x, ok := m["sandbox"]; ok && x != nil {
		if s, ok := d.enum(childPath(path, "sandbox"), x, "none", "bwrap"); ok {
			l.Sandbox = s
		}
	}
	if x, ok := m["workdir"]; ok && x != nil {
		l.Workdir, _ = d.path(childPath(path, "workdir"), x)
	}
	if x, ok := m["cache-failures"]; ok && x != nil {
		l.CacheFailures, _ = d.boolean(childPath(path, "cache-failures"), x)
	}
	if x, ok := m["local-fallback"]; ok && x != nil {
		l.LocalFallback, _ = d.boolean(childPath(path, "local-fallback"), x)
	}
	if x, ok := m["output-paths-only"]; ok && x != nil {
		l.OutputPathsOnly, _ = d.boolean(childPath(path, "output-paths-only"), x)
	}
	if x, ok := m["default-timeout"]; ok && x != nil {
		l.DefaultTimeout = d.duration(childPath(path, "default-timeout"), x)
	}
}

// duration reads a Go duration string ("90s", "10m") or whole seconds.
func (d *decoder) duration(path string, v any) time.Duration {
	switch x := v.(type) {
	case string:
		if n, err := strconv.ParseInt(x, 10, 32); err == nil && n >= 0 {
			return time.Duration(n) * time.Second
		}
		t, err := time.ParseDuration(x)
		if err == nil && t >= 0 {
			return t
		}
		d.errorf(path, "expected a duration such as 90s or 10m (or whole seconds), found %q", x)
	case int, int64, uint64:
		if n, ok := d.integer(path, x, 0); ok {
			return time.Duration(n) * time.Second
		}
	default:
		d.errorf(path, "expected a duration such as 90s or 10m (or whole seconds), found %s", kindOf(v))
	}
	return 0
}

func (d *decoder) remotePlatform(path string, v any) map[string][]string {
	out := map[string][]string{}
	m, ok := d.mapping(path, v)
	if !ok {
		return out
	}
	for _, name := range sortedKeys(m) {
		p := childPath(path, name)
		l, ok := d.list(p, "a list of values", m[name])
		if !ok {
			continue
		}
		vals := []string{}
		for i, x := range l {
			switch x.(type) {
			case string, int, int64, uint64, float64, bool:
				vals = append(vals, toString(x))
			default:
				d.errorf(indexPath(p, i), "expected a scalar value, found %s", kindOf(x))
			}
		}
		out[name] = vals
	}
	return out
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return strconv.FormatInt(toInt64(v), 10)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (d *decoder) projects(path string, v any, haveCacheStorage bool) map[string]ProjectOverride {
	out := map[string]ProjectOverride{}
	m, ok := d.mapping(path, v)
	if !ok {
		return out
	}
	for _, name := range sortedKeys(m) {
		p := childPath(path, name)
		pm, ok := d.mapping(p, m[name])
		if !ok {
			continue
		}
		pm = d.buildStreamOnly(p, pm, buildStreamProjectKeys)
		d.checkKeys(p, pm, projectKeys...)
		var o ProjectOverride
		if x, ok := pm["artifacts"]; ok && x != nil {
			s := d.section(childPath(p, "artifacts"), x)
			o.Artifacts = &s
		}
		if x, ok := pm["source-caches"]; ok && x != nil {
			s := d.section(childPath(p, "source-caches"), x)
			o.SourceCaches = &s
		}
		if x, ok := pm["remote-execution"]; ok {
			o.RemoteExecution = d.remoteExecution(childPath(p, "remote-execution"), x, haveCacheStorage)
		}
		out[name] = o
	}
	return out
}
