package streaming_test

import (
	"context"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/suites/streaming"
)

// TestHostileSubcases proves every sub-case of G3 and G4 on its own: it
// passes on the reference runtime and fails, on its own assertion, with the
// check's fault on a fresh runtime, so none of them is dead weight inside a
// check that another sub-case already fails.
func TestHostileSubcases(t *testing.T) {
	if testing.Short() {
		t.Skip("one reference runtime per sub-case")
	}
	ref := newTestEnv(t, proofOptions())
	for _, hc := range streaming.HostileCases() {
		t.Run(hc.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if r := conformance.RunCheck(ctx, streaming.Suite, hc.Check, ref.Env, ref.target); r.Status != conformance.Passed {
				t.Fatalf("fails on the reference runtime: %s: %s", r.Status, r.Message)
			}
			f := hc.Check.Faults[0]
			bad := newTestEnv(t, proofOptions(f))
			r := conformance.RunCheck(ctx, streaming.Suite, hc.Check, bad.Env, bad.target)
			if err := conformance.ProofError(r, f); err != nil {
				t.Fatal(err)
			}
			t.Logf("caught by %s: %s", f, conformance.FirstLine(r.Message, 200))
		})
	}
}

// TestSlowlorisBoundDrivesTimeout: G5's deadline stays above its bound, so
// the check, not the harness, decides a slowloris verdict.
func TestSlowlorisBoundDrivesTimeout(t *testing.T) {
	c, ok := streaming.Lookup("G5")
	if !ok {
		t.Fatal("G5 not registered")
	}
	if c.Info().Deadline() <= *streaming.SlowlorisBound {
		t.Fatalf("G5 timeout %s is not above its bound %s", c.Info().Deadline(), *streaming.SlowlorisBound)
	}
	if !c.Slow {
		t.Fatal("G5 waits for the server's header timeout: it must be marked Slow")
	}
	for _, tc := range []struct {
		env  string
		want time.Duration
	}{
		{"", 7 * time.Second},
		{"90s", 90 * time.Second},
		{"bogus", 7 * time.Second},
		{"-5s", 7 * time.Second},
	} {
		t.Setenv("GAUNTLET_TEST_BOUND", tc.env)
		if got := streaming.HostileEnvDuration("GAUNTLET_TEST_BOUND", 7*time.Second); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.env, got, tc.want)
		}
	}
}
