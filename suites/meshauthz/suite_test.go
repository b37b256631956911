package meshauthz_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/conformance/prooftest"
	"github.com/gauntlet-conformance/gauntlet/fakes/mesh/meshtarget"
	"github.com/gauntlet-conformance/gauntlet/faults"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/suites/meshauthz"
)

func run(t *testing.T, declared []conformance.Feature, s meshauthz.Settings, o conformance.RunOptions, fs ...faults.Fault) *conformance.Report {
	t.Helper()
	target, m, err := meshtarget.Start(declared, s, fs...)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := conformance.Run(ctx, meshauthz.Suite, target, o)
	if err != nil {
		t.Fatal(err)
	}
	if n, c := m.Workloads(), m.OpenConns(); n != 0 || c != 0 {
		t.Errorf("after the run the mesh still has %d workloads and %d open connections: Teardown must clean up", n, c)
	}
	return rep
}

// TestReference: every check passes against the embedded reference mesh
// (every feature declared), fast, and nothing is red.
func TestReference(t *testing.T) {
	t.Parallel()
	rep := run(t, nil, meshauthz.Settings{}, conformance.RunOptions{})
	for _, r := range rep.Results {
		if r.Status != conformance.Passed {
			t.Errorf("%s: %s: %s", r.Title(), r.Status, r.Message)
		}
	}
	if !rep.OK() {
		t.Errorf("report is not OK")
	}
	t.Logf("the suite took %s against the reference mesh", rep.Duration) // measured, not asserted
	if got, want := len(rep.FeaturesExercised), len(meshauthz.Features); got != want {
		t.Errorf("exercised %v, want all %d features", rep.FeaturesExercised, want)
	}
	t.Logf("%d checks in %s", len(rep.Results), rep.Duration)
}

// TestCoreOnly: on a core-only install (no extension declared but the API
// one) the MX checks skip with their feature, and MX29 tests that the API
// rejects DENY.
func TestCoreOnly(t *testing.T) {
	t.Parallel()
	rep := run(t, []conformance.Feature{meshauthz.FeatureSPIFFE, meshauthz.FeatureAPI}, meshauthz.Settings{},
		conformance.RunOptions{Select: func(i conformance.Info) bool { return i.Category() == "MX" || i.ID == "MA09" }})
	for _, r := range rep.Results {
		switch {
		case r.Status == conformance.Filtered:
		case r.ID == "MA09" || r.ID == "MX26" || r.ID == "MX29":
			if r.Status != conformance.Passed {
				t.Errorf("%s: %s: %s", r.Title(), r.Status, r.Message)
			}
		default:
			if r.Status != conformance.Skipped || r.Skipped == "" || !strings.Contains(r.Message, string(r.Skipped)) {
				t.Errorf("%s: %s (%q): want skipped naming its feature", r.Title(), r.Status, r.Message)
			}
		}
		if r.ID == "MX29" {
			found := false
			for _, c := range r.Cases {
				if c.Name == "deny-on-core-only" {
					found = c.Status == conformance.Passed
				}
			}
			if !found {
				t.Errorf("MX29/deny-on-core-only did not run and pass on a core-only install: %+v", r.Cases)
			}
		}
	}
}

// TestDefaultDenyFailsFast: a default-deny install without a baseline hook
// fails every check at once with one diagnostic naming --baseline-hook.
func TestDefaultDenyFailsFast(t *testing.T) {
	t.Parallel()
	start := time.Now()
	rep := run(t, nil, meshauthz.Settings{}, conformance.RunOptions{}, faults.MeshDefaultDeny)
	for _, r := range rep.Results {
		if r.Status != conformance.Errored || !strings.Contains(r.Message, "--baseline-hook") {
			t.Errorf("%s: %s %q: want a fixture error naming --baseline-hook", r.Title(), r.Status, r.Message)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s: the precheck must fail fast", d)
	}
}

// TestBaselineHook: the hook runs before the checks, sees the namespaces,
// and a failing hook is a fixture error naming it.
func TestBaselineHook(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "ns")
	only := conformance.RunOptions{Select: func(i conformance.Info) bool { return i.ID == "MA22" }}
	tests := []struct {
		name, hook string
		ok         bool
	}{
		{"runs", `echo "$GAUNTLET_MESH_TRUST_DOMAIN $GAUNTLET_MESH_NAMESPACES" > ` + out, true},
		{"fails", "echo broken >&2; exit 3", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := run(t, nil, meshauthz.Settings{BaselineHook: tc.hook}, only)
			r := rep.Results[0]
			for _, res := range rep.Results {
				if res.ID == "MA22" {
					r = res
				}
			}
			if tc.ok {
				if r.Status != conformance.Passed {
					t.Fatalf("MA22: %s %s", r.Status, r.Message)
				}
				b, err := os.ReadFile(out)
				if err != nil || !strings.Contains(string(b), "cluster.local") || !strings.Contains(string(b), "baseline") {
					t.Errorf("hook output %q, %v: want the trust domain and the namespaces", b, err)
				}
				return
			}
			if r.Status != conformance.Errored || !strings.Contains(r.Message, "--baseline-hook") || !strings.Contains(r.Message, "broken") {
				t.Errorf("MA22: %s %q: want a fixture error naming the hook and its output", r.Status, r.Message)
			}
		})
	}
}

// TestProofs proves every (check, fault) pair: the check fails on its own
// assertion against a fresh reference mesh with the fault armed after the
// fixtures exist (proofs mostly wait out the convergence bound: run with
// -parallel 8 or more, as make test does).
func TestProofs(t *testing.T) {
	t.Parallel()
	prooftest.Faults(t, meshauthz.Suite, faults.Mesh, func(conformance.Info) conformance.StartFunc {
		return meshtarget.StartFunc(meshauthz.Settings{})
	}, nil)
}

// TestCatalogue: every check has a catalogue ID, a name without it and a
// fault of the mesh catalogue; every catalogue fault is used.
func TestCatalogue(t *testing.T) {
	t.Parallel()
	prooftest.Catalogue(t, meshauthz.Suite, faults.Mesh, nil)
	ids := map[string]bool{}
	for _, c := range meshauthz.Suite.Checks() {
		ids[c.ID] = true
		if strings.Contains(c.Name, c.ID) || strings.HasPrefix(c.Name, "[") {
			t.Errorf("%s: the name %q must not carry the ID", c.ID, c.Name)
		}
		ext := false
		for _, f := range c.Features {
			_, known := meshauthz.Suite.Feature(f)
			if !known {
				t.Errorf("%s needs feature %s, which the suite does not list", c.ID, f)
			}
			ext = ext || !strings.HasPrefix(string(f), "MeshProtocol")
		}
		if c.Info().Category() == "MX" && !ext && c.ID != "MX26" {
			t.Errorf("%s is an extension check without an extension feature", c.ID)
		}
	}
	for i := 1; i <= 30; i++ {
		id := fmt.Sprintf("MA%02d", i)
		if i >= 24 {
			id = fmt.Sprintf("MX%02d", i)
		}
		if !ids[id] {
			t.Errorf("catalogue check %s is not implemented", id)
		}
	}
}

// stalling drops every request to one workload: the mesh (or network)
// stalls instead of answering.
type stalling struct {
	mp.Driver
	victim mp.WorkloadRef
}

func (s stalling) Do(ctx context.Context, r mp.Request) (mp.Outcome, error) {
	if r.To != s.victim {
		return s.Driver.Do(ctx, r)
	}
	select {
	case <-ctx.Done():
		return mp.Outcome{}, ctx.Err()
	case <-time.After(100 * time.Millisecond): // as if r.Timeout had expired, sooner
		return mp.Outcome{Err: mp.ErrTimeout, Detail: "no answer within " + r.Timeout.String()}, nil
	}
}

// TestStalledTarget: a target that stops answering fails the affected check
// with a diagnostic within the convergence bound, and nothing else.
func TestStalledTarget(t *testing.T) {
	t.Parallel()
	target, m, err := meshtarget.Start(nil, meshauthz.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	s := target.Settings.(meshauthz.Settings)
	s.Driver = stalling{Driver: m, victim: mp.WorkloadRef{Namespace: "ma01", Name: "server"}}
	target.Settings = s
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := conformance.Run(ctx, meshauthz.Suite, target, conformance.RunOptions{
		Select: func(i conformance.Info) bool { return i.ID == "MA01" || i.ID == "MA02" }})
	if err == nil && rep.Results[0].ID != "MA01" {
		err = fmt.Errorf("unexpected order %s", rep.Results[0].ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	ma01, ma02 := rep.Results[0], rep.Results[1]
	if ma01.Status != conformance.Failed || !strings.Contains(ma01.Cases[0].Message, "timeout") {
		t.Errorf("MA01: %s %q (%+v): want a failure naming the timeout", ma01.Status, ma01.Message, ma01.Cases)
	}
	if ma02.Status != conformance.Passed {
		t.Errorf("MA02: %s %s: a stall of another workload must not affect it", ma02.Status, ma02.Message)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %s", d)
	}
}
