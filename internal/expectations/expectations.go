// Package expectations reads per-target known-deviation files (check ID →
// reason + upstream link) and judges a run's outcomes against them: a run is
// green when exactly the listed checks fail; an unexpected failure and an
// unexpected pass (a fixed runtime) both turn it red.
package expectations

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Entry is one known deviation.
type Entry struct {
	Reason string `json:"reason"`
	Link   string `json:"link"`
}

// File is an expectations file.
type File struct {
	Target string           `json:"target"`
	Checks map[string]Entry `json:"checks"`
	Path   string           `json:"-"`
}

// Load reads and validates an expectations file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--expectations: %w", err)
	}
	return Parse(b, path)
}

// Parse validates an expectations document.
func Parse(b []byte, path string) (*File, error) {
	var f File
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("--expectations %s: %w", path, err)
	}
	f.Path = path
	for id, e := range f.Checks {
		if strings.TrimSpace(e.Reason) == "" || strings.TrimSpace(e.Link) == "" {
			return nil, fmt.Errorf("--expectations %s: check %s needs both reason and link", path, id)
		}
	}
	return &f, nil
}

// State is a check's raw outcome.
type State string

// Raw outcomes.
const (
	Passed  State = "passed"
	Failed  State = "failed"
	Skipped State = "skipped"
)

// Outcome is one check's result in a run.
type Outcome struct {
	ID       string
	Title    string
	Category string
	State    State
	Message  string // failure message or skip reason
}

// Verdict classes.
const (
	Pass            = "passed"
	Fail            = "failed"
	ExpectedFailure = "expected-failure"
	UnexpectedPass  = "unexpected-pass"
	Skip            = "skipped"
)

// Judged is an outcome with its verdict.
type Judged struct {
	Outcome
	Verdict string
	Entry   *Entry
}

// Judge classifies outcomes; f may be nil (no expectations).
func (f *File) Judge(outs []Outcome) []Judged {
	res := make([]Judged, 0, len(outs))
	for _, o := range outs {
		j := Judged{Outcome: o}
		var e *Entry
		if f != nil {
			if en, ok := f.Checks[o.ID]; ok {
				e = &en
			}
		}
		j.Entry = e
		switch {
		case o.State == Skipped:
			j.Verdict = Skip
		case o.State == Failed && e != nil:
			j.Verdict = ExpectedFailure
		case o.State == Failed:
			j.Verdict = Fail
		case e != nil:
			j.Verdict = UnexpectedPass
		default:
			j.Verdict = Pass
		}
		res = append(res, j)
	}
	return res
}

// OK reports whether a judged run is green.
func OK(js []Judged) bool {
	for _, j := range js {
		if j.Verdict == Fail || j.Verdict == UnexpectedPass {
			return false
		}
	}
	return true
}

// Unknown lists listed IDs that no check has (typos in the file).
func (f *File) Unknown(known func(string) bool) []string {
	if f == nil {
		return nil
	}
	var out []string
	for id := range f.Checks {
		if !known(id) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}
