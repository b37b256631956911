package streaming_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/conformance/prooftest"
	builtin "github.com/gauntlet-conformance/gauntlet/expectations"
	"github.com/gauntlet-conformance/gauntlet/fakes/cri"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/reference"
	"github.com/gauntlet-conformance/gauntlet/suites/streaming"
)

// proofOptions is the embedded target's options plus faults fixed at start.
func proofOptions(fs ...faults.Fault) cri.Options {
	o := reference.StreamingOptions()
	o.Faults = fs
	return o
}

// optionsFor adapts the reference to what a check needs: G7 a target
// without the AuthorizeStream hook, G2 https streams.
func optionsFor(c conformance.Info) cri.Options {
	o := proofOptions()
	if slices.Contains(c.Features, streaming.FeatureNoAuthorize) {
		o.Authorize = nil
	}
	if slices.Contains(c.Features, streaming.FeatureTLS) {
		o.TLS = true
	}
	return o
}

// testEnv is a suite environment on a fresh reference runtime.
type testEnv struct {
	*streaming.Env
	target conformance.Target
	rt     *cri.Runtime
}

func newTestEnv(t *testing.T, opts cri.Options) *testEnv {
	t.Helper()
	tg, rt, err := reference.Streaming(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := streaming.NewEnv(ctx, tg)
	if err != nil {
		tg.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		tg.Close()
	})
	return &testEnv{Env: e, target: tg, rt: rt}
}

func referenceExpectations(t *testing.T) *conformance.Expectations {
	t.Helper()
	b, err := builtin.Builtin("streaming-reference")
	if err != nil {
		t.Fatal(err)
	}
	x, err := conformance.ParseExpectations(b, "streaming-reference.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Validate("streaming", streaming.Suite.Infos()); err != nil {
		t.Fatal(err)
	}
	return x
}

// TestReference runs the suite as `gauntlet run streaming` does, against
// the embedded reference runtime: green, judged by streaming-reference.yaml, with the
// checks that need another configuration (G2: https streams, G7: no hook)
// run against one of their own.
//
// Not parallel, nor are its runs: the embedded runtime shares this process,
// and C18 counts its goroutines, which other tests running alongside would
// blur.
func TestReference(t *testing.T) {
	exp := referenceExpectations(t)
	special := func(i conformance.Info) bool {
		return slices.Contains(i.Features, streaming.FeatureNoAuthorize) || slices.Contains(i.Features, streaming.FeatureTLS)
	}
	runs := []struct {
		name    string
		opts    cri.Options
		select_ func(conformance.Info) bool
	}{
		{"default", reference.StreamingOptions(), func(i conformance.Info) bool { return !special(i) }},
		{"no-hook", optionsFor(conformance.Info{Features: []conformance.Feature{streaming.FeatureNoAuthorize}}), func(i conformance.Info) bool { return slices.Contains(i.Features, streaming.FeatureNoAuthorize) }},
		{"tls", optionsFor(conformance.Info{Features: []conformance.Feature{streaming.FeatureTLS}}), func(i conformance.Info) bool { return slices.Contains(i.Features, streaming.FeatureTLS) }},
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			tg, _, err := reference.Streaming(r.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			rep, err := conformance.Run(context.Background(), streaming.Suite, tg, conformance.RunOptions{Select: r.select_, Expectations: exp})
			if err != nil {
				t.Fatal(err)
			}
			for _, res := range rep.Results {
				switch {
				case res.Status == conformance.Filtered:
				case res.Status == conformance.Skipped:
					t.Errorf("%s skipped on the reference runtime: %s", res.ID, res.Message)
				case res.Verdict.Red():
					t.Errorf("%s: %s: %s", res.ID, res.Verdict, res.Message)
				case res.Verdict == conformance.VerdictExpectedFailure && res.Status != conformance.Failed:
					t.Errorf("%s is listed in streaming-reference.yaml but did not fail on its own assertion: %s: %s", res.ID, res.Status, res.Message)
				}
			}
			t.Logf("%s: %v in %s", r.name, rep.Counts(), rep.Duration.Round(time.Millisecond))
		})
	}
}

// TestFaults proves every check: each fault it names makes it fail on its
// own assertion (not a pass, not a skip, not a setup error). Checks the
// reference itself fails (streaming-reference.yaml) are proven by
// TestReference; every catalogue fault is used by a check or by the
// self-defence tests.
func TestFaults(t *testing.T) {
	exp := referenceExpectations(t)
	expected := func(c conformance.Info) bool { _, ok := exp.Checks[c.ID]; return ok }
	prooftest.Catalogue(t, streaming.Suite, faults.Streaming, expected, cri.HostileFaults()...)
	prooftest.Faults(t, streaming.Suite, faults.Streaming, func(c conformance.Info) conformance.StartFunc {
		return reference.StreamingStart(optionsFor(c))
	}, expected)
}
