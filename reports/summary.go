// Package reports renders a conformance.Report: the end-of-run text summary,
// JUnit XML (one file per suite), and the certification report of the mesh
// suite. Generated files land beside this package in reports/ (gitignored).
package reports

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/gauntlet-conformance/gauntlet/conformance"
)

var columns = []conformance.Verdict{conformance.VerdictPass, conformance.VerdictFail, conformance.VerdictError,
	conformance.VerdictExpectedFailure, conformance.VerdictUnexpectedPass, conformance.VerdictFlaky, conformance.VerdictSkip,
	conformance.VerdictNotRun, conformance.VerdictInterrupted}

// header names the table's columns; lowercase, so that a green run prints
// no "FAIL" anywhere.
var header = map[conformance.Verdict]string{conformance.VerdictPass: "passed", conformance.VerdictFail: "failed",
	conformance.VerdictError: "errors", conformance.VerdictExpectedFailure: "xfail", conformance.VerdictUnexpectedPass: "xpass",
	conformance.VerdictFlaky: "flaky", conformance.VerdictSkip: "skipped", conformance.VerdictNotRun: "not-run",
	conformance.VerdictInterrupted: "interrupt"}

// Summary writes a per-category table of verdicts, then every non-pass with
// its reason (expected failures with their upstream link, skips with the
// missing feature), and which target each check ran against when a run
// drove more than one.
func Summary(w io.Writer, r *conformance.Report) {
	byCat := map[string]map[conformance.Verdict]int{}
	total := map[conformance.Verdict]int{}
	targets := map[string][]string{}
	var cats []string
	n := 0
	for _, res := range r.Results {
		if res.Status == conformance.Filtered {
			continue
		}
		n++
		if byCat[res.Category] == nil {
			byCat[res.Category] = map[conformance.Verdict]int{}
			cats = append(cats, res.Category)
		}
		byCat[res.Category][res.Verdict]++
		total[res.Verdict]++
		targets[res.Target] = append(targets[res.Target], res.ID)
	}
	sort.Strings(cats)
	fmt.Fprintf(w, "\n%s against %s: %d checks in %.1fs (parallel %d)\n", r.Suite, r.Target, n, r.Duration.Seconds(), r.Parallel)
	if r.Expectations != "" {
		fmt.Fprintf(w, "expectations: %s\n", r.Expectations)
	}
	if len(targets) > 1 {
		var ts []string
		for t := range targets {
			ts = append(ts, t)
		}
		sort.Strings(ts)
		for _, t := range ts {
			fmt.Fprintf(w, "  target %s: %s\n", t, strings.Join(targets[t], " "))
		}
	}
	if len(r.FeaturesDeclared) > 0 || len(r.FeaturesExercised) > 0 {
		fmt.Fprintf(w, "features declared: %s; exercised: %s\n", joinF(r.FeaturesDeclared), joinF(r.FeaturesExercised))
	}
	cols := usedColumns(total)
	fmt.Fprintf(w, "  %-36s", "category")
	for _, c := range cols {
		fmt.Fprintf(w, " %9s", header[c])
	}
	fmt.Fprintln(w)
	row := func(name string, m map[conformance.Verdict]int) {
		fmt.Fprintf(w, "  %-36s", name)
		for _, c := range cols {
			fmt.Fprintf(w, " %9d", m[c])
		}
		fmt.Fprintln(w)
	}
	for _, c := range cats {
		name := c
		if d := r.Categories[c]; d != "" {
			name = c + " " + d
		}
		if len(name) > 36 {
			name = name[:35] + "…"
		}
		row(name, byCat[c])
	}
	row("total", total)
	for _, v := range columns[1:] {
		var lines []string
		for _, res := range r.Results {
			if res.Status == conformance.Filtered {
				continue
			}
			if res.Verdict == v {
				lines = append(lines, fmt.Sprintf("    %-5s %s", res.ID, explain(res.Verdict, res.Message, res.Expected)))
			}
			for _, c := range res.Cases {
				if c.Verdict == v && c.Verdict != res.Verdict || (c.Verdict == v && c.Expected != res.Expected) {
					lines = append(lines, fmt.Sprintf("    %-5s %s", res.ID+"/"+c.Name, explain(c.Verdict, c.Message, c.Expected)))
				}
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(w, "  %s:\n%s\n", v, strings.Join(lines, "\n"))
		}
	}
	if r.Interrupted != "" {
		fmt.Fprintf(w, "RUN DID NOT FINISH: %s\n", r.Interrupted)
	}
}

func explain(v conformance.Verdict, msg string, e *conformance.Entry) string {
	msg = conformance.FirstLine(msg, 160)
	if e == nil {
		return msg
	}
	known := fmt.Sprintf("%s [%s]", e.Reason, e.Link)
	switch v {
	case conformance.VerdictUnexpectedPass:
		return "listed as failing but passed — update the expectations file: " + known
	case conformance.VerdictFlaky:
		return "known flaky (" + msg + "): " + known
	}
	return known
}

func usedColumns(total map[conformance.Verdict]int) []conformance.Verdict {
	var out []conformance.Verdict
	for i, c := range columns {
		// passed, failed, expected and skipped always show; the rest when present.
		if i < 2 || c == conformance.VerdictExpectedFailure || c == conformance.VerdictSkip || total[c] > 0 {
			out = append(out, c)
		}
	}
	return out
}

func joinF(fs []conformance.Feature) string {
	if len(fs) == 0 {
		return "none"
	}
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ",")
}
