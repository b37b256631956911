package reports

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// The certification report of the meshauthz suite: the run of one mesh
// against GEP-3779, in the shape of Gateway API's ConformanceReport
// (conformance/apis/v1): implementation, date, mode, and a MESH profile
// whose core status covers the MA checks and whose extended status covers
// the MX checks of the declared features. It is built from the same
// conformance.Report as the JUnit file, from raw outcomes (an expected
// failure is still a failure here: the report certifies conformance, the
// expectations only keep CI green), and validated against
// schema/meshauthz-report.schema.json before it is written.

//go:embed schema/meshauthz-report.schema.json
var certificationSchema []byte

// Certification constants.
const (
	CertificationAPIVersion = "gauntlet.dev/v1alpha1"
	CertificationKind       = "MeshAuthorizationConformanceReport"
	// MeshProfile is the report's profile (Gateway API: a mesh profile's
	// name starts with MESH).
	MeshProfile = "MESH-AUTHZ"
	// MeshSpecification is what the core checks implement.
	MeshSpecification = "GEP-3779 Identity Based Authz for East-West Traffic (Implementable; gateway-api v1.7.0) with Gauntlet's extended features"
	coreCategory      = "MA"
	extendedCategory  = "MX"
)

// Implementation identifies the implementation under test, as in Gateway
// API's ConformanceReport.
type Implementation struct {
	Organization string   `json:"organization"`
	Project      string   `json:"project"`
	URL          string   `json:"url"`
	Version      string   `json:"version"`
	Contact      []string `json:"contact"`
}

// CertificationReport is reports/meshauthz-report.yaml.
type CertificationReport struct {
	APIVersion      string          `json:"apiVersion"`
	Kind            string          `json:"kind"`
	Date            string          `json:"date"`
	GauntletVersion string          `json:"gauntletVersion,omitempty"`
	Suite           string          `json:"suite"`
	Implementation  Implementation  `json:"implementation"`
	Target          CertTarget      `json:"target"`
	Mode            string          `json:"mode"`
	Specification   string          `json:"specification"`
	Expectations    string          `json:"expectations,omitempty"`
	Interrupted     string          `json:"interrupted,omitempty"`
	Profiles        []ProfileReport `json:"profiles"`
}

// CertTarget is what the run was pointed at.
type CertTarget struct {
	Name     string `json:"name"`
	Embedded bool   `json:"embedded"`
}

// ProfileReport is one profile's result.
type ProfileReport struct {
	Name     string          `json:"name"`
	Summary  string          `json:"summary"`
	Core     Status          `json:"core"`
	Extended *ExtendedStatus `json:"extended,omitempty"`
}

// Result values.
const (
	ResultSuccess = "success"
	ResultPartial = "partial"
	ResultFailure = "failure"
)

// Status is Gateway API's conformance Status.
type Status struct {
	Result          string      `json:"result"`
	Statistics      Statistics  `json:"statistics"`
	SkippedTests    []string    `json:"skippedTests,omitempty"`
	FailedTests     []string    `json:"failedTests,omitempty"`
	KnownDeviations []Deviation `json:"knownDeviations,omitempty"`
}

// Statistics counts tests (Gateway API's capitalised keys).
type Statistics struct {
	Passed  int `json:"Passed"`
	Skipped int `json:"Skipped"`
	Failed  int `json:"Failed"`
}

// Deviation is a failure the run's expectations file lists.
type Deviation struct {
	Test   string `json:"test"`
	Reason string `json:"reason"`
	Link   string `json:"link"`
}

// ExtendedStatus adds the features: supported are those whose checks
// actually ran (core checks' features included, e.g. SPIFFE), untested
// those declared whose checks did not run (filtered or interrupted),
// unsupported those the suite knows and the target did not declare.
type ExtendedStatus struct {
	Status
	SupportedFeatures   []string `json:"supportedFeatures,omitempty"`
	UnsupportedFeatures []string `json:"unsupportedFeatures,omitempty"`
	UntestedFeatures    []string `json:"untestedFeatures,omitempty"`
}

// CertificationPath is where WriteCertification puts the report.
func CertificationPath(dir, suite string) string { return filepath.Join(dir, suite+"-report.yaml") }

// BuildCertification derives the certification report from a run.
// known are the suite's optional features.
func BuildCertification(r *conformance.Report, impl Implementation, known []conformance.FeatureInfo) *CertificationReport {
	declared := map[conformance.Feature]bool{}
	for _, f := range r.FeaturesDeclared {
		declared[f] = true
	}
	var core, ext Status
	for _, res := range r.Results {
		switch res.Category {
		case coreCategory:
			count(&core, res)
		case extendedCategory:
			if claimed(res, declared) {
				count(&ext, res)
			}
		}
	}
	core.Result = result(core.Statistics)
	p := ProfileReport{Name: MeshProfile, Core: core}
	exercised := map[conformance.Feature]bool{}
	es := &ExtendedStatus{Status: ext}
	for _, f := range r.FeaturesExercised {
		exercised[f] = true
		es.SupportedFeatures = append(es.SupportedFeatures, string(f))
	}
	for _, k := range known {
		switch {
		case !declared[k.Name]:
			es.UnsupportedFeatures = append(es.UnsupportedFeatures, string(k.Name))
		case !exercised[k.Name]:
			es.UntestedFeatures = append(es.UntestedFeatures, string(k.Name))
		}
	}
	for _, l := range [][]string{es.SupportedFeatures, es.UnsupportedFeatures, es.UntestedFeatures} {
		sort.Strings(l)
	}
	summary := []string{summarize("Core", core)}
	if total(ext.Statistics) > 0 || len(es.SupportedFeatures) > 0 {
		es.Result = result(ext.Statistics)
		p.Extended = es
		summary = append(summary, summarize("Extended", es.Status))
	}
	p.Summary = strings.Join(summary, " ")
	rep := &CertificationReport{
		APIVersion: CertificationAPIVersion, Kind: CertificationKind,
		Date:            r.Started.UTC().Format(time.RFC3339),
		GauntletVersion: gauntletVersion(),
		Suite:           r.Suite,
		Implementation:  impl,
		Target:          CertTarget{Name: r.Target, Embedded: r.Embedded},
		Mode:            "default",
		Specification:   MeshSpecification,
		Expectations:    r.Expectations,
		Interrupted:     r.Interrupted,
		Profiles:        []ProfileReport{p},
	}
	return rep
}

// claimed: an extended check is part of the target's claim when it needs no
// feature the target does not declare; the others are not counted (Gateway
// API) and show up as unsupported features instead.
func claimed(res conformance.Result, declared map[conformance.Feature]bool) bool {
	for _, f := range res.Features {
		if !declared[f] {
			return false
		}
	}
	return true
}

// count adds one result. Filtered, not-run and interrupted checks did not
// run: skipped (so a focused or interrupted run cannot certify success).
func count(s *Status, res conformance.Result) {
	switch res.Status {
	case conformance.Passed:
		s.Statistics.Passed++
	case conformance.Failed, conformance.Errored:
		s.Statistics.Failed++
		s.FailedTests = append(s.FailedTests, res.ID)
	default:
		s.Statistics.Skipped++
		s.SkippedTests = append(s.SkippedTests, res.ID)
	}
	if res.Expected != nil && (res.Status == conformance.Failed || res.Status == conformance.Errored) {
		s.KnownDeviations = append(s.KnownDeviations, Deviation{Test: res.ID, Reason: res.Expected.Reason, Link: res.Expected.Link})
	}
	for _, c := range res.Cases {
		if c.Expected != nil && c.Expected != res.Expected && (c.Status == conformance.Failed || c.Status == conformance.Errored) {
			s.KnownDeviations = append(s.KnownDeviations, Deviation{Test: res.ID + "/" + c.Name, Reason: c.Expected.Reason, Link: c.Expected.Link})
		}
	}
}

func total(s Statistics) int { return s.Passed + s.Skipped + s.Failed }

func result(s Statistics) string {
	switch {
	case s.Failed > 0:
		return ResultFailure
	case s.Skipped > 0 || s.Passed == 0:
		return ResultPartial
	}
	return ResultSuccess
}

func summarize(what string, s Status) string {
	switch s.Result {
	case ResultFailure:
		return fmt.Sprintf("%s tests failed with %d test failures.", what, s.Statistics.Failed)
	case ResultPartial:
		return fmt.Sprintf("%s tests partially succeeded with %d test skips.", what, s.Statistics.Skipped)
	}
	return what + " tests succeeded."
}

func gauntletVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// MarshalCertification renders the report as YAML after validating it
// against the schema.
func MarshalCertification(c *CertificationReport) ([]byte, error) {
	j, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if err := ValidateCertification(j); err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

// WriteCertification writes dir/<suite>-report.yaml (meshauthz-report.yaml).
func WriteCertification(dir string, r *conformance.Report, impl Implementation, known []conformance.FeatureInfo) (string, error) {
	b, err := MarshalCertification(BuildCertification(r, impl, known))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := CertificationPath(dir, r.Suite)
	return p, os.WriteFile(p, b, 0o644)
}

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
)

// ValidateCertification validates a report (YAML or JSON) against
// schema/meshauthz-report.schema.json.
func ValidateCertification(doc []byte) error {
	schemaOnce.Do(func() {
		var s any
		s, schemaErr = jsonschema.UnmarshalJSON(bytes.NewReader(certificationSchema))
		if schemaErr != nil {
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		const url = "meshauthz-report.schema.json"
		if schemaErr = c.AddResource(url, s); schemaErr == nil {
			schema, schemaErr = c.Compile(url)
		}
	})
	if schemaErr != nil {
		return fmt.Errorf("certification schema: %w", schemaErr)
	}
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return fmt.Errorf("certification report: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return fmt.Errorf("certification report: %w", err)
	}
	if err := schema.Validate(inst); err != nil {
		return fmt.Errorf("certification report does not match its schema: %w", err)
	}
	return nil
}
