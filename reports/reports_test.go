package reports

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
)

// A report with every verdict, including a check judged from its cases
// (no entry of its own), renders in every writer.
func TestWritersEveryVerdict(t *testing.T) {
	e := &conformance.Entry{Reason: "known", Link: "https://example.test"}
	r := &conformance.Report{Suite: "toy", Target: "t", Started: time.Now(), Results: []conformance.Result{
		{ID: "A1", Name: "pass", Category: "A", Status: conformance.Passed, Verdict: conformance.VerdictPass},
		{ID: "A2", Name: "fail", Category: "A", Status: conformance.Failed, Verdict: conformance.VerdictFail, Message: "broke"},
		{ID: "A3", Name: "xfail", Category: "A", Status: conformance.Failed, Verdict: conformance.VerdictExpectedFailure, Expected: e},
		{ID: "A4", Name: "by cases", Category: "A", Status: conformance.Failed, Verdict: conformance.VerdictExpectedFailure,
			Cases: []conformance.CaseResult{{Name: "c", Status: conformance.Failed, Verdict: conformance.VerdictExpectedFailure, Expected: e}}},
		{ID: "A5", Name: "xpass", Category: "A", Status: conformance.Passed, Verdict: conformance.VerdictUnexpectedPass, Expected: e},
		{ID: "A6", Name: "skip", Category: "A", Status: conformance.Skipped, Verdict: conformance.VerdictSkip},
		{ID: "A7", Name: "not run", Category: "A", Status: conformance.NotRun, Verdict: conformance.VerdictNotRun},
		{ID: "A8", Name: "flaky", Category: "A", Status: conformance.Passed, Verdict: conformance.VerdictFlaky, Expected: e},
	}}
	b, err := JUnit(r)
	if err != nil {
		t.Fatal(err)
	}
	var top junitSuites
	if err := xml.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	s := top.Suites[0]
	if s.Tests != 9 || s.Failures != 2 || s.Errors != 1 || s.Skipped != 1 {
		t.Errorf("tests %d failures %d errors %d skipped %d, want 9/2/1/1", s.Tests, s.Failures, s.Errors, s.Skipped)
	}
	var out bytes.Buffer
	Summary(&out, r)
	for _, want := range []string{"A4/c", "A2", "known [https://example.test]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}
