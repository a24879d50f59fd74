package casd_test

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/castd/castd/pkg/casd"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name string
		args string
		want casd.Config
	}{{
		// The command line observed from BuildStream 2.8 with no quota set.
		name: "bst start line",
		args: "--bind=unix:/tmp/x/cas/casserver-ab12.sock --log-level=info --cache-failures=false --quota-low=80% --reserved=2000000000 --protect-session-blobs --buildbox-run=/usr/bin/buildbox-run --jobs=8 /home/u/.cache/buildstream",
		want: casd.Config{
			CacheDir: "/home/u/.cache/buildstream", Bind: "unix:/tmp/x/cas/casserver-ab12.sock", LogLevel: "info",
			QuotaLow: casd.Size{Percent: 80}, Reserved: casd.Size{Bytes: 2000000000}, ProtectSessionBlobs: true,
			BuildboxRun: "/usr/bin/buildbox-run", Jobs: 8,
		},
	}, {
		// --help needs no cache directory.
		name: "help",
		args: "--help",
		want: casd.Config{Help: true, CacheFailures: true},
	}, {
		// -h is its short form, the only short flag.
		name: "help short",
		args: "-h",
		want: casd.Config{Help: true, CacheFailures: true},
	}, {
		// cache: quota set: --quota-high in bytes.
		name: "quota",
		args: "--bind=unix:/s --quota-high=10000000000 --quota-low=50% /c",
		want: casd.Config{CacheDir: "/c", Bind: "unix:/s", QuotaHigh: casd.Size{Bytes: 10000000000}, QuotaLow: casd.Size{Percent: 50}, CacheFailures: true},
	}, {
		// cache: storage-service with every option BuildStream can pass.
		name: "storage-service remote",
		args: "--bind=unix:/s --cas-remote=https://cas.example.com:11001 --cas-instance=main --cas-server-cert=/ca.pem --cas-client-key=/k.pem --cas-client-cert=/c.pem --cas-access-token=/tok --cas-token-reload-interval=10 --cas-keepalive-time=60 --cas-retry-limit=4 --cas-retry-delay=1000 --cas-request-timeout=120 /c",
		want: casd.Config{CacheDir: "/c", Bind: "unix:/s", CacheFailures: true, Remote: &casd.Remote{
			URL: "https://cas.example.com:11001", Instance: "main", ServerCert: "/ca.pem", ClientKey: "/k.pem", ClientCert: "/c.pem",
			AccessToken: "/tok", TokenReloadInterval: 10 * time.Minute, KeepaliveTime: time.Minute, RetryLimit: 4,
			RetryDelay: time.Second, RequestTimeout: 2 * time.Minute,
		}},
	}, {
		// A person at a shell may separate values with a space.
		name: "values as separate arguments",
		args: "--bind unix:/s --log-level trace --jobs 2 --quota-high 2G /c",
		want: casd.Config{CacheDir: "/c", Bind: "unix:/s", LogLevel: "trace", Jobs: 2, QuotaHigh: casd.Size{Bytes: 2 << 30}, CacheFailures: true},
	}, {
		// BuildStream's version check passes "/" as the cache directory.
		name: "version check",
		args: "--version /",
		want: casd.Config{Version: true, CacheDir: "/", CacheFailures: true},
	}, {
		// castd's own flag (a wrapper may add it): where the castd daemon is.
		name: "castd socket",
		args: "--bind=unix:/s --castd-socket=/run/user/1/castd/castd.sock /c",
		want: casd.Config{CacheDir: "/c", Bind: "unix:/s", CastdSocket: "/run/user/1/castd/castd.sock", CacheFailures: true},
	}, {
		name: "version alone",
		args: "--version",
		want: casd.Config{Version: true, CacheFailures: true},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := casd.Parse(strings.Fields(tc.args))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Parse:\n got %+v (remote %+v)\nwant %+v (remote %+v)", got, got.Remote, tc.want, tc.want.Remote)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		args string
		want []string // each must appear in the error
	}{
		// A newer BuildStream may pass flags castd does not know: name them all.
		{"unknown flags", "--bind=unix:/s --fuse-mount --instance=x /c", []string{"--fuse-mount, --instance (", "unknown flag"}},
		{"short flag", "-v /c", []string{"-v"}},
		{"no cache directory", "--bind=unix:/s", []string{"cache directory"}},
		{"two positional arguments", "--bind=unix:/s /a /b", []string{"/a /b"}},
		{"bad log level", "--log-level=loud /c", []string{"loud", "log-level"}},
		{"bad size", "--quota-high=lots /c", []string{"lots", "quota-high"}},
		{"bad percentage", "--quota-low=180% /c", []string{"180%"}},
		{"negative duration", "--cas-remote=x --cas-retry-delay=-1 /c", []string{"cas-retry-delay"}},
		{"remote option without a remote", "--cas-instance=main /c", []string{"--cas-instance", "--cas-remote"}},
		{"value missing at the end", "/c --bind", []string{"bind"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := casd.Parse(strings.Fields(tc.args))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestSizeOf(t *testing.T) {
	// --quota-low=80% is a share of --quota-high.
	if got := (casd.Size{Percent: 80}).Of(1000); got != 800 {
		t.Fatalf("80%% of 1000 = %d", got)
	}
	if got := (casd.Size{Bytes: 300}).Of(1000); got != 300 {
		t.Fatalf("300 bytes of 1000 = %d", got)
	}
}

func TestVersionTextSatisfiesBuildStream(t *testing.T) {
	// BuildStream's check: re.match on the output (so on its first line)
	// and at least 1.3.41.
	text := casd.VersionText("v0.9.0-12-gabcdef")
	first, _, _ := strings.Cut(text, "\n")
	m := regexp.MustCompile(`^.*buildbox-casd (\d+).(\d+).(\d+).*`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("%q does not match BuildStream's version pattern", text)
	}
	var v [3]int
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	if v[0] < 1 || v[0] == 1 && (v[1] < 3 || v[1] == 3 && v[2] < 41) {
		t.Fatalf("version %v is below the 1.3.41 BuildStream requires", v)
	}
	if !strings.Contains(text, "castd v0.9.0-12-gabcdef") {
		t.Fatalf("%q does not say which castd it is", text)
	}
}
