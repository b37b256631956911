package streaming

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/fakes/cri"
)

func init() {
	// The proofs run G5 against the reference (whose stream server times
	// headers out after 30 s) and against no-header-timeout (which never
	// does): a 35 s bound separates the two without a 2-minute proof.
	if os.Getenv("GAUNTLET_SLOWLORIS_BOUND") == "" {
		slowlorisBound = 35 * time.Second
	}
}

// TestHostileSubcases proves every sub-case of G3 and G4 on its own: it
// passes on the reference runtime and fails with the check's fault, so
// none of them is dead weight inside a check that another sub-case already
// fails.
func TestHostileSubcases(t *testing.T) {
	if testing.Short() {
		t.Skip("one reference runtime per sub-case")
	}
	type sub struct {
		name  string
		fault cri.Fault
		run   func(ctx context.Context, e *Env) error
	}
	var subs []sub
	for _, c := range g3Cases {
		subs = append(subs, sub{"G3/" + c.name, cri.FaultSPDYBombVulnerable, func(ctx context.Context, e *Env) error {
			return runSPDYFrameCases(ctx, e, "G3", []spdyFrameCase{c})
		}})
	}
	for _, c := range g4Cases {
		subs = append(subs, sub{"G4/" + c.name, cri.FaultSPDYOversizeHeld, func(ctx context.Context, e *Env) error {
			before := hostileBaseline(ctx, e)
			if _, err := sendGiantControl(ctx, e, c.frame, c.mustClose); err != nil {
				return err
			}
			if err := healthy(ctx, e); err != nil {
				return err
			}
			return hostileGrowth(ctx, e, "G4", before)
		}})
	}
	ref := newProofEnv(t, proofOptions())
	for _, s := range subs {
		t.Run(strings.ReplaceAll(s.name, " ", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.run(ctx, ref); err != nil {
				t.Fatalf("fails on the reference runtime: %v", err)
			}
			err := s.run(ctx, newProofEnv(t, proofOptions(s.fault)))
			if err == nil {
				t.Fatalf("passes with fault %s", s.fault)
			}
			t.Logf("caught by %s: %v", s.fault, err)
		})
	}
}

// TestSlowlorisBoundDrivesTimeout: G5's deadline stays above its bound, so
// the check, not the harness, decides a slowloris verdict.
func TestSlowlorisBoundDrivesTimeout(t *testing.T) {
	c, ok := Lookup("G5")
	if !ok {
		t.Fatal("G5 not registered")
	}
	if c.timeout() <= slowlorisBound {
		t.Fatalf("G5 timeout %s is not above its bound %s", c.timeout(), slowlorisBound)
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
		if got := hostileEnvDuration("GAUNTLET_TEST_BOUND", 7*time.Second); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.env, got, tc.want)
		}
	}
}
