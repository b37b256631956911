package streaming

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/gauntlet-conformance/gauntlet/internal/expectations"
)

// Categories names the catalogue sections.
var Categories = map[string]string{
	"A": "URL, token, request cache",
	"B": "SPDY handshake",
	"C": "remotecommand over SPDY",
	"D": "legacy WebSocket",
	"E": "v5 close semantics",
	"F": "port forward",
	"G": "security and robustness",
}

// RunOptions configure one Ginkgo run of the suite.
type RunOptions struct {
	Config      Config
	RunID       string
	ReportDir   string // JUnit goes to ReportDir/streaming.junit.xml
	LabelFilter string
	Focus       []string
	Skip        []string
	Timeout     time.Duration
	Verbose     bool
}

var (
	current    RunOptions
	env        *Env
	lastReport Report
)

// Report is what a run produced.
type Report struct {
	Outcomes  []expectations.Outcome
	JUnitPath string
	Features  []Feature
	Target    string
}

var idRE = regexp.MustCompile(`^\[([A-G][0-9]+)\]`)

var _ = ginkgo.BeforeSuite(func(ctx ginkgo.SpecContext) {
	e, err := NewEnv(ctx, current.Config, current.RunID)
	if err != nil {
		ginkgo.AbortSuite(err.Error())
	}
	env = e
	env.Note = func(name, value string) { ginkgo.AddReportEntry(name, value) }
	ginkgo.DeferCleanup(func(ctx ginkgo.SpecContext) {
		if err := env.Close(ctx); err != nil {
			ginkgo.GinkgoWriter.Printf("cleanup: %v\n", err)
		}
	}, ginkgo.NodeTimeout(60*time.Second))
}, ginkgo.NodeTimeout(60*time.Second))

var _ = ginkgo.Describe("streaming", func() {
	for _, c := range Checks() {
		ginkgo.It(c.Title(), ginkgo.Label(c.AllLabels()...), ginkgo.NodeTimeout(c.timeout()+10*time.Second), func(ctx ginkgo.SpecContext) {
			err := RunCheck(ctx, env, c)
			if s, ok := IsSkip(err); ok {
				ginkgo.Skip(s.Error())
			}
			if err != nil {
				ginkgo.Fail(err.Error())
			}
		})
	}
})

var _ = ginkgo.ReportAfterSuite("gauntlet outcomes", func(r types.Report) {
	lastReport.Outcomes = outcomes(r)
	if env != nil {
		lastReport.Features = env.Features()
		lastReport.Target = env.Client.Endpoint
		if env.Embedded {
			lastReport.Target = "embedded reference runtime"
		}
	}
})

// RunCheck runs one check: feature gates, its deadline, panics as failures.
func RunCheck(ctx context.Context, e *Env, c Check) (err error) {
	for _, f := range c.Features {
		if err := e.Require(f); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return c.Run(ctx, e)
}

func outcomes(r types.Report) []expectations.Outcome {
	var out []expectations.Outcome
	for _, s := range r.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt {
			continue
		}
		m := idRE.FindStringSubmatch(s.LeafNodeText)
		if m == nil {
			continue
		}
		o := expectations.Outcome{ID: m[1], Title: s.LeafNodeText, Category: m[1][:1]}
		switch {
		case s.State.Is(types.SpecStatePassed):
			o.State = expectations.Passed
		case s.State.Is(types.SpecStateSkipped | types.SpecStatePending):
			o.State = expectations.Skipped
			o.Message = s.Failure.Message
			if o.Message == "" {
				o.Message = "not selected by --focus/--skip/--label-filter"
			}
		default:
			o.State = expectations.Failed
			o.Message = s.Failure.Message
		}
		out = append(out, o)
	}
	return out
}

// swallowT lets the caller judge the run against expectations instead of
// Ginkgo failing the process.
type swallowT struct{ failed bool }

func (t *swallowT) Fail() { t.failed = true }

// Run runs the suite once in this process (Ginkgo allows one run per process).
func Run(o RunOptions) (Report, error) {
	current = o
	sc, rc := ginkgo.GinkgoConfiguration()
	sc.LabelFilter = o.LabelFilter
	sc.FocusStrings = o.Focus
	sc.SkipStrings = o.Skip
	if o.Timeout > 0 {
		sc.Timeout = o.Timeout
	}
	sc.RandomizeAllSpecs = false
	rc.NoColor = true
	rc.Succinct = !o.Verbose
	rc.Verbose = o.Verbose
	if o.ReportDir != "" {
		rc.JUnitReport = filepath.Join(o.ReportDir, "streaming.junit.xml")
		lastReport.JUnitPath = rc.JUnitReport
	}
	ginkgo.RunSpecs(&swallowT{}, "streaming", sc, rc)
	return lastReport, nil
}
