package main

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	castdpb "github.com/castd/castd/api/castd/v1"
)

func TestScrubRate(t *testing.T) {
	// --rate takes sizes as the config does; a bad one is a usage error.
	for in, want := range map[string]int64{"": 0, "50M": 50 << 20, "1000": 1000} {
		if got, err := scrubRate(in); err != nil || got != want {
			t.Errorf("scrubRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	var ee *exitError
	if _, err := scrubRate("fast"); !errors.As(err, &ee) || ee.code != exitUsage {
		t.Errorf("scrubRate(\"fast\") = %v; want a usage error", err)
	}
}

func TestScrubText(t *testing.T) {
	// People read the three counts and what was lost for good.
	var b bytes.Buffer
	writeScrubText(&b, &castdpb.ScrubResponse{Checked: 10, CheckedBytes: 3 << 20, Bad: 2, Refetched: 1, Took: durationpb.New(1500 * time.Millisecond)})
	want := "checked 10 blobs (3.0 MiB) in 1.5s: 2 bad, 1 refetched (1 deleted that no remote has)\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
}
