package reports

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"sigs.k8s.io/yaml"
)

var testImpl = Implementation{Organization: "example", Project: "mesh", URL: "https://example.com/mesh", Version: "v1.2.3", Contact: []string{"@maintainers"}}

var testKnown = []conformance.FeatureInfo{{Name: "AuthorizationPolicySPIFFE"}, {Name: "AuthorizationPolicyDeny"}, {Name: "AuthorizationPolicyGRPC"}}

func res(id string, st conformance.Status, fs ...conformance.Feature) conformance.Result {
	r := conformance.Result{ID: id, Name: "check " + id, Category: conformance.Category(id), Status: st, Features: fs}
	if st == conformance.Skipped && len(fs) > 0 {
		r.Skipped = fs[0]
	}
	return r
}

func report(declared []conformance.Feature, rs ...conformance.Result) *conformance.Report {
	r := &conformance.Report{Suite: "meshauthz", Target: "mesh under test", FeaturesDeclared: declared,
		Started: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC), Results: rs}
	seen := map[conformance.Feature]bool{}
	for _, x := range rs {
		if x.Status == conformance.Passed || x.Status == conformance.Failed || x.Status == conformance.Errored {
			for _, f := range x.Features {
				if !seen[f] {
					seen[f] = true
					r.FeaturesExercised = append(r.FeaturesExercised, f)
				}
			}
		}
	}
	return r
}

func TestBuildCertification(t *testing.T) {
	t.Parallel()
	spiffe, deny, grpc := conformance.Feature("AuthorizationPolicySPIFFE"), conformance.Feature("AuthorizationPolicyDeny"), conformance.Feature("AuthorizationPolicyGRPC")
	xfail := res("MA02", conformance.Failed)
	xfail.Expected = &conformance.Entry{Reason: "known", Link: "https://example.com/issue/1"}
	tests := []struct {
		name                  string
		rep                   *conformance.Report
		core, ext             string
		coreStats, extStats   Statistics
		supported, unsupp     []string
		untested, failed, skp []string
		deviations            int
	}{
		{name: "all pass",
			rep:  report([]conformance.Feature{spiffe, deny, grpc}, res("MA01", conformance.Passed), res("MA09", conformance.Passed, spiffe), res("MX25", conformance.Passed, grpc), res("MX27", conformance.Passed, deny)),
			core: ResultSuccess, ext: ResultSuccess, coreStats: Statistics{Passed: 2}, extStats: Statistics{Passed: 2},
			supported: []string{string(spiffe), string(deny), string(grpc)}},
		{name: "core check skipped for an undeclared feature is partial",
			rep:  report(nil, res("MA01", conformance.Passed), res("MA09", conformance.Skipped, spiffe), res("MX26", conformance.Passed), res("MX27", conformance.Skipped, deny)),
			core: ResultPartial, ext: ResultSuccess, coreStats: Statistics{Passed: 1, Skipped: 1}, extStats: Statistics{Passed: 1},
			unsupp: []string{string(deny), string(grpc), string(spiffe)}, skp: []string{"MA09"}},
		{name: "expected failure is still a failure",
			rep:  report([]conformance.Feature{deny}, res("MA01", conformance.Passed), xfail, res("MX27", conformance.Errored, deny)),
			core: ResultFailure, ext: ResultFailure, coreStats: Statistics{Passed: 1, Failed: 1}, extStats: Statistics{Failed: 1},
			supported: []string{string(deny)}, unsupp: []string{string(grpc), string(spiffe)}, failed: []string{"MA02", "MX27"}, deviations: 1},
		{name: "filtered checks are skipped and their features untested",
			rep:  report([]conformance.Feature{deny}, res("MA01", conformance.Passed), res("MA02", conformance.Filtered), res("MX27", conformance.Filtered, deny)),
			core: ResultPartial, ext: ResultPartial, coreStats: Statistics{Passed: 1, Skipped: 1}, extStats: Statistics{Skipped: 1},
			unsupp: []string{string(grpc), string(spiffe)}, untested: []string{string(deny)}, skp: []string{"MA02", "MX27"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := BuildCertification(tc.rep, testImpl, testKnown)
			b, err := MarshalCertification(c)
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			p := c.Profiles[0]
			if p.Core.Result != tc.core || p.Core.Statistics != tc.coreStats {
				t.Errorf("core %s %+v, want %s %+v", p.Core.Result, p.Core.Statistics, tc.core, tc.coreStats)
			}
			if p.Extended == nil {
				t.Fatalf("no extended status")
			}
			e := p.Extended
			if e.Result != tc.ext || e.Statistics != tc.extStats {
				t.Errorf("extended %s %+v, want %s %+v", e.Result, e.Statistics, tc.ext, tc.extStats)
			}
			sortEq := func(what string, got, want []string) {
				g, w := append([]string(nil), got...), append([]string(nil), want...)
				if strings.Join(sorted(g), ",") != strings.Join(sorted(w), ",") {
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			}
			sortEq("supportedFeatures", e.SupportedFeatures, tc.supported)
			sortEq("unsupportedFeatures", e.UnsupportedFeatures, tc.unsupp)
			sortEq("untestedFeatures", e.UntestedFeatures, tc.untested)
			sortEq("failedTests", append(p.Core.FailedTests, e.FailedTests...), tc.failed)
			sortEq("skippedTests", append(p.Core.SkippedTests, e.SkippedTests...), tc.skp)
			if n := len(p.Core.KnownDeviations) + len(e.KnownDeviations); n != tc.deviations {
				t.Errorf("%d known deviations, want %d", n, tc.deviations)
			}
			for _, s := range []Status{p.Core, e.Status} {
				if s.Statistics.Failed != len(s.FailedTests) || s.Statistics.Skipped != len(s.SkippedTests) {
					t.Errorf("statistics %+v disagree with the lists %v %v", s.Statistics, s.FailedTests, s.SkippedTests)
				}
			}
		})
	}
}

func sorted(l []string) []string {
	for i := range l {
		for j := i + 1; j < len(l); j++ {
			if l[j] < l[i] {
				l[i], l[j] = l[j], l[i]
			}
		}
	}
	return l
}

// TestCertificationSchema: the schema rejects what Gateway API's report
// rules forbid, and WriteCertification writes a valid file.
func TestCertificationSchema(t *testing.T) {
	t.Parallel()
	good := BuildCertification(report(nil, res("MA01", conformance.Passed)), testImpl, testKnown)
	tests := []struct {
		name string
		edit func(c *CertificationReport)
	}{
		{"relative url", func(c *CertificationReport) { c.Implementation.URL = "example.com/mesh" }},
		{"no contact", func(c *CertificationReport) { c.Implementation.Contact = nil }},
		{"no version", func(c *CertificationReport) { c.Implementation.Version = "" }},
		{"unknown result", func(c *CertificationReport) { c.Profiles[0].Core.Result = "ok" }},
		{"profile not MESH", func(c *CertificationReport) { c.Profiles[0].Name = "AUTHZ" }},
		{"bad test ID", func(c *CertificationReport) { c.Profiles[0].Core.FailedTests = []string{"[MA01] x"} }},
		{"no profiles", func(c *CertificationReport) { c.Profiles = nil }},
		{"bad date", func(c *CertificationReport) { c.Date = "yesterday" }},
	}
	for _, tc := range tests {
		c := *good
		c.Implementation.Contact = append([]string(nil), good.Implementation.Contact...)
		c.Profiles = append([]ProfileReport(nil), good.Profiles...)
		tc.edit(&c)
		if _, err := MarshalCertification(&c); err == nil {
			t.Errorf("%s: the schema accepted it", tc.name)
		}
	}
	dir := t.TempDir()
	p, err := WriteCertification(dir, report(nil, res("MA01", conformance.Passed)), testImpl, testKnown)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateCertification(b); err != nil {
		t.Error(err)
	}
	var back CertificationReport
	if err := yaml.UnmarshalStrict(b, &back); err != nil || back.Profiles[0].Core.Result != ResultSuccess {
		t.Errorf("round trip: %v %+v", err, back)
	}
}
