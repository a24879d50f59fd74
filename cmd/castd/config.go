package main

import (
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/policy"

	"github.com/castd/castd/pkg/store/disk"
)

// defaultSocketMode applies when the configuration leaves socket-mode unset.
const defaultSocketMode os.FileMode = 0o600

// daemonConfig is what the daemon needs from the loaded configuration, with
// defaults filled in: the wiring reads this, not policy's whole tree.
type daemonConfig struct {
	listen []policy.Listener
	// listenIsDefault is true when listen is policy's built-in default:
	// under socket activation systemd's sockets then replace it.
	listenIsDefault bool
	socketMode      os.FileMode
	tls             tlsFiles
	metricsAddr     string // "" disables the metrics endpoint
	// metricsExplicit is false when metricsAddr is policy's built-in
	// default, whose port may be taken by another castd.
	metricsExplicit bool
	logLevel        string
	storeDir        string
	storeOpts       disk.Options
	// uploadIdleTimeout and readBufferLimit: zero means proxy's default.
	uploadIdleTimeout time.Duration
	readBufferLimit   int64
	// maxIdleUploads and maxIdleUploadBytes: zero means the server's default.
	maxIdleUploads     int
	maxIdleUploadBytes int64
	// policy is the whole configuration, for the remotes and Control; nil
	// means the built-in defaults (local store only).
	policy *policy.Config
}

// daemonConfigFrom turns a validated policy.Config (whose defaults already
// name the per-user socket and store) into daemonConfig. A socket in the
// shared temp dir fallback is only used if its directory is private to us.
func daemonConfigFrom(c *policy.Config) (daemonConfig, error) {
	d := daemonConfig{
		listen: c.Listen,
		// As for metrics, "unset" and "set to the default" look the same.
		listenIsDefault: slices.Equal(c.Listen, policy.Defaults().Listen),
		socketMode:      c.SocketMode.Perm(),
		tls:             tlsFiles{cert: c.ListenTLS.ServerCert, key: c.ListenTLS.ServerKey, clientCA: c.ListenTLS.ClientCA},
		metricsAddr:     c.Metrics,
		// Whether the user named the address, not whether it differs from
		// the default: `--metrics 127.0.0.1:9091` on a busy port must fail
		// like any other address they chose.
		metricsExplicit:    c.MetricsSet,
		logLevel:           c.LogLevel,
		policy:             c,
		storeDir:           c.StoreDir,
		uploadIdleTimeout:  c.Cache.UploadIdleTimeout,
		readBufferLimit:    c.Cache.ReadBufferLimit,
		maxIdleUploads:     c.Cache.MaxIdleUploads,
		maxIdleUploadBytes: c.Cache.MaxIdleUploadBytes,
		storeOpts: disk.Options{
			QuotaBytes:      c.Cache.Quota.Bytes,
			QuotaPercent:    c.Cache.Quota.Percent,
			LowWatermark:    c.Cache.LowWatermark / 100,
			ReservedBytes:   c.Cache.ReservedDiskSpace.Bytes,
			ReservedPercent: c.Cache.ReservedDiskSpace.Percent,
			SyncWrites:      c.Cache.SyncWrites,
			Ballast:         true,
		},
	}
	if d.socketMode == 0 {
		d.socketMode = defaultSocketMode
	}
	for _, l := range d.listen {
		if l.Scheme == "unix" && filepath.Dir(l.Address) == sharedTempSocketDir() {
			if err := privateDir(filepath.Dir(l.Address)); err != nil {
				return daemonConfig{}, err
			}
		}
	}
	return d, nil
}

// digestFunctions is cache.digest-functions as a set; zero (every
// function) when the config names none.
func digestFunctions(c *policy.Config) digest.FunctionSet {
	if c == nil {
		return 0
	}
	return digest.SetOf(c.Cache.DigestFunctions...)
}

// serverOptions is the gRPC servers' share of d: the limits the
// configuration sets (zero fields mean the server's defaults).
func serverOptions(d daemonConfig) grpcservers.Options {
	return grpcservers.Options{
		OutputPathsOnly:    d.policy != nil && d.policy.LocalExecution.OutputPathsOnly,
		DigestFunctions:    digestFunctions(d.policy),
		UploadIdleTimeout:  d.uploadIdleTimeout,
		ReadBufferLimit:    d.readBufferLimit,
		MaxIdleUploads:     d.maxIdleUploads,
		MaxIdleUploadBytes: d.maxIdleUploadBytes,
	}
}
