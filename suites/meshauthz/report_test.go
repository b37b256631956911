package meshauthz_test

import (
	"encoding/xml"
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/reports"
	"github.com/gauntlet-conformance/gauntlet/suites/meshauthz"
	"sigs.k8s.io/yaml"
)

var impl = reports.Implementation{Organization: "gauntlet-conformance", Project: "reference mesh",
	URL: "https://github.com/gauntlet-conformance/gauntlet", Version: "test", Contact: []string{"https://github.com/gauntlet-conformance/gauntlet/issues"}}

type junitDoc struct {
	Suites []struct {
		Cases []struct {
			Name    string    `xml:"name,attr"`
			Status  string    `xml:"status,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

var checkCase = regexp.MustCompile(`^\[([A-Z]+[0-9]+)\] `)

// TestCertificationMatchesJUnit writes the JUnit and the certification
// report of the same run (all features but DENY declared, one core fault)
// and checks that they tell the same story: every check the certification
// counts has the JUnit outcome, the checks of undeclared features are
// skipped in JUnit and absent from the claim, and the report validates.
func TestCertificationMatchesJUnit(t *testing.T) {
	t.Parallel()
	var declared []conformance.Feature
	for _, f := range meshauthz.Features {
		if f.Name != meshauthz.FeatureDeny {
			declared = append(declared, f.Name)
		}
	}
	rep := run(t, declared, meshauthz.Settings{}, conformance.RunOptions{}, faults.MeshSPIFFENeverMatches)
	dir := t.TempDir()
	jp, err := reports.WriteJUnit(dir, rep)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := reports.WriteCertification(dir, rep, impl, meshauthz.Features)
	if err != nil {
		t.Fatal(err)
	}
	jb, _ := os.ReadFile(jp)
	cb, _ := os.ReadFile(cp)
	if err := reports.ValidateCertification(cb); err != nil {
		t.Fatal(err)
	}
	var j junitDoc
	if err := xml.Unmarshal(jb, &j); err != nil {
		t.Fatal(err)
	}
	var c reports.CertificationReport
	if err := yaml.UnmarshalStrict(cb, &c); err != nil {
		t.Fatal(err)
	}
	junit := map[string]string{}
	for _, tc := range j.Suites[0].Cases {
		m := checkCase.FindStringSubmatch(tc.Name)
		if m == nil {
			continue // a sub-case
		}
		switch {
		case tc.Failure != nil || tc.Error != nil:
			junit[m[1]] = "failed"
		case tc.Skipped != nil:
			junit[m[1]] = "skipped"
		default:
			junit[m[1]] = "passed"
		}
	}
	p := c.Profiles[0]
	cert := map[string]string{}
	for _, s := range []reports.Status{p.Core, p.Extended.Status} {
		for _, id := range s.FailedTests {
			cert[id] = "failed"
		}
		for _, id := range s.SkippedTests {
			cert[id] = "skipped"
		}
	}
	counted := p.Core.Statistics.Passed + p.Core.Statistics.Failed + p.Core.Statistics.Skipped +
		p.Extended.Statistics.Passed + p.Extended.Statistics.Failed + p.Extended.Statistics.Skipped
	claimed := 0
	for id, js := range junit {
		if id == "MX27" { // AuthorizationPolicyDeny not declared
			if js != "skipped" || cert[id] != "" {
				t.Errorf("MX27: JUnit %s, certification %q: want skipped and unclaimed", js, cert[id])
			}
			continue
		}
		claimed++
		want := js
		if cert[id] == "" {
			if want != "passed" {
				t.Errorf("%s: JUnit %s, certification counts it passed", id, js)
			}
			continue
		}
		if cert[id] != want {
			t.Errorf("%s: JUnit %s, certification %s", id, js, cert[id])
		}
	}
	if counted != claimed {
		t.Errorf("certification counts %d checks, JUnit has %d claimed", counted, claimed)
	}
	if p.Core.Result != reports.ResultFailure || !slices.Equal(p.Core.FailedTests, []string{"MA09"}) {
		t.Errorf("core %s %v: want failure of MA09 only", p.Core.Result, p.Core.FailedTests)
	}
	if p.Extended.Result != reports.ResultSuccess {
		t.Errorf("extended %s: %+v", p.Extended.Result, p.Extended)
	}
	if !slices.Equal(p.Extended.UnsupportedFeatures, []string{string(meshauthz.FeatureDeny)}) {
		t.Errorf("unsupported %v, want only %s", p.Extended.UnsupportedFeatures, meshauthz.FeatureDeny)
	}
	if slices.Contains(p.Extended.SupportedFeatures, string(meshauthz.FeatureDeny)) {
		t.Errorf("supported features %v name an undeclared feature", p.Extended.SupportedFeatures)
	}
}
