// Package report prints the end-of-run text summary: per category, how many
// checks passed, failed, failed as expected, passed unexpectedly or were
// skipped, and why each non-pass happened.
package report

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/gauntlet-conformance/gauntlet/internal/expectations"
)

var order = []string{expectations.Pass, expectations.Fail, expectations.ExpectedFailure, expectations.UnexpectedPass, expectations.Skip}

// Summary writes the summary of one suite's judged outcomes.
func Summary(w io.Writer, suite string, js []expectations.Judged, categories map[string]string) {
	byCat := map[string]map[string]int{}
	var cats []string
	total := map[string]int{}
	for _, j := range js {
		if byCat[j.Category] == nil {
			byCat[j.Category] = map[string]int{}
			cats = append(cats, j.Category)
		}
		byCat[j.Category][j.Verdict]++
		total[j.Verdict]++
	}
	sort.Strings(cats)
	fmt.Fprintf(w, "\n%s: %d checks\n", suite, len(js))
	fmt.Fprintf(w, "  %-34s %6s %6s %9s %11s %7s\n", "category", "passed", "failed", "expected", "unexp.pass", "skipped")
	for _, c := range cats {
		m := byCat[c]
		name := c
		if d := categories[c]; d != "" {
			name = c + " " + d
		}
		fmt.Fprintf(w, "  %-34s %6d %6d %9d %11d %7d\n", name, m[expectations.Pass], m[expectations.Fail], m[expectations.ExpectedFailure], m[expectations.UnexpectedPass], m[expectations.Skip])
	}
	fmt.Fprintf(w, "  %-34s %6d %6d %9d %11d %7d\n", "total", total[expectations.Pass], total[expectations.Fail], total[expectations.ExpectedFailure], total[expectations.UnexpectedPass], total[expectations.Skip])
	for _, v := range order[1:] {
		var lines []string
		for _, j := range js {
			if j.Verdict != v {
				continue
			}
			msg := firstLine(j.Message)
			if j.Entry != nil {
				msg = fmt.Sprintf("%s [%s]", j.Entry.Reason, j.Entry.Link)
				if v == expectations.UnexpectedPass {
					msg = "listed as failing but passed — update the expectations file: " + msg
				}
			}
			lines = append(lines, fmt.Sprintf("    %-5s %s", j.ID, msg))
		}
		if len(lines) > 0 {
			fmt.Fprintf(w, "  %s:\n%s\n", v, strings.Join(lines, "\n"))
		}
	}
}

// Totals returns the verdict counts.
func Totals(js []expectations.Judged) map[string]int {
	m := map[string]int{}
	for _, j := range js {
		m[j.Verdict]++
	}
	return m
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
