package conformance

import (
	"time"
)

// Status is a check's (or case's) raw outcome.
type Status string

// Outcomes.
const (
	Passed      Status = "passed"
	Failed      Status = "failed"      // the check's own assertion failed
	Errored     Status = "error"       // setup, fixture or target error before the assertion was judged
	Skipped     Status = "skipped"     // a declared feature or precondition is missing
	NotRun      Status = "not-run"     // selected, but the run ended before it started
	Interrupted Status = "interrupted" // running when the run was interrupted or timed out
	Filtered    Status = "filtered"    // not selected by --focus/--skip/--label-filter/--rerun-failed
)

// Verdict is an outcome judged against an expectations file.
type Verdict string

// Verdicts.
const (
	VerdictPass            Verdict = "passed"
	VerdictFail            Verdict = "failed"
	VerdictError           Verdict = "error"
	VerdictExpectedFailure Verdict = "expected-failure"
	VerdictUnexpectedPass  Verdict = "unexpected-pass"
	VerdictFlaky           Verdict = "flaky" // listed as known-flaky: either outcome is accepted, and reported
	VerdictSkip            Verdict = "skipped"
	VerdictNotRun          Verdict = "not-run"
	VerdictInterrupted     Verdict = "interrupted"
)

// Red reports whether a verdict makes a run red.
func (v Verdict) Red() bool {
	switch v {
	case VerdictFail, VerdictError, VerdictUnexpectedPass, VerdictNotRun, VerdictInterrupted:
		return true
	}
	return false
}

// Observation is an informational note recorded by a check.
type Observation struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// CaseResult is one sub-case of a check.
type CaseResult struct {
	Name     string        `json:"name"`
	Status   Status        `json:"status"`
	Message  string        `json:"message,omitempty"`
	Duration time.Duration `json:"duration"`
	Verdict  Verdict       `json:"verdict,omitempty"`
	Expected *Entry        `json:"expected,omitempty"`
}

// Result is one check's outcome.
type Result struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	Category string        `json:"category"`
	Labels   []string      `json:"labels,omitempty"`
	Features []Feature     `json:"features,omitempty"`
	Target   string        `json:"target,omitempty"`
	Status   Status        `json:"status"`
	Message  string        `json:"message,omitempty"`
	Skipped  Feature       `json:"skippedFeature,omitempty"` // the missing feature, for skips
	Duration time.Duration `json:"duration"`
	Cases    []CaseResult  `json:"cases,omitempty"`
	Notes    []Observation `json:"notes,omitempty"`
	Verdict  Verdict       `json:"verdict,omitempty"`
	Expected *Entry        `json:"expected,omitempty"`
	// fromCases: the check's status is its cases' (the body reported them
	// and returned nil, or returned one of their errors).
	fromCases bool
}

// Title is the spec name.
func (r Result) Title() string { return "[" + r.ID + "] " + r.Name }

// Report is what one run of one suite produced: the single report type the
// summary, JUnit and certification writers render.
type Report struct {
	Suite             string        `json:"suite"`
	Target            string        `json:"target"`
	Embedded          bool          `json:"embedded"`
	FeaturesDeclared  []Feature     `json:"featuresDeclared"`
	FeaturesExercised []Feature     `json:"featuresExercised"` // features of checks that actually ran
	Expectations      string        `json:"expectations,omitempty"`
	Started           time.Time     `json:"started"`
	Duration          time.Duration `json:"duration"`
	Parallel          int           `json:"parallel"`
	// Interrupted says why the run did not finish ("" when it did).
	Interrupted string   `json:"interrupted,omitempty"`
	Results     []Result `json:"results"`
	// Categories describe the suite's category prefixes (for summaries).
	Categories map[string]string `json:"categories,omitempty"`
}

// OK reports whether the judged run is green: it finished, something ran,
// and no verdict is red.
func (r *Report) OK() bool {
	if r.Interrupted != "" {
		return false
	}
	ran := false
	for _, res := range r.Results {
		if res.Status == Filtered {
			continue
		}
		ran = true
		if res.Verdict.Red() {
			return false
		}
	}
	return ran
}

// Counts returns the verdict counts, filtered checks excluded.
func (r *Report) Counts() map[Verdict]int {
	m := map[Verdict]int{}
	for _, res := range r.Results {
		if res.Status != Filtered {
			m[res.Verdict]++
		}
	}
	return m
}
