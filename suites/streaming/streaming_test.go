package streaming

import (
	"flag"
	"os"
	"testing"
	"time"

	builtin "github.com/gauntlet-conformance/gauntlet/expectations"
	"github.com/gauntlet-conformance/gauntlet/internal/expectations"
)

// Flags for `go test ./suites/streaming/ -args --runtime-endpoint=...`, named
// like critest's where they overlap.
var (
	flagEndpoint    = flag.String("runtime-endpoint", "", "CRI endpoint; empty runs the embedded reference runtime")
	flagImages      = flag.String("test-images-file", "", "critest-format images file")
	flagCaps        = flag.String("capabilities", "", "declared optional features, e.g. v5,authorize-stream")
	flagExpect      = flag.String("expectations", "", "expectations file (default: the reference one for the embedded runtime)")
	flagReportDir   = flag.String("report-dir", "", "write JUnit here")
	flagCreation    = flag.Duration("stream-creation-timeout", 30*time.Second, "the runtime's stream creation timeout")
	flagIdle        = flag.Duration("stream-idle-timeout", 0, "the runtime's stream idle timeout, when known")
	flagRuntimePID  = flag.Int("runtime-pid", 0, "runtime daemon PID for process stats")
	flagConformance = flag.Bool("conformance", false, "run the Ginkgo conformance suite (TestStreaming)")
)

// TestStreaming runs the suite through Ginkgo, judged against expectations.
// It runs when an endpoint is given or -conformance is set; `make test` proves
// the checks with TestReference/TestFaults instead.
func TestStreaming(t *testing.T) {
	if *flagEndpoint == "" && !*flagConformance {
		t.Skip("pass -args --runtime-endpoint=... or -conformance to run the Ginkgo suite")
	}
	caps, err := ParseCapabilities(*flagCaps)
	if err != nil {
		t.Fatal(err)
	}
	var exp *expectations.File
	switch {
	case *flagExpect != "":
		if exp, err = expectations.Load(*flagExpect); err != nil {
			t.Fatal(err)
		}
	case *flagEndpoint == "":
		b, _ := builtin.Builtin("reference")
		if exp, err = expectations.Parse(b, "reference.yaml"); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Run(RunOptions{
		Config: Config{RuntimeEndpoint: *flagEndpoint, TestImagesFile: *flagImages, Capabilities: caps,
			StreamCreationTimeout: *flagCreation, StreamIdleTimeout: *flagIdle, RuntimePID: *flagRuntimePID},
		RunID:     "gotest",
		ReportDir: *flagReportDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	js := exp.Judge(rep.Outcomes)
	for _, j := range js {
		switch j.Verdict {
		case expectations.Fail:
			t.Errorf("%s failed: %s", j.Title, j.Message)
		case expectations.UnexpectedPass:
			t.Errorf("%s passed but is listed as failing in %s", j.Title, exp.Path)
		}
	}
	if len(js) == 0 {
		t.Fatal("no check ran")
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(m.Run())
}
