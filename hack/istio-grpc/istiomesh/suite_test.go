package istiomesh

import (
	"context"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/suites/meshauthz"
)

// TestSuite runs the whole meshauthz suite in process against this
// target, with the features it declares and the committed expectations:
// green means exactly the listed deviations fail (conformance.sh runs the
// same through the CLI and the meshexec protocol).
func TestSuite(t *testing.T) {
	m, err := New(Options{Dir: t.TempDir() + "/svids"})
	if err != nil {
		t.Fatal(err)
	}
	var declared []conformance.Feature
	for _, f := range m.Features() {
		declared = append(declared, conformance.Feature(f))
	}
	declared, err = meshauthz.TargetFeatures(declared, m)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := conformance.LoadExpectations("../../../expectations/meshauthz-istio-grpc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	target := conformance.Target{Name: m.Name(), Features: declared, Settings: meshauthz.Settings{Driver: m}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := conformance.Run(ctx, meshauthz.Suite, target, conformance.RunOptions{Expectations: exp})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		t.Logf("%s: %s %s", r.Title(), r.Status, conformance.FirstLine(r.Message, 160))
	}
	if !rep.OK() {
		t.Errorf("the run is not green against expectations/meshauthz-istio-grpc.yaml")
	}
	t.Logf("%d checks in %s", len(rep.Results), rep.Duration)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.workloads) != 0 || len(m.policies) != 0 {
		t.Errorf("Teardown left %d workloads and %d policies", len(m.workloads), len(m.policies))
	}
}
