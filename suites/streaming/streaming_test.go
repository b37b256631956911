package streaming_test

import (
	"context"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/internal/critarget"
	"github.com/gauntlet-conformance/gauntlet/reports"
	"github.com/gauntlet-conformance/gauntlet/suites/streaming"
)

// Flags for `go test ./suites/streaming/ -run TestStreaming -args
// --runtime-endpoint=...`, named like critest's where they overlap.
var (
	flagEndpoint  = flag.String("runtime-endpoint", "", "CRI endpoint to run the suite against")
	flagImages    = flag.String("test-images-file", "", "critest-format images file")
	flagFeatures  = flag.String("capabilities", "", "declared optional features, e.g. v5,authorize-stream")
	flagExpect    = flag.String("expectations", "", "expectations file")
	flagReportDir = flag.String("report-dir", "", "write JUnit here")
	flagCreation  = flag.Duration("stream-creation-timeout", 30*time.Second, "the runtime's stream creation timeout")
	flagIdle      = flag.Duration("stream-idle-timeout", 0, "the runtime's stream idle timeout, when known")
)

// TestStreaming runs the suite against a real runtime named with
// -args --runtime-endpoint (the embedded one is TestReference).
func TestStreaming(t *testing.T) {
	if *flagEndpoint == "" {
		t.Skip("pass -args --runtime-endpoint=unix:///… to run the suite against a runtime (TestReference runs the embedded one)")
	}
	feats, err := conformance.ParseFeatures(*flagFeatures, streaming.Features)
	if err != nil {
		t.Fatal(err)
	}
	var exp *conformance.Expectations
	if *flagExpect != "" {
		if exp, err = conformance.LoadExpectations(*flagExpect); err != nil {
			t.Fatal(err)
		}
	}
	tg := conformance.Target{Name: *flagEndpoint, Endpoint: *flagEndpoint, Features: feats,
		Settings: critarget.Settings{TestImagesFile: *flagImages, StreamCreationTimeout: *flagCreation, StreamIdleTimeout: *flagIdle}}
	rep, err := conformance.Run(context.Background(), streaming.Suite, tg, conformance.RunOptions{Expectations: exp, Progress: os.Stdout})
	if err != nil {
		t.Fatal(err)
	}
	if *flagReportDir != "" {
		if _, err := reports.WriteJUnit(*flagReportDir, rep); err != nil {
			t.Error(err)
		}
	}
	for _, r := range rep.Results {
		if r.Verdict.Red() {
			t.Errorf("%s: %s: %s", r.Title(), r.Verdict, r.Message)
		}
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(m.Run())
}
