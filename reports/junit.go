package reports

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gauntlet-conformance/gauntlet/conformance"
)

// JUnit XML, the subset CI systems read: one <testsuite> per suite, a
// <testcase> per check and one per sub-case ("[A10/empty-container-id]"),
// with real durations. Expected failures and flaky results are not
// <failure>s (a green run must read green); they carry a <system-out> line
// saying so, and unexpected passes are failures.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Status    string        `xml:"status,attr"`
	Failure   *junitMessage `xml:"failure"`
	Error     *junitMessage `xml:"error"`
	Skipped   *junitMessage `xml:"skipped"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// JUnitPath is where WriteJUnit puts a suite's file.
func JUnitPath(dir, suite string) string { return filepath.Join(dir, suite+".junit.xml") }

// WriteJUnit writes dir/<suite>.junit.xml.
func WriteJUnit(dir string, r *conformance.Report) (string, error) {
	b, err := JUnit(r)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := JUnitPath(dir, r.Suite)
	return p, os.WriteFile(p, b, 0o644)
}

// JUnit renders the report.
func JUnit(r *conformance.Report) ([]byte, error) {
	s := junitSuite{Name: r.Suite, Time: secs(r.Duration.Seconds()), Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05")}
	s.Properties = []junitProperty{{"target", r.Target}, {"parallel", fmt.Sprint(r.Parallel)},
		{"features.declared", joinF(r.FeaturesDeclared)}, {"features.exercised", joinF(r.FeaturesExercised)}}
	if r.Expectations != "" {
		s.Properties = append(s.Properties, junitProperty{"expectations", r.Expectations})
	}
	if r.Interrupted != "" {
		s.Properties = append(s.Properties, junitProperty{"interrupted", r.Interrupted})
	}
	for _, res := range r.Results {
		if res.Status == conformance.Filtered {
			continue
		}
		s.Cases = append(s.Cases, testcase(r.Suite, res.Title(), res.Target, res.Duration.Seconds(), res.Verdict, res.Message, res.Expected, notes(res.Notes)))
		for _, c := range res.Cases {
			s.Cases = append(s.Cases, testcase(r.Suite, fmt.Sprintf("[%s/%s] %s", res.ID, c.Name, res.Name), res.Target, c.Duration.Seconds(), c.Verdict, c.Message, c.Expected, ""))
		}
	}
	for _, c := range s.Cases {
		s.Tests++
		switch {
		case c.Failure != nil:
			s.Failures++
		case c.Error != nil:
			s.Errors++
		case c.Skipped != nil:
			s.Skipped++
		}
	}
	top := junitSuites{Name: "gauntlet", Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Time: s.Time, Suites: []junitSuite{s}}
	b, err := xml.MarshalIndent(top, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}

func testcase(suite, name, target string, secsF float64, v conformance.Verdict, msg string, e *conformance.Entry, out string) junitCase {
	c := junitCase{Name: name, Classname: suite, Time: secs(secsF), Status: string(v)}
	if target != "" {
		out = strings.TrimSpace("target: " + target + "\n" + out)
	}
	first := conformance.FirstLine(msg, 200)
	why := func() string {
		// A check judged from its cases has no entry of its own.
		if e == nil {
			return "see its cases"
		}
		return fmt.Sprintf("%s [%s]", e.Reason, e.Link)
	}
	switch v {
	case conformance.VerdictFail:
		c.Failure = &junitMessage{Message: first, Type: "failure", Text: msg}
	case conformance.VerdictUnexpectedPass:
		c.Failure = &junitMessage{Message: "passed, but the expectations file lists it as failing: " + why(), Type: "unexpected-pass", Text: msg}
	case conformance.VerdictError, conformance.VerdictInterrupted, conformance.VerdictNotRun:
		c.Error = &junitMessage{Message: first, Type: string(v), Text: msg}
	case conformance.VerdictSkip:
		c.Skipped = &junitMessage{Message: first}
	case conformance.VerdictExpectedFailure, conformance.VerdictFlaky:
		out = strings.TrimSpace(fmt.Sprintf("%s: %s\n%s\n%s", v, why(), msg, out))
	}
	c.SystemOut = out
	return c
}

func notes(ns []conformance.Observation) string {
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "%s: %s\n", n.Name, n.Value)
	}
	return b.String()
}

func secs(f float64) string { return fmt.Sprintf("%.3f", f) }
