package casd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/castd/castd/pkg/store/casdir"
)

// stopGrace is how long a stopping daemon lets calls in progress finish
// before it cuts them off. BuildStream kills the daemon 15 s after its
// SIGTERM and reports that as a bug, so the whole stop must fit well
// inside that.
const stopGrace = 5 * time.Second

// Main is the buildbox-casd command: it parses args (without the program
// name), prints the usage (--help, -h), the version or serves until SIGTERM or SIGINT, and returns
// the exit code: 0 after a clean stop, 2 for a bad command line, 1 when
// start-up or serving failed. Errors and the log go to stderr.
func Main(args []string, stdout, stderr io.Writer, castdVersion string) int {
	cfg, err := Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if cfg.Help {
		fmt.Fprint(stdout, Usage())
		return 0
	}
	if cfg.Version {
		fmt.Fprint(stdout, VersionText(castdVersion))
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slogLevel(cfg.LogLevel)}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Run(ctx, cfg, log); err != nil {
		log.Error("buildbox-casd (castd) failed", "err", err)
		return 1
	}
	return 0
}

// slogLevel maps buildbox-casd's log levels onto slog's; trace is below
// debug. The parser has already rejected any other name.
func slogLevel(level string) slog.Level {
	switch level {
	case "trace":
		return slog.LevelDebug - 4
	case "debug":
		return slog.LevelDebug
	case "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Run opens the store of cfg.CacheDir, serves on cfg.Bind until ctx is
// done, then stops: calls in progress get stopGrace to finish, staged
// trees are removed, the store's session ends and the socket file is
// removed. Start-up touches only the cache directory and the socket: no
// database, no network.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.CacheDir == "" || cfg.Bind == "" {
		return errors.New("buildbox-casd: --bind and the cache directory are required")
	}
	opts, err := storeOptions(cfg)
	if err != nil {
		return err
	}
	st, err := casdir.Open(cfg.CacheDir, opts)
	if err != nil {
		return err
	}
	defer st.Close()
	l, sock, err := listen(cfg.Bind)
	if err != nil {
		return err
	}
	if sock != "" {
		defer os.Remove(sock)
	}
	d := NewDaemon(st, cfg.CacheDir, log)
	d.UseCastd(cfg.CastdSocket)
	d.UseStorage(cfg.Remote)
	if cfg.Remote != nil {
		log.Info("storage-service: local misses are read from --cas-remote and captures uploaded to it (through the castd daemon when one runs)", "cas-remote", cfg.Remote.URL)
	}
	defer d.Close()
	log.Info("buildbox-casd (castd) serving", "bind", cfg.Bind, "cache", cfg.CacheDir,
		"quota-high", opts.QuotaHigh, "quota-low", opts.QuotaLow, "reserved", opts.Reserved,
		"protect-session-blobs", opts.ProtectSessionBlobs)
	return serveUntil(ctx, d, l, log)
}

// serveUntil serves l until ctx is done or serving fails, then stops the
// server within stopGrace.
func serveUntil(ctx context.Context, d *Daemon, l net.Listener, log *slog.Logger) error {
	srv := d.GRPCServer()
	failed := make(chan error, 1)
	go func() { failed <- srv.Serve(l) }()
	select {
	case err := <-failed:
		return fmt.Errorf("buildbox-casd: serving %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	log.Info("buildbox-casd (castd) stopping")
	d.Stopping()
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(stopGrace):
		log.Warn("buildbox-casd (castd): calls still running after the grace period are cut off", "grace", stopGrace)
		srv.Stop()
	}
	return nil
}

// storeOptions turns the quota flags into casdir options: --quota-high
// and --reserved as a percentage are shares of the cache filesystem's
// size, --quota-low a share of --quota-high.
func storeOptions(cfg Config) (casdir.Options, error) {
	opts := casdir.Options{ProtectSessionBlobs: cfg.ProtectSessionBlobs}
	var fsSize int64
	if cfg.QuotaHigh.Percent > 0 || cfg.Reserved.Percent > 0 {
		if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
			return opts, fmt.Errorf("buildbox-casd: cache directory: %w", err)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(cfg.CacheDir, &st); err != nil {
			return opts, fmt.Errorf("buildbox-casd: size of the filesystem of %s: %w", cfg.CacheDir, err)
		}
		fsSize = int64(st.Blocks) * st.Bsize
	}
	opts.QuotaHigh = cfg.QuotaHigh.Of(fsSize)
	opts.Reserved = cfg.Reserved.Of(fsSize)
	if opts.QuotaHigh > 0 {
		opts.QuotaLow = cfg.QuotaLow.Of(opts.QuotaHigh)
	}
	return opts, nil
}

// listen listens on bind, "unix:PATH" (what BuildStream passes) or
// "HOST:PORT", and returns the socket path to remove on exit ("" for
// TCP). A socket file nobody answers on is a leftover and is replaced; one
// that answers belongs to a live daemon and is an error.
func listen(bind string) (net.Listener, string, error) {
	path, ok := strings.CutPrefix(bind, "unix:")
	if !ok {
		l, err := net.Listen("tcp", bind)
		if err != nil {
			return nil, "", fmt.Errorf("buildbox-casd: --bind=%s: %w", bind, err)
		}
		return l, "", nil
	}
	path = strings.TrimPrefix(path, "//") // unix:///abs/path
	if err := removeStaleSocket(path); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, "", fmt.Errorf("buildbox-casd: --bind=%s: %w", bind, err)
	}
	// BuildStream connects as soon as the socket file exists, and a socket
	// exists between bind(2) and listen(2) refusing connections: listen
	// under a private name, then rename it into place.
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	_ = os.Remove(tmp)
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, "", fmt.Errorf("buildbox-casd: --bind=%s: %w", bind, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		return nil, "", fmt.Errorf("buildbox-casd: --bind=%s: %w", bind, err)
	}
	return l, path, nil
}

// removeStaleSocket removes path when it is a socket nobody listens on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("buildbox-casd: socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("buildbox-casd: socket %s: the path exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("buildbox-casd: another daemon is serving on %s", path)
	}
	return os.Remove(path)
}
