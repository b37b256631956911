package meshauthz_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/fakes/mesh"
	"github.com/gauntlet-conformance/gauntlet/fakes/mesh/meshtarget"
	"github.com/gauntlet-conformance/gauntlet/faults"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/internal/meshpolicy/meshexec"
	"github.com/gauntlet-conformance/gauntlet/reports"
	"github.com/gauntlet-conformance/gauntlet/suites/meshauthz"
)

// grpcOnly declares every extension and serves only gRPC, like the Istio
// proxyless-gRPC target.
func grpcOnly() []conformance.Feature {
	var out []conformance.Feature
	for _, f := range meshauthz.Features {
		if !strings.HasPrefix(string(f.Name), "MeshProtocol") {
			out = append(out, f.Name)
		}
	}
	return append(out, meshauthz.FeatureProtocolGRPC)
}

// recorder records the protocol of every request, by server namespace
// (the check's ID, lower-cased).
type recorder struct {
	mp.Driver
	mu    sync.Mutex
	proto map[string]map[mp.Protocol]bool
}

func (r *recorder) Protocols() []mp.Protocol { return mp.Served(r.Driver) }

func (r *recorder) note(q mp.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proto[q.To.Namespace] == nil {
		r.proto[q.To.Namespace] = map[mp.Protocol]bool{}
	}
	r.proto[q.To.Namespace][q.Protocol] = true
}

func (r *recorder) Do(ctx context.Context, q mp.Request) (mp.Outcome, error) {
	r.note(q)
	return r.Driver.Do(ctx, q)
}

func (r *recorder) Open(ctx context.Context, q mp.Request) (mp.Conn, error) {
	r.note(q)
	return r.Driver.Open(ctx, q)
}

// TestGRPCOnly: against a reference mesh serving only gRPC, every core
// check that needs "a request" runs over gRPC (and only gRPC), the checks
// that need HTTP or TCP are skipped naming the missing protocol, and the
// certification report calls the core result partial.
func TestGRPCOnly(t *testing.T) {
	t.Parallel()
	target, m, err := meshtarget.Start(grpcOnly(), meshauthz.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	rec := &recorder{Driver: m, proto: map[string]map[mp.Protocol]bool{}}
	s := target.Settings.(meshauthz.Settings)
	s.Driver = rec
	target.Settings = s
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := conformance.Run(ctx, meshauthz.Suite, target, conformance.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	skipped := map[string]conformance.Feature{
		"MA21": meshauthz.FeatureProtocolHTTP, "MA23": meshauthz.FeatureProtocolTCP,
		"MX24": meshauthz.FeatureProtocolHTTP, "MX26": meshauthz.FeatureProtocolTCP,
	}
	for _, r := range rep.Results {
		if f, ok := skipped[r.ID]; ok {
			if r.Status != conformance.Skipped || r.Skipped != f || !strings.Contains(r.Message, string(f)) {
				t.Errorf("%s: %s %q (feature %q): want skipped naming %s", r.Title(), r.Status, r.Message, r.Skipped, f)
			}
			continue
		}
		if r.Status != conformance.Passed {
			t.Errorf("%s: %s: %s", r.Title(), r.Status, r.Message)
		}
		if r.ID == "MA22" || r.ID == "MX29" || r.ID == "MX30" {
			continue // the baseline workload; policy API checks make no requests
		}
		got := rec.proto[strings.ToLower(r.ID)]
		if len(got) != 1 || !got[mp.GRPC] {
			t.Errorf("%s made requests over %v, want gRPC only", r.ID, got)
		}
	}
	for ns, ps := range rec.proto {
		if len(ps) != 1 || !ps[mp.GRPC] {
			t.Errorf("requests to namespace %s went over %v", ns, ps)
		}
	}
	c := reports.BuildCertification(rep, impl, meshauthz.Features)
	core := c.Profiles[0].Core
	if core.Result != reports.ResultPartial || !slices.Equal(core.SkippedTests, []string{"MA21", "MA23"}) {
		t.Errorf("core %+v: want partial, MA21 and MA23 skipped", core)
	}
	if un := c.Profiles[0].Extended.UnsupportedFeatures; !slices.Contains(un, string(meshauthz.FeatureProtocolHTTP)) || !slices.Contains(un, string(meshauthz.FeatureProtocolTCP)) {
		t.Errorf("unsupported features %v: want the protocols it does not serve", un)
	}
	// The MA checks' requests went over gRPC: the report says gRPC was exercised.
	if sup := c.Profiles[0].Extended.SupportedFeatures; !slices.Contains(sup, string(meshauthz.FeatureProtocolGRPC)) {
		t.Errorf("supported features %v: want %s (every request went over it)", sup, meshauthz.FeatureProtocolGRPC)
	}
	for _, r := range rep.Results {
		if r.ID == "MA02" && !slices.Contains(r.Features, meshauthz.FeatureProtocolGRPC) {
			t.Errorf("MA02 features %v: want %s exercised", r.Features, meshauthz.FeatureProtocolGRPC)
		}
	}
	t.Logf("gRPC-only run: %d checks in %s", len(rep.Results), rep.Duration)
}

// httpOrTCPOnly are faults that break HTTP or TCP only: a gRPC-only target
// cannot show them.
var httpOrTCPOnly = map[faults.Fault]bool{
	faults.MeshDenyAfterForward: true, faults.MeshHTTPDenyReset: true, faults.MeshTCPDenyData: true,
	faults.MeshDenyIgnoredTCP: true, faults.MeshProbesEnforced: true, faults.MeshStallOnPolicyChange: true,
}

// TestProofsGRPCOnly: the checks that run over gRPC alone still catch every
// fault that is not HTTP- or TCP-specific.
func TestProofsGRPCOnly(t *testing.T) {
	t.Parallel()
	start := meshtarget.StartFuncWith(grpcOnly(), meshauthz.Settings{})
	target := conformance.Target{Features: grpcOnly()}
	for _, c := range meshauthz.Suite.Infos() {
		if slices.ContainsFunc(c.Features, func(f conformance.Feature) bool { return !target.Has(f) }) {
			continue // skipped on a gRPC-only target (TestGRPCOnly)
		}
		for _, f := range c.Faults {
			if httpOrTCPOnly[f] {
				continue
			}
			t.Run(c.ID+"/"+string(f), func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				res, err := conformance.Prove(ctx, meshauthz.Suite, start, faults.Mesh, c.ID, f)
				if err != nil {
					t.Fatal(err)
				}
				if err := conformance.ProofError(res, f); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// pipeTarget serves a reference mesh through meshexec in this process: the
// suite drives it exactly as it drives an out-of-process driver.
func pipeTarget(t *testing.T, declared []conformance.Feature, fs ...faults.Fault) (conformance.Target, *mesh.Mesh) {
	t.Helper()
	o := meshtarget.MeshOptions(declared)
	o.Faults = fs
	m, err := mesh.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	reqR, reqW := io.Pipe()
	ansR, ansW := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		meshexec.Serve(context.Background(), m, reqR, ansW)
		ansW.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := meshexec.NewClient(ctx, ansR, reqW, meshexec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	features, err := meshauthz.TargetFeatures(declared, c)
	if err != nil {
		t.Fatal(err)
	}
	return conformance.Target{Name: c.Name() + " via meshexec", Features: features, Settings: meshauthz.Settings{Driver: c},
		Arm: c.Arm, Close: func() error {
			err := c.Close()
			<-done
			m.Close()
			return err
		}}, m
}

// TestThroughMeshexec: the whole suite through the driver protocol (every
// call, connection handle and rejection crosses it) is green, and a proof
// armed through it still fails its check.
func TestThroughMeshexec(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		declared []conformance.Feature
	}{{"all", meshtarget.Supported()}, {"grpc-only", grpcOnly()}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target, m := pipeTarget(t, tc.declared)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rep, err := conformance.Run(ctx, meshauthz.Suite, target, conformance.RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rep.Results {
				if r.Status != conformance.Passed && r.Status != conformance.Skipped {
					t.Errorf("%s: %s: %s", r.Title(), r.Status, r.Message)
				}
			}
			if n, c := m.Workloads(), m.OpenConns(); n != 0 || c != 0 {
				t.Errorf("after the run the mesh still has %d workloads and %d open connections", n, c)
			}
			if err := target.Close(); err != nil {
				t.Error(err)
			}
			t.Logf("%d checks in %s", len(rep.Results), rep.Duration)
		})
	}
	t.Run("proof", func(t *testing.T) {
		t.Parallel()
		start := func(ctx context.Context, fs ...faults.Fault) (conformance.Target, error) {
			target, _ := pipeTarget(t, meshtarget.Supported(), fs...)
			return target, nil
		}
		for _, p := range []struct {
			id string
			f  faults.Fault
		}{{"MA10", faults.MeshRulesANDed}, {"MX26", faults.MeshStallOnPolicyChange}, {"MX29", faults.MeshNoValidation}} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			res, err := conformance.Prove(ctx, meshauthz.Suite, start, faults.Mesh, p.id, p.f)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if err := conformance.ProofError(res, p.f); err != nil {
				t.Error(err)
			}
		}
	})
}

// servesOnly is a driver serving some protocols.
type servesOnly struct {
	mp.Driver
	ps []mp.Protocol
}

func (s servesOnly) Protocols() []mp.Protocol { return s.ps }
func (s servesOnly) Name() string             { return "test driver" }

// TestTargetFeatures: protocol features follow the driver; named ones
// restrict the run and must be served.
func TestTargetFeatures(t *testing.T) {
	t.Parallel()
	all := servesOnly{ps: []mp.Protocol{mp.TCP, mp.GRPC, mp.HTTP}}
	grpc := servesOnly{ps: []mp.Protocol{mp.GRPC}}
	const (
		deny  = meshauthz.FeatureDeny
		pHTTP = meshauthz.FeatureProtocolHTTP
		pTCP  = meshauthz.FeatureProtocolTCP
		pGRPC = meshauthz.FeatureProtocolGRPC
	)
	tests := []struct {
		name     string
		declared []conformance.Feature
		d        mp.Driver
		want     []conformance.Feature // nil: an error
		errWants string
	}{
		{"nothing declared, all served", nil, all, []conformance.Feature{pHTTP, pGRPC, pTCP}, ""},
		{"extensions kept, gRPC only", []conformance.Feature{deny}, grpc, []conformance.Feature{deny, pGRPC}, ""},
		{"a named protocol restricts", []conformance.Feature{deny, pGRPC}, all, []conformance.Feature{deny, pGRPC}, ""},
		{"duplicates", []conformance.Feature{deny, deny}, grpc, []conformance.Feature{deny, pGRPC}, ""},
		{"unserved protocol named", []conformance.Feature{pTCP}, grpc, nil, "MeshProtocolTCP is declared, but test driver serves only GRPC"},
	}
	for _, tc := range tests {
		got, err := meshauthz.TargetFeatures(tc.declared, tc.d)
		switch {
		case tc.want == nil && (err == nil || !strings.Contains(err.Error(), tc.errWants)):
			t.Errorf("%s: %v, %v: want an error saying %q", tc.name, got, err, tc.errWants)
		case tc.want != nil && (err != nil || !slices.Equal(got, tc.want)):
			t.Errorf("%s: %v, %v: want %v", tc.name, got, err, tc.want)
		}
	}
}

// TestSetupChecksProtocols: a target whose protocol features disagree with
// its driver is a setup error naming the fix.
func TestSetupChecksProtocols(t *testing.T) {
	t.Parallel()
	m, err := mesh.Start(mesh.Options{Protocols: []mp.Protocol{mp.GRPC}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, tc := range []struct {
		features []conformance.Feature
		want     string
	}{
		{nil, "meshauthz.TargetFeatures"},
		{[]conformance.Feature{meshauthz.FeatureProtocolHTTP}, "does not serve HTTP"},
	} {
		target := conformance.Target{Name: "t", Features: tc.features, Settings: meshauthz.Settings{Driver: m}}
		_, err := conformance.Run(context.Background(), meshauthz.Suite, target, conformance.RunOptions{})
		if !errors.Is(err, conformance.ErrSetup) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("features %v: %v: want a setup error saying %q", tc.features, err, tc.want)
		}
	}
}
