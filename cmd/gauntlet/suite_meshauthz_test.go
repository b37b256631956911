package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gauntlet-conformance/gauntlet/reports"
	"sigs.k8s.io/yaml"
)

// TestMeshauthzEmbedded: `gauntlet run meshauthz` against the embedded
// reference mesh is green and writes JUnit, JSON and a certification report
// that validates and names the reference mesh.
func TestMeshauthzEmbedded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := run([]string{"run", "meshauthz", "--report-dir", dir}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	for _, f := range []string{"meshauthz.junit.xml", "meshauthz.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	c := readCertification(t, dir)
	if c.Implementation.Project != referenceImpl.Project || !c.Target.Embedded || c.Profiles[0].Core.Result != reports.ResultSuccess {
		t.Errorf("certification report: %+v", c)
	}
}

// TestMeshauthzUsage: bad meshauthz flags exit 2 with one line naming the flag.
func TestMeshauthzUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--implementation-project", "x"}, "--implementation-organization"},
		{[]string{"--implementation-organization", "o", "--implementation-project", "p", "--implementation-version", "v",
			"--implementation-contact", "c", "--implementation-url", "acme.example"}, "absolute http(s) URL"},
		{[]string{"--mesh-kubeconfig", "/nonexistent"}, "--mesh-kubeconfig"},
		{[]string{"--implementation-organization", "o", "--implementation-project", "p", "--implementation-version", "v",
			"--implementation-contact", "c", "--implementation-url", "https://acme.example"}, "embedded reference mesh"},
		{[]string{"--mesh-request-timeout", "0s"}, "--mesh-request-timeout"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := run(append([]string{"run", "meshauthz", "--report-dir", t.TempDir()}, tc.args...), &out, &errb)
		msg := strings.TrimSpace(errb.String())
		if code != 2 || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") > 0 {
			t.Errorf("%v: exit %d %q: want exit 2 and one line naming %s", tc.args, code, msg, tc.want)
		}
	}
}

// readCertification reads the run's certification report, validated
// against its schema.
func readCertification(t *testing.T, dir string) reports.CertificationReport {
	t.Helper()
	b, err := os.ReadFile(reports.CertificationPath(dir, "meshauthz"))
	if err != nil {
		t.Fatal(err)
	}
	if err := reports.ValidateCertification(b); err != nil {
		t.Fatal(err)
	}
	var c reports.CertificationReport
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
