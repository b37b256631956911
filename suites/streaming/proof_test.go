package streaming

import (
	"context"
	"slices"
	"testing"
	"time"

	builtin "github.com/gauntlet-conformance/gauntlet/expectations"
	"github.com/gauntlet-conformance/gauntlet/fakes/cri"
	"github.com/gauntlet-conformance/gauntlet/internal/expectations"
)

// proofOptions is the reference runtime tuned so the proofs run quickly.
func proofOptions(faults ...cri.Fault) *cri.Options {
	o := cri.DefaultOptions()
	o.StreamIdleTimeout = 15 * time.Second // above C12's bound (creation + 10 s) so it cannot mask C12
	o.StreamCreationTimeout = 2 * time.Second
	o.TokenTTL = 2 * time.Second // alias-mode tokens only
	o.Faults = faults
	return &o
}

// optionsFor adapts the reference to what a check needs: G7 needs a target
// without the AuthorizeStream hook.
func optionsFor(c Check, faults ...cri.Fault) *cri.Options {
	o := proofOptions(faults...)
	for _, f := range c.Features {
		if f == FeatureNoAuthorize {
			o.Authorize = nil
		}
		if f == FeatureTLS {
			o.TLS = true
		}
	}
	return o
}

func newProofEnv(t *testing.T, opts *cri.Options) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := NewEnv(ctx, Config{FakeOptions: opts}, "proof")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return e
}

func referenceExpectations(t *testing.T) *expectations.File {
	b, err := builtin.Builtin("reference")
	if err != nil {
		t.Fatal(err)
	}
	f, err := expectations.Parse(b, "reference.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestReference: every check passes on the reference runtime, except the ones
// expectations/reference.yaml lists, which must fail.
func TestReference(t *testing.T) {
	exp := referenceExpectations(t)
	e := newProofEnv(t, proofOptions())
	noHook := newProofEnv(t, optionsFor(Check{Features: []Feature{FeatureNoAuthorize}}))
	withTLS := newProofEnv(t, optionsFor(Check{Features: []Feature{FeatureTLS}}))
	for _, c := range Checks() {
		t.Run(c.ID, func(t *testing.T) {
			e := e
			if slices.Contains(c.Features, FeatureNoAuthorize) {
				e = noHook
			}
			if slices.Contains(c.Features, FeatureTLS) {
				e = withTLS
			}
			if c.Slow && testing.Short() {
				t.Skip("slow check in -short mode")
			}
			err := RunCheck(context.Background(), e, c)
			if s, ok := IsSkip(err); ok {
				t.Fatalf("skipped on the reference runtime: %v", s)
			}
			_, expected := exp.Checks[c.ID]
			switch {
			case expected && err == nil:
				t.Fatalf("listed in reference.yaml as failing, but passed")
			case !expected && err != nil:
				t.Fatalf("fails on the reference runtime: %v", err)
			case expected:
				t.Logf("fails as expected: %v", err)
			}
		})
	}
}

// proofGaps are fault/check pairs whose fault does not yet reach the path the
// check exercises (found when first run; see the issue notes). They are
// reported as skips with the reason, never silently passed.
var proofGaps = map[string]string{}

// TestFaults: every check names at least one fault, and each named fault
// makes it fail. Checks the reference itself fails (reference.yaml) are
// proven by TestReference.
func TestFaults(t *testing.T) {
	exp := referenceExpectations(t)
	for _, c := range Checks() {
		if _, expected := exp.Checks[c.ID]; expected {
			continue
		}
		if len(c.Faults) == 0 {
			t.Errorf("%s names no fault that breaks it", c.ID)
		}
		for _, f := range c.Faults {
			t.Run(c.ID+"/"+string(f), func(t *testing.T) {
				if why, ok := proofGaps[c.ID+"/"+string(f)]; ok {
					t.Skip("proof gap: " + why)
				}
				t.Parallel()
				e := newProofEnv(t, optionsFor(c, f))
				err := RunCheck(context.Background(), e, c)
				if s, ok := IsSkip(err); ok {
					t.Fatalf("skipped instead of failing: %v", s)
				}
				if err == nil {
					t.Fatalf("passed with fault %s (%s)", f, f.Describe())
				}
				t.Logf("caught: %v", err)
			})
		}
	}
}
