package mesh

import (
	"context"
	"runtime"
	"testing"
	"time"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

func server(ns, name string) mp.Workload {
	return mp.Workload{Namespace: ns, Name: name, ServiceAccount: name, Labels: map[string]string{"app": name}, Ports: mp.StandardPorts()}
}

// TestCloseLeavesNothing: after traffic of every kind and an open
// connection, Close stops every goroutine the mesh started.
func TestCloseLeavesNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	m, err := Start(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli := mp.Identity{Namespace: "cli", ServiceAccount: "a"}
	if err := m.Deploy(ctx, server("ns", "s")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []mp.Identity{cli, {}} {
		for _, p := range []mp.Protocol{mp.HTTP, mp.TCP, mp.GRPC} {
			o, err := m.Do(ctx, mp.Request{From: id, To: mp.WorkloadRef{Namespace: "ns", Name: "s"}, Protocol: p, Port: mp.PortFor(p), Nonce: "n-" + string(p)})
			if err != nil || !o.ServerSaw {
				t.Fatalf("%s from %s: %v %s", p, id, err, o)
			}
		}
	}
	c, err := m.Open(ctx, mp.Request{From: cli, To: mp.WorkloadRef{Namespace: "ns", Name: "s"}, Protocol: mp.TCP, Port: mp.TCPPort})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Echo(ctx, "x"); err != nil || got != "echo x" {
		t.Fatalf("echo: %q %v", got, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestValidate: the reference API's admission follows the install's
// extensions.
func TestValidate(t *testing.T) {
	t.Parallel()
	target := []mp.TargetRef{mp.PodSelector(map[string]string{"app": "s"})}
	ok := mp.Policy{Name: "p", Namespace: "ns", TargetRefs: target, Action: mp.Allow, EnforcementLevel: mp.Network}
	with := func(f func(p *mp.Policy)) mp.Policy { p := ok; f(&p); return p }
	tests := []struct {
		name      string
		coreOnly  bool
		p         mp.Policy
		wantError bool
	}{
		{"valid allow", false, ok, false},
		{"namespace deny with the extension", false, with(func(p *mp.Policy) { p.Action = mp.Deny }), false},
		{"namespace deny on core-only", true, with(func(p *mp.Policy) { p.Action = mp.Deny }), true},
		{"cluster policy on core-only", true, with(func(p *mp.Policy) { p.Scope, p.Namespace = mp.ClusterScope, "" }), true},
		{"cluster deny with cluster scope", false, with(func(p *mp.Policy) { p.Scope, p.Namespace, p.Action = mp.ClusterScope, "", mp.Deny }), false},
		{"no targets", false, with(func(p *mp.Policy) { p.TargetRefs = nil }), true},
		{"pod ref with a name", false, with(func(p *mp.Policy) { p.TargetRefs = []mp.TargetRef{{Kind: "Pod", Name: "x", Selector: &mp.Selector{}}} }), true},
		{"service ref by name", false, with(func(p *mp.Policy) { p.TargetRefs = []mp.TargetRef{{Kind: "Service", Name: "s"}} }), false},
		{"bad port", false, with(func(p *mp.Policy) { p.Rules = []mp.Rule{{Ports: []int{70000}}} }), true},
		{"spiffe ok", false, with(func(p *mp.Policy) { p.Rules = []mp.Rule{{Sources: []mp.Source{mp.SPIFFE("spiffe://td/ns/a/sa/b")}}} }), false},
		{"sa without name", false, with(func(p *mp.Policy) { p.Rules = []mp.Rule{{Sources: []mp.Source{mp.SA("a", "")}}} }), true},
	}
	full, err := Start(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	o := DefaultOptions()
	o.Deny, o.ClusterScope = false, false
	core, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	defer core.Close()
	for _, tc := range tests {
		m := full
		if tc.coreOnly {
			m = core
		}
		err := m.validate(tc.p)
		if _, rejected := mp.IsRejected(err); rejected != tc.wantError || (err != nil && !rejected) {
			t.Errorf("%s: %v, want rejection %v", tc.name, err, tc.wantError)
		}
	}
}
