// Package meshauthz is Gauntlet's mesh authorization suite
// (docs: /work/shared/checks/meshauthz.md, MA and MX): GEP-3779 east-west
// authorization (identity- and port-based ALLOW policies) and the vendor
// extensions implementations declare as features. The checks speak to a
// mesh only through meshpolicy.Driver, which the CLI (or a test) puts into
// Target.Settings: the embedded reference mesh, or a Kubernetes driver.
package meshauthz

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// Features (Gateway API style names, after GEP-3779's planned
// AuthorizationPolicy* feature names; the GEP has not fixed them yet).
// Core checks (MA) run on every target; a core check that needs a feature
// (MA09) is skipped, making the core result partial, where it is missing.
const (
	// FeatureSPIFFE: SPIFFE-URI sources match the client's SVID (MA09).
	FeatureSPIFFE conformance.Feature = "AuthorizationPolicySPIFFE"
	// FeatureHTTP403: denied HTTP requests get exactly 403 (MX24).
	FeatureHTTP403 conformance.Feature = "AuthorizationPolicyHTTP403"
	// FeatureGRPC: denied gRPC calls get PERMISSION_DENIED (MX25).
	FeatureGRPC conformance.Feature = "AuthorizationPolicyGRPC"
	// FeatureDeny: action DENY, which beats ALLOW (MX27).
	FeatureDeny conformance.Feature = "AuthorizationPolicyDeny"
	// FeatureClusterScope: cluster (admin) policies, ALLOW and DENY: a
	// cluster DENY is final, a cluster ALLOW a default that a namespace
	// DENY may override (that half also needs FeatureDeny) (MX28).
	FeatureClusterScope conformance.Feature = "AuthorizationPolicyClusterScope"
	// FeatureAPI: the policy API rejects invalid policies (MX29). Needs an
	// API with admission: the reference mesh's, or a Kubernetes API server.
	FeatureAPI conformance.Feature = "AuthorizationPolicyAPIValidation"
	// FeatureStatus: policies report an Accepted condition (MX30).
	FeatureStatus conformance.Feature = "AuthorizationPolicyStatus"
)

// Protocol features: the protocols the target serves. They are not
// declared by hand but derived from the driver (meshpolicy.Served; see
// TargetFeatures): naming some in --features restricts the run to those.
// Checks that only need "a request" use the target's primary protocol
// (HTTP if served, else gRPC, else TCP) and its port in the policies they
// write, and expectations "over every protocol" cover the served ones;
// checks that inherently need one protocol (MA21 and MX24 HTTP, MA23 and
// MX26 TCP, MX25 gRPC) require its feature and are skipped, naming it,
// where it is not served (a skipped core check makes the core partial).
const (
	FeatureProtocolHTTP conformance.Feature = "MeshProtocolHTTP"
	FeatureProtocolTCP  conformance.Feature = "MeshProtocolTCP"
	FeatureProtocolGRPC conformance.Feature = "MeshProtocolGRPC"
)

// ProtocolFeature is the feature saying the target serves p.
func ProtocolFeature(p mp.Protocol) conformance.Feature {
	return conformance.Feature("MeshProtocol" + string(p))
}

// featureProtocol is the protocol of a protocol feature.
func featureProtocol(f conformance.Feature) (mp.Protocol, bool) {
	for _, p := range mp.AllProtocols {
		if ProtocolFeature(p) == f {
			return p, true
		}
	}
	return "", false
}

// TargetFeatures completes a target's declared features with the protocol
// features of what its driver serves: every served protocol when declared
// names none, else the named ones, which the driver must serve. Every
// builder of a meshauthz target (CLI, tests, other drivers' tools) passes
// its features through it; Setup rejects a target whose protocol features
// disagree with its driver.
func TargetFeatures(declared []conformance.Feature, d mp.Driver) ([]conformance.Feature, error) {
	served := map[mp.Protocol]bool{}
	var names []string
	for _, p := range mp.Served(d) {
		served[p] = true
		names = append(names, string(p))
	}
	var out []conformance.Feature
	named := false
	for _, f := range declared {
		if p, ok := featureProtocol(f); ok {
			if !served[p] {
				return nil, fmt.Errorf("%s is declared, but %s serves only %s", f, d.Name(), strings.Join(names, ", "))
			}
			named = true
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if !named {
		for _, p := range mp.Served(d) {
			out = append(out, ProtocolFeature(p))
		}
	}
	return out, nil
}

// targetProtocols are the protocols the run uses: those the target
// declares, in preference order (the first is the primary one).
func targetProtocols(t conformance.Target, d mp.Driver) ([]mp.Protocol, error) {
	served := mp.Served(d)
	var out []mp.Protocol
	for _, p := range mp.AllProtocols {
		if !t.Has(ProtocolFeature(p)) {
			continue
		}
		if !slices.Contains(served, p) {
			return nil, fmt.Errorf("meshauthz: the target declares %s but its driver %s does not serve %s", ProtocolFeature(p), d.Name(), p)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("meshauthz: the target declares no MeshProtocol* feature: build its features with meshauthz.TargetFeatures (its driver serves %v)", served)
	}
	return out, nil
}

// Features lists the suite's optional features.
var Features = []conformance.FeatureInfo{
	{Name: FeatureSPIFFE, Doc: "SPIFFE URI sources (spiffe://<td>/ns/<ns>/sa/<sa>)"},
	{Name: FeatureHTTP403, Doc: "denied HTTP requests are answered with 403"},
	{Name: FeatureGRPC, Doc: "denied gRPC calls end with PERMISSION_DENIED"},
	{Name: FeatureDeny, Doc: "DENY policies, evaluated before ALLOW"},
	{Name: FeatureClusterScope, Doc: "cluster-scope (admin) policies"},
	{Name: FeatureAPI, Doc: "the policy API validates policies (admission)"},
	{Name: FeatureStatus, Doc: "policies report an Accepted status condition"},
	{Name: FeatureProtocolHTTP, Doc: "serving HTTP (derived from the protocols the driver serves)"},
	{Name: FeatureProtocolTCP, Doc: "serving plain TCP (derived from the protocols the driver serves)"},
	{Name: FeatureProtocolGRPC, Doc: "serving gRPC (derived from the protocols the driver serves)"},
}

// Settings is the meshauthz Target.Settings.
type Settings struct {
	// Driver is the mesh under test.
	Driver mp.Driver
	// BaselineHook is a shell command run (sh -c) after the fixtures are
	// deployed and before any check, for default-deny installs: it must
	// make the fixture namespaces reachable (e.g. install an allow-all
	// baseline). It gets GAUNTLET_MESH_NAMESPACES (space-separated) and
	// GAUNTLET_MESH_TRUST_DOMAIN.
	BaselineHook string
	// HookTimeout bounds the hook (default 2 min).
	HookTimeout time.Duration
	// NamespacePrefix is prepended to every fixture namespace.
	NamespacePrefix string
	// RequestTimeout bounds one request (default 3 s); a dropped request
	// is a timeout.
	RequestTimeout time.Duration
}

// Env is what the checks receive.
type Env struct {
	Target conformance.Target
	D      mp.Driver
	S      Settings
	// Bound is the target's convergence bound.
	Bound time.Duration
	TD    string
	// Protocols are the protocols the run uses (the target's protocol
	// features); Primary, the first, carries checks that need "a request".
	Protocols []mp.Protocol
	Primary   mp.Protocol

	mu      sync.Mutex
	seq     int
	hookOut string
}

// DefaultConvergenceBound is used when a driver reports none (GEP-3779
// conformance allows 30 s).
const DefaultConvergenceBound = 30 * time.Second

// Suite is the meshauthz suite.
var Suite = &conformance.Suite[*Env]{
	Name: "meshauthz",
	Categories: map[string]string{
		"MA": "GEP-3779 core",
		"MX": "vendor extensions",
	},
	Features: Features,
	Setup: func(ctx context.Context, t conformance.Target) (*Env, error) {
		s, ok := t.Settings.(Settings)
		if !ok {
			return nil, fmt.Errorf("meshauthz: target settings are %T, want meshauthz.Settings", t.Settings)
		}
		if s.Driver == nil {
			return nil, errors.New("meshauthz: no mesh driver in the target settings")
		}
		if s.RequestTimeout <= 0 {
			s.RequestTimeout = 3 * time.Second
		}
		if s.HookTimeout <= 0 {
			s.HookTimeout = 2 * time.Minute
		}
		protos, err := targetProtocols(t, s.Driver)
		if err != nil {
			return nil, err
		}
		e := &Env{Target: t, D: s.Driver, S: s, Bound: s.Driver.ConvergenceBound(), TD: s.Driver.TrustDomain(),
			Protocols: protos, Primary: protos[0]}
		if e.Bound <= 0 {
			e.Bound = DefaultConvergenceBound
		}
		return e, nil
	},
	Prepare:  prepare,
	Teardown: func(ctx context.Context, e *Env) error { return e.D.Cleanup(ctx) },
}

// ns is a fixture namespace.
func (e *Env) ns(base string) string { return e.S.NamespacePrefix + base }

// wl names a fixture workload.
func (e *Env) wl(ns, name string) mp.WorkloadRef {
	return mp.WorkloadRef{Namespace: e.ns(ns), Name: name}
}

// id is a client identity (service account sa in fixture namespace ns).
func (e *Env) id(ns, sa string) mp.Identity {
	return mp.Identity{Namespace: e.ns(ns), ServiceAccount: sa}
}

// noID is the client outside the mesh.
var noID = mp.Identity{}

func (e *Env) nonce() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	return fmt.Sprintf("g%d-%d", time.Now().UnixNano()%1e9, e.seq)
}

// fixture is what a check needs deployed before it runs (Prepare deploys
// every check's fixture, so that a proof's fault meets the check, not the
// deployment).
type fixture struct {
	servers []server
	clients []client
}

type server struct {
	ns, name string
	labels   map[string]string
}

type client struct{ ns, sa string }

// Shared clients: every check may use them.
var sharedClients = []client{{"cli", "allowed"}, {"cli", "denied"}, {"other", "allowed"}, {"other", "denied"}}

// baseline is the precheck's server, which no check's policy targets.
var baseline = server{ns: "baseline", name: "echo"}

var fixtures = map[string]fixture{}

// CheckTimeout is every check's deadline: a few convergence bounds of a
// real mesh (30 s each), not the conformance default.
const CheckTimeout = 3 * time.Minute

// register adds a check and its fixture.
func register(f fixture, c conformance.Check[*Env]) bool {
	fixtures[c.ID] = f
	if c.Timeout == 0 {
		c.Timeout = CheckTimeout
	}
	return Suite.Register(c)
}

// workload builds a fixture server's spec: labels app=<name> and
// gauntlet.dev/check=<id>, which cluster-scope policies select on.
func (e *Env) workload(check string, s server) mp.Workload {
	labels := map[string]string{"app": s.name, "gauntlet.dev/check": strings.ToLower(check)}
	for k, v := range s.labels {
		labels[k] = v
	}
	var ports []mp.Port
	for _, p := range mp.StandardPorts() {
		if slices.Contains(e.Protocols, p.Protocol) {
			ports = append(ports, p)
		}
	}
	return mp.Workload{Namespace: e.ns(s.ns), Name: s.name, ServiceAccount: s.name, Labels: labels, Ports: ports}
}

func (e *Env) allWorkloads() []mp.Workload {
	ids := make([]string, 0, len(fixtures))
	for id := range fixtures {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return conformance.LessID(ids[i], ids[j]) })
	out := []mp.Workload{e.workload("baseline", baseline)}
	for _, id := range ids {
		for _, s := range fixtures[id].servers {
			out = append(out, e.workload(id, s))
		}
	}
	return out
}

func (e *Env) allClients() []mp.Identity {
	seen := map[mp.Identity]bool{}
	var out []mp.Identity
	add := func(c client) {
		id := e.id(c.ns, c.sa)
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, c := range sharedClients {
		add(c)
	}
	for _, f := range fixtures {
		for _, c := range f.clients {
			add(c)
		}
	}
	return append(out, noID)
}

func (e *Env) namespaces() []string {
	seen := map[string]bool{}
	var out []string
	for _, w := range e.allWorkloads() {
		if !seen[w.Namespace] {
			seen[w.Namespace] = true
			out = append(out, w.Namespace)
		}
	}
	for _, c := range e.allClients() {
		if !c.None() && !seen[c.Namespace] {
			seen[c.Namespace] = true
			out = append(out, c.Namespace)
		}
	}
	sort.Strings(out)
	return out
}

// prepare deploys every fixture, runs the baseline hook, and prechecks that
// the mesh lets traffic through when no policy exists, failing fast (one
// message for every check) on a default-deny install without a baseline.
func prepare(ctx context.Context, e *Env) error {
	var jobs []func() error
	for _, c := range e.allClients() {
		jobs = append(jobs, func() error { return e.D.DeployClient(ctx, c) })
	}
	for _, w := range e.allWorkloads() {
		jobs = append(jobs, func() error { return e.D.Deploy(ctx, w) })
	}
	if err := parallel(8, jobs); err != nil {
		return fmt.Errorf("deploy fixtures: %w", err)
	}
	if e.S.BaselineHook != "" {
		out, err := e.runHook(ctx)
		e.mu.Lock()
		e.hookOut = out
		e.mu.Unlock()
		if err != nil {
			return fmt.Errorf("--baseline-hook %q: %v: %s", e.S.BaselineHook, err, conformance.FirstLine(out, 200))
		}
	}
	// Precheck on the baseline workload only (every shared client and
	// protocol): it tells a default-deny install from a working one, and
	// the first failure ends it (fail fast: one convergence bound). A
	// single unreachable check workload fails its own check, not the run.
	var err error
	for _, x := range e.baselineExpectations() {
		if _, err = e.observe(ctx, x); err != nil {
			break
		}
	}
	if err != nil {
		hint := "pass --baseline-hook CMD that makes the fixture namespaces reachable (a default-deny install needs an allow baseline)"
		if e.S.BaselineHook != "" {
			hint = fmt.Sprintf("the --baseline-hook %q ran but did not make them reachable", e.S.BaselineHook)
		}
		return fmt.Errorf("precheck (MA22): with no policy of the suite applied, fixture traffic is not allowed: %s; %v", hint, err)
	}
	return nil
}

func (e *Env) baselineExpectations() []expectation {
	var xs []expectation
	to := e.wl(baseline.ns, baseline.name)
	for _, c := range sharedClients {
		xs = append(xs, e.all(e.id(c.ns, c.sa), to, allowed)...)
	}
	return xs
}

func (e *Env) runHook(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.S.HookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", e.S.BaselineHook)
	cmd.Env = append(os.Environ(),
		"GAUNTLET_MESH_NAMESPACES="+strings.Join(e.namespaces(), " "),
		"GAUNTLET_MESH_TRUST_DOMAIN="+e.TD)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("did not finish within %s", e.S.HookTimeout)
	}
	return string(out), err
}

// parallel runs jobs with at most n at once and joins their errors.
func parallel(n int, jobs []func() error) error {
	sem := make(chan struct{}, n)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := j(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
