package authz_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/conformance/prooftest"
	fakeauthz "github.com/gauntlet-conformance/gauntlet/fakes/authz"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/suites/authz"
)

// TestReference: every check passes against the embedded reference, at
// report level, each reported against its own target (webhook or chain).
func TestReference(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tgt, err := fakeauthz.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	start := time.Now()
	rep, err := conformance.Run(ctx, authz.Suite, tgt, conformance.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	for _, r := range rep.Results {
		if r.Status != conformance.Passed {
			t.Errorf("%s: %s: %s", r.Title(), r.Status, r.Message)
		}
		for _, c := range r.Cases {
			if c.Status != conformance.Passed {
				t.Errorf("%s/%s: %s: %s", r.ID, c.Name, c.Status, c.Message)
			}
		}
		want := fakeauthz.EmbeddedChainName
		if r.ID <= "AZ05" {
			want = fakeauthz.EmbeddedWebhookName
		}
		if r.Target != want {
			t.Errorf("%s reported against %q, want %q", r.ID, r.Target, want)
		}
	}
	if !rep.OK() {
		t.Errorf("the report is not green")
	}
	// Measured, not asserted (typically 4–6 s with the proofs alongside).
	t.Logf("embedded run: %s", took.Round(time.Millisecond))
}

// TestProofs: every (check, fault) pair fails on the check's own
// assertion, and every catalogue fault is named by a check.
func TestProofs(t *testing.T) {
	t.Parallel()
	prooftest.Catalogue(t, authz.Suite, faults.Authz, nil)
	prooftest.Faults(t, authz.Suite, faults.Authz, func(conformance.Info) conformance.StartFunc { return fakeauthz.Start }, nil)
}

func TestMain(m *testing.M) {
	// The upstream webhook authorizer logs every failed call, which the
	// checks provoke on purpose.
	fakeauthz.QuietKlog()
	os.Exit(m.Run())
}
