package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	castdpb "github.com/castd/castd/api/castd/v1"
	"github.com/castd/castd/pkg/policy"
)

// scrubJSON is the --json shape of bst scrub: counts, bytes and seconds.
type scrubJSON struct {
	Checked      int64   `json:"checked"`
	CheckedBytes int64   `json:"checked_bytes"`
	Bad          int64   `json:"bad"`
	Refetched    int64   `json:"refetched"`
	Errors       int64   `json:"errors"`
	TookSeconds  float64 `json:"took_seconds"`
}

func newScrubCmd(a *app) *cobra.Command {
	var asJSON bool
	var rate string
	cmd := &cobra.Command{
		Use:   "scrub",
		Short: "Verify every blob in castd's local store, delete corrupt ones and fetch them again",
		Long: `scrub asks castd to read every blob in its local store and check it against
its digest. Corrupt or missing blobs are deleted, and those that a remote has
are fetched again. It prints how many blobs were checked, found bad and
refetched, and returns when the pass is over.`,
		Example: "  bst scrub\n  bst scrub --rate 100M --json",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			bps, err := scrubRate(rate)
			if err != nil {
				return err
			}
			return a.scrub(cmd.Context(), bps, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (shape in the README)")
	cmd.Flags().StringVar(&rate, "rate", "", "read at most this many bytes a second, e.g. 50M (default: as fast as the disk allows)")
	return cmd
}

// scrubRate parses --rate: empty is unbounded (0).
func scrubRate(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	q, err := policy.ParseQuota(s)
	if err != nil || q.Bytes == 0 {
		return 0, usagef("--rate: expected bytes a second such as 50M, found %q", s)
	}
	return q.Bytes, nil
}

// scrub runs Control.Scrub and prints its counts.
func (a *app) scrub(ctx context.Context, bytesPerSecond int64, asJSON bool) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	resp, err := c.control().Scrub(ctx, &castdpb.ScrubRequest{BytesPerSecond: bytesPerSecond})
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(a.stdout, scrubJSON{
			Checked: resp.GetChecked(), CheckedBytes: resp.GetCheckedBytes(), Bad: resp.GetBad(),
			Refetched: resp.GetRefetched(), Errors: resp.GetErrors(), TookSeconds: resp.GetTook().AsDuration().Seconds(),
		})
	}
	writeScrubText(a.stdout, resp)
	return nil
}

// writeScrubText prints the scrub's outcome for people.
func writeScrubText(w io.Writer, r *castdpb.ScrubResponse) {
	fmt.Fprintf(w, "checked %d blobs (%s) in %s: %d bad, %d refetched",
		r.GetChecked(), humanBytes(r.GetCheckedBytes()), r.GetTook().AsDuration().Round(time.Millisecond), r.GetBad(), r.GetRefetched())
	if lost := r.GetBad() - r.GetRefetched(); lost > 0 {
		fmt.Fprintf(w, " (%d deleted that no remote has)", lost)
	}
	if n := r.GetErrors(); n > 0 {
		fmt.Fprintf(w, ", %d unreadable (see castd's log)", n)
	}
	fmt.Fprintln(w)
}
