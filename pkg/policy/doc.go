// Package policy is castd's configuration: the typed model of the user
// config (castd.yaml) and of project.conf, loading with koanf and
// validation with file:line:column errors, and the pure resolution of which
// remotes a project pulls from, in which order, which it may push to, and
// which execution scenario applies (DESIGN.md §3, §4).
//
// # Layers
//
// Load layers, in increasing precedence: built-in defaults (Defaults), the
// YAML file, CASTD_* environment variables, then flags. The environment
// and flags set only the daemon settings:
//
//	key                              variable                              flag
//	listen                           CASTD_LISTEN (comma-separated)        --listen
//	listen-tls.server-cert           CASTD_LISTEN_TLS_SERVER_CERT          --listen-tls.server-cert
//	listen-tls.server-key            CASTD_LISTEN_TLS_SERVER_KEY           --listen-tls.server-key
//	listen-tls.client-ca             CASTD_LISTEN_TLS_CLIENT_CA            --listen-tls.client-ca
//	socket-mode                      CASTD_SOCKET_MODE                     --socket-mode
//	metrics                          CASTD_METRICS                         --metrics
//	log-level                        CASTD_LOG_LEVEL                       --log-level
//	store-dir                        CASTD_STORE_DIR                       --store-dir
//	cache.quota                      CASTD_CACHE_QUOTA                     --cache.quota
//	cache.low-watermark              CASTD_CACHE_LOW_WATERMARK             --cache.low-watermark
//	cache.reserved-disk-space        CASTD_CACHE_RESERVED_DISK_SPACE       --cache.reserved-disk-space
//	cache.recache-project-content    CASTD_CACHE_RECACHE_PROJECT_CONTENT   --cache.recache-project-content
//	cache.scrub-interval             CASTD_CACHE_SCRUB_INTERVAL            --cache.scrub-interval
//	cache.upload-idle-timeout        CASTD_CACHE_UPLOAD_IDLE_TIMEOUT       --cache.upload-idle-timeout
//	cache.read-buffer-limit          CASTD_CACHE_READ_BUFFER_LIMIT         --cache.read-buffer-limit
//	cache.max-idle-uploads           CASTD_CACHE_MAX_IDLE_UPLOADS          --cache.max-idle-uploads
//	cache.max-idle-upload-bytes      CASTD_CACHE_MAX_IDLE_UPLOAD_BYTES     --cache.max-idle-upload-bytes
//	cache.remotes.KEY                CASTD_CACHE_REMOTES_KEY               --cache.remotes.KEY
//	cache.push.KEY                   CASTD_CACHE_PUSH_KEY                  --cache.push.KEY
//	local-execution.jobs             CASTD_LOCAL_EXECUTION_JOBS            --local-execution.jobs
//	local-execution.sandbox          CASTD_LOCAL_EXECUTION_SANDBOX         --local-execution.sandbox
//	local-execution.workdir          CASTD_LOCAL_EXECUTION_WORKDIR         --local-execution.workdir
//	local-execution.cache-failures   CASTD_LOCAL_EXECUTION_CACHE_FAILURES  --local-execution.cache-failures
//	local-execution.local-fallback   CASTD_LOCAL_EXECUTION_LOCAL_FALLBACK  --local-execution.local-fallback
//	local-execution.default-timeout  CASTD_LOCAL_EXECUTION_DEFAULT_TIMEOUT --local-execution.default-timeout
//	local-execution.output-paths-only CASTD_LOCAL_EXECUTION_OUTPUT_PATHS_ONLY --local-execution.output-paths-only
//
// Any other CASTD_* variable except CASTD_CONFIG is an error.
//
// # Defaults
//
// listen: unix:$XDG_RUNTIME_DIR/castd/castd.sock (else
// unix:<tmp>/castd-<uid>/castd.sock); socket-mode 0600; metrics
// 127.0.0.1:9091; log-level info; store-dir $XDG_CACHE_HOME/castd (else
// ~/.cache/castd); registration-ttl 720h (30 days; 0 keeps registrations
// forever; YAML only); cache.quota 10G; cache.low-watermark 80%;
// cache.reserved-disk-space 5%; cache.recache-project-content true;
// cache.scrub-interval 0 (no background scrub);
// cache.upload-idle-timeout, read-buffer-limit, max-idle-uploads,
// max-idle-upload-bytes and every cache.remotes and cache.push key are
// left zero here: zero means the default of internal/defaults, which the
// layer applies (README's configuration reference lists the values);
// local-execution.jobs the number of CPUs, sandbox none, cache-failures
// and local-fallback false, default-timeout 0 (none). Sizes use binary
// multiples (1K = 1024 bytes).
//
// # Paths
//
// Paths in the user config expand a leading ~ and $VAR, and relative ones
// resolve against the config file's directory; paths from the environment
// or flags are taken as given. Paths in project.conf resolve against the
// project directory and are not expanded. Load and LoadProject check that
// every referenced certificate, key and token file is readable, but never
// read them.
package policy
