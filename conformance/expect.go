package conformance

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Entry is one known deviation of a target: a check ID ("A10") or one case of
// a check ("A10/empty-container-id"), with why and where upstream.
type Entry struct {
	Reason string `json:"reason"`
	Link   string `json:"link"`
	// Flaky marks a known-flaky result: either outcome is accepted and the
	// report says which happened. Use for nondeterminism in the target that
	// the check cannot remove, with the reason.
	Flaky bool `json:"flaky,omitempty"`
}

// Expectations is a per-target known-deviations file, scoped to one suite.
type Expectations struct {
	Suite  string           `json:"suite"`
	Target string           `json:"target"`
	Checks map[string]Entry `json:"checks"`
	Path   string           `json:"-"`
}

// LoadExpectations reads and validates an expectations file.
func LoadExpectations(path string) (*Expectations, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--expectations: %w", err)
	}
	return ParseExpectations(b, path)
}

// ParseExpectations validates an expectations document.
func ParseExpectations(b []byte, path string) (*Expectations, error) {
	var x Expectations
	if err := yaml.UnmarshalStrict(b, &x); err != nil {
		return nil, fmt.Errorf("--expectations %s: %w", path, err)
	}
	x.Path = path
	if x.Suite == "" {
		return nil, fmt.Errorf("--expectations %s: name the suite it is for (suite: streaming|credprovider|meshauthz|authz)", path)
	}
	for id, e := range x.Checks {
		if strings.TrimSpace(e.Reason) == "" || strings.TrimSpace(e.Link) == "" {
			return nil, fmt.Errorf("--expectations %s: %s needs both reason and link", path, id)
		}
	}
	return &x, nil
}

// Validate checks the file against a suite: the suite name, and every key
// names a check (and, for "ID/case", a case the check declares).
func (x *Expectations) Validate(suite string, checks []Info) error {
	if x == nil {
		return nil
	}
	if x.Suite != suite {
		return fmt.Errorf("--expectations %s is for suite %q, not %q", x.Path, x.Suite, suite)
	}
	byID := map[string]Info{}
	for _, c := range checks {
		byID[c.ID] = c
	}
	var bad []string
	for key := range x.Checks {
		id, cs, hasCase := strings.Cut(key, "/")
		c, ok := byID[id]
		switch {
		case !ok:
			bad = append(bad, key+" (no such check)")
		case hasCase && !contains(c.Cases, cs):
			bad = append(bad, fmt.Sprintf("%s (%s has cases %s)", key, id, strings.Join(c.Cases, ", ")))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return fmt.Errorf("--expectations %s lists unknown checks or cases: %s", x.Path, strings.Join(bad, "; "))
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func (x *Expectations) entry(key string) *Entry {
	if x == nil {
		return nil
	}
	if e, ok := x.Checks[key]; ok {
		return &e
	}
	return nil
}

// Judge sets every result's verdict from the expectations (x may be nil).
// A check-level entry covers the whole check; case-level entries cover
// exactly their case, so a new failure in another case stays red.
func (r *Report) Judge(x *Expectations) {
	if x != nil {
		r.Expectations = x.Path
	}
	for i := range r.Results {
		judge(&r.Results[i], x)
	}
}

func judge(res *Result, x *Expectations) {
	res.Expected = x.entry(res.ID)
	for i := range res.Cases {
		c := &res.Cases[i]
		c.Expected = x.entry(res.ID + "/" + c.Name)
		if c.Expected == nil && res.Expected != nil && c.Status != Passed {
			// A check-level entry covers its failing cases; its passing
			// cases are simply passes (the check's verdict says whether
			// the entry still holds).
			c.Expected = res.Expected
		}
		c.Verdict = verdict(c.Status, c.Expected)
	}
	switch res.Status {
	case Filtered:
		res.Verdict = ""
		return
	case Skipped, NotRun, Interrupted:
		res.Verdict = verdict(res.Status, nil)
		return
	}
	if res.Expected != nil || len(res.Cases) == 0 || !(res.Status == Passed || res.fromCases) {
		res.Verdict = verdict(res.Status, res.Expected)
		return
	}
	// The check's outcome is its cases': the worst case verdict.
	res.Verdict = VerdictPass
	rank := map[Verdict]int{VerdictPass: 0, VerdictFlaky: 1, VerdictExpectedFailure: 2, VerdictUnexpectedPass: 3, VerdictError: 4, VerdictFail: 5}
	for _, c := range res.Cases {
		if c.Verdict == VerdictSkip {
			continue
		}
		if rank[c.Verdict] > rank[res.Verdict] {
			res.Verdict = c.Verdict
		}
	}
}

func verdict(s Status, e *Entry) Verdict {
	switch s {
	case Skipped, Filtered:
		return VerdictSkip
	case NotRun:
		return VerdictNotRun
	case Interrupted:
		return VerdictInterrupted
	}
	if e != nil && e.Flaky {
		return VerdictFlaky
	}
	switch {
	case s == Passed && e != nil:
		return VerdictUnexpectedPass
	case s == Passed:
		return VerdictPass
	case e != nil:
		return VerdictExpectedFailure
	case s == Errored:
		return VerdictError
	}
	return VerdictFail
}
