package meshauthz

import (
	"context"
	"fmt"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// MA: GEP-3779 core. Each check has its own server namespace (named after
// its ID) so the checks can run in parallel; clients are the shared
// cli/{allowed,denied}, other/{allowed,denied} and the no-identity client.

func srv(ns string, names ...string) []server {
	out := make([]server, len(names))
	for i, n := range names {
		out[i] = server{ns: ns, name: n}
	}
	return out
}

func cat(xss ...[]expectation) []expectation {
	var out []expectation
	for _, xs := range xss {
		out = append(out, xs...)
	}
	return out
}

// allowOnly applies "ALLOW src" to app=server of namespace ns (the
// checks then observe until it is enforced).
func (e *Env) allowOnly(ctx context.Context, ps *policies, ns string, src mp.Source) error {
	return ps.apply(ctx, e.policy(ns, "allow-one", mp.Allow, app("server"), from(src)))
}

var _ = register(fixture{servers: srv("ma01", "server")}, conformance.Check[*Env]{
	ID: "MA01", Name: "with no policy every client reaches the server",
	Faults: []faults.Fault{faults.MeshDefaultDeny},
	Cases:  []string{"cli-allowed", "cli-denied", "other-allowed", "no-identity"},
	Run: func(ctx context.Context, e *Env) error {
		to := e.wl("ma01", "server")
		for _, c := range []struct {
			name string
			id   mp.Identity
		}{{"cli-allowed", e.id("cli", "allowed")}, {"cli-denied", e.id("cli", "denied")},
			{"other-allowed", e.id("other", "allowed")}, {"no-identity", noID}} {
			conformance.Case(ctx, c.name, func(ctx context.Context) error { return e.check(ctx, e.all(c.id, to, allowed)...) })
		}
		return nil
	},
})

var _ = register(fixture{servers: srv("ma02", "server")}, conformance.Check[*Env]{
	ID: "MA02", Name: "ALLOW for service account cli/allowed admits it and denies cli/denied",
	Faults: []faults.Fault{faults.MeshAllowIgnored, faults.MeshDenyAfterForward},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := e.allowOnly(ctx, ps, "ma02", e.sa("cli", "allowed")); err != nil {
			return err
		}
		to := e.wl("ma02", "server")
		return e.check(ctx, cat(e.all(e.id("cli", "allowed"), to, allowed), e.all(e.id("cli", "denied"), to, denied))...)
	},
})

var _ = register(fixture{servers: srv("ma03", "server", "open")}, conformance.Check[*Env]{
	ID: "MA03", Name: "a workload no policy targets stays open beside a targeted one",
	Faults: []faults.Fault{faults.MeshSelectorIgnored},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := e.allowOnly(ctx, ps, "ma03", e.sa("cli", "allowed")); err != nil {
			return err
		}
		d := e.id("cli", "denied")
		return e.check(ctx, cat(e.all(d, e.wl("ma03", "server"), denied), e.all(d, e.wl("ma03", "open"), allowed))...)
	},
})

var _ = register(fixture{servers: append(srv("ma04", "a", "b"), server{ns: "ma04-other", name: "a"})}, conformance.Check[*Env]{
	ID: "MA04", Name: "targetRefs kind Pod with an empty selector enforces every pod of the namespace and no other",
	Faults: []faults.Fault{faults.MeshEmptySelectorNone, faults.MeshNamespaceIgnored},
	Cases:  []string{"every-pod", "no-other-namespace"},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := ps.apply(ctx, e.policy("ma04", "all-pods", mp.Allow, mp.PodSelector(nil), from(e.sa("cli", "allowed")))); err != nil {
			return err
		}
		d, a := e.id("cli", "denied"), e.id("cli", "allowed")
		conformance.Case(ctx, "every-pod", func(ctx context.Context) error {
			return e.check(ctx, cat(e.all(d, e.wl("ma04", "a"), denied), e.all(d, e.wl("ma04", "b"), denied),
				[]expectation{e.one(a, e.wl("ma04", "a"), allowed), e.one(a, e.wl("ma04", "b"), allowed)})...)
		})
		conformance.Case(ctx, "no-other-namespace", func(ctx context.Context) error {
			return e.check(ctx, e.all(d, e.wl("ma04-other", "a"), allowed)...)
		})
		return nil
	},
})

var _ = register(fixture{servers: append(srv("ma05", "server"), server{ns: "ma05-b", name: "server"})}, conformance.Check[*Env]{
	ID: "MA05", Name: "a policy only affects workloads in its own namespace",
	Faults: []faults.Fault{faults.MeshNamespaceIgnored},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := e.allowOnly(ctx, ps, "ma05", e.sa("cli", "allowed")); err != nil {
			return err
		}
		d := e.id("cli", "denied")
		return e.check(ctx, cat(e.all(d, e.wl("ma05", "server"), denied), e.all(d, e.wl("ma05-b", "server"), allowed))...)
	},
})

var _ = register(fixture{servers: srv("ma06", "server"), clients: []client{{"ma06", "allowed"}}}, conformance.Check[*Env]{
	ID: "MA06", Name: "a serviceAccount source without namespace means the policy's namespace",
	Faults: []faults.Fault{faults.MeshSANamespaceDefault, faults.MeshIdentityNameOnly},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := e.allowOnly(ctx, ps, "ma06", e.sa("", "allowed")); err != nil {
			return err
		}
		to := e.wl("ma06", "server")
		return e.check(ctx, cat(e.all(e.id("ma06", "allowed"), to, allowed), e.all(e.id("cli", "allowed"), to, denied))...)
	},
})

var _ = register(fixture{servers: srv("ma07", "server")}, conformance.Check[*Env]{
	ID: "MA07", Name: "serviceAccount name \"*\" allows every service account of that namespace and none of another",
	Faults: []faults.Fault{faults.MeshWildcardAnyNamespace},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := e.allowOnly(ctx, ps, "ma07", e.sa("cli", "*")); err != nil {
			return err
		}
		to := e.wl("ma07", "server")
		return e.check(ctx, cat(e.all(e.id("cli", "allowed"), to, allowed), e.all(e.id("cli", "denied"), to, allowed),
			e.all(e.id("other", "allowed"), to, denied))...)
	},
})

var _ = register(fixture{servers: srv("ma08", "server")}, conformance.Check[*Env]{
	ID: "MA08", Name: "identity is namespace and name: other/allowed is denied when cli/allowed is allowed",
	Faults: []faults.Fault{faults.MeshIdentityNameOnly},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := e.allowOnly(ctx, ps, "ma08", e.sa("cli", "allowed")); err != nil {
			return err
		}
		to := e.wl("ma08", "server")
		return e.check(ctx, cat(e.all(e.id("cli", "allowed"), to, allowed), e.all(e.id("other", "allowed"), to, denied))...)
	},
})

var _ = register(fixture{servers: srv("ma09", "server")}, conformance.Check[*Env]{
	ID: "MA09", Name: "a SPIFFE source spiffe://<td>/ns/cli/sa/allowed admits that client only",
	Features: []conformance.Feature{FeatureSPIFFE},
	Faults:   []faults.Fault{faults.MeshSPIFFENeverMatches},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		uri := e.id("cli", "allowed").SPIFFEID(e.TD)
		conformance.Note(ctx, "source", uri)
		if err := e.allowOnly(ctx, ps, "ma09", mp.SPIFFE(uri)); err != nil {
			return err
		}
		to := e.wl("ma09", "server")
		return e.check(ctx, cat(e.all(e.id("cli", "allowed"), to, allowed), e.all(e.id("cli", "denied"), to, denied))...)
	},
})

var _ = register(fixture{servers: srv("ma10", "server")}, conformance.Check[*Env]{
	ID: "MA10", Name: "rules are ORed",
	Faults: []faults.Fault{faults.MeshRulesANDed},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := ps.apply(ctx, e.policy("ma10", "two-rules", mp.Allow, app("server"),
			from(e.sa("cli", "allowed")), from(e.sa("other", "allowed")))); err != nil {
			return err
		}
		to := e.wl("ma10", "server")
		return e.check(ctx, cat(e.all(e.id("cli", "allowed"), to, allowed), e.all(e.id("other", "allowed"), to, allowed),
			e.all(e.id("cli", "denied"), to, denied))...)
	},
})

// unservedPort is a port no fixture workload listens on (MA11's rule that
// matches the source but not the port).
const unservedPort = 6060

var _ = register(fixture{servers: srv("ma11", "server", "other-port")}, conformance.Check[*Env]{
	ID: "MA11", Name: "the criteria within a rule are ANDed (source and port)",
	Faults: []faults.Fault{faults.MeshRuleCriteriaORed},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		// server: source cli/allowed AND the primary protocol's port;
		// other-port: source cli/allowed AND a port it does not serve.
		r := from(e.sa("cli", "allowed"))
		r.Ports = []int{mp.PortFor(e.Primary)}
		if err := ps.apply(ctx, e.policy("ma11", "source-and-port", mp.Allow, app("server"), r)); err != nil {
			return err
		}
		r = from(e.sa("cli", "allowed"))
		r.Ports = []int{unservedPort}
		if err := ps.apply(ctx, e.policy("ma11", "source-and-other-port", mp.Allow, app("other-port"), r)); err != nil {
			return err
		}
		to, a, d := e.wl("ma11", "server"), e.id("cli", "allowed"), e.id("cli", "denied")
		xs := []expectation{e.one(a, to, allowed)}
		for _, p := range e.Protocols[1:] { // the source matches, the port does not
			xs = append(xs, e.x(a, to, p, denied))
		}
		xs = append(xs, e.one(d, to, denied), e.one(a, e.wl("ma11", "other-port"), denied))
		return e.check(ctx, xs...)
	},
})

var _ = register(fixture{servers: srv("ma12", "empty", "omitted")}, conformance.Check[*Env]{
	ID: "MA12", Name: "sources: [] matches nothing; omitted sources match everything",
	Faults: []faults.Fault{faults.MeshEmptySourcesMatchAll},
	Cases:  []string{"empty-list", "omitted"},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := ps.apply(ctx, e.policy("ma12", "empty-sources", mp.Allow, app("empty"), mp.Rule{Sources: []mp.Source{}})); err != nil {
			return err
		}
		if err := ps.apply(ctx, e.policy("ma12", "omitted-sources", mp.Allow, app("omitted"), mp.Rule{})); err != nil {
			return err
		}
		conformance.Case(ctx, "empty-list", func(ctx context.Context) error {
			to := e.wl("ma12", "empty")
			return e.check(ctx, cat(e.all(e.id("cli", "allowed"), to, denied), e.all(e.id("other", "denied"), to, denied))...)
		})
		conformance.Case(ctx, "omitted", func(ctx context.Context) error {
			to := e.wl("ma12", "omitted")
			return e.check(ctx, cat(e.all(e.id("cli", "allowed"), to, allowed), e.all(e.id("other", "denied"), to, allowed))...)
		})
		return nil
	},
})

var _ = register(fixture{servers: srv("ma13", "server")}, conformance.Check[*Env]{
	ID: "MA13", Name: "an ALLOW policy with no rules denies every request to its targets",
	Faults: []faults.Fault{faults.MeshNoRulesAllowAll},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := ps.apply(ctx, e.policy("ma13", "allow-nothing", mp.Allow, app("server"))); err != nil {
			return err
		}
		to := e.wl("ma13", "server")
		return e.check(ctx, cat(e.all(e.id("cli", "allowed"), to, denied), e.all(e.id("other", "allowed"), to, denied))...)
	},
})

var _ = register(fixture{servers: srv("ma14", "server")}, conformance.Check[*Env]{
	ID: "MA14", Name: "ports are destination container ports: a rule on the container port (8080) applies when reached via the Service port (80)",
	Faults: []faults.Fault{faults.MeshServicePortMatching},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		r := from(e.sa("cli", "allowed"))
		r.Ports = []int{mp.PortFor(e.Primary)}
		if err := ps.apply(ctx, e.policy("ma14", "container-port", mp.Allow, app("server"), r)); err != nil {
			return err
		}
		to := e.wl("ma14", "server")
		viaSvc := func(id mp.Identity, w want) expectation {
			return expectation{from: id, to: to, proto: e.Primary, port: mp.ServicePortFor(e.Primary), via: true, want: w}
		}
		return e.check(ctx, viaSvc(e.id("cli", "allowed"), allowed), e.one(e.id("cli", "allowed"), to, allowed),
			viaSvc(e.id("cli", "denied"), denied))
	},
})

var _ = register(fixture{servers: srv("ma15", "server")}, conformance.Check[*Env]{
	ID: "MA15", Name: "two ALLOW policies on one workload allow the union",
	Faults: []faults.Fault{faults.MeshFirstAllowOnly},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := ps.apply(ctx, e.policy("ma15", "allow-cli", mp.Allow, app("server"), from(e.sa("cli", "allowed")))); err != nil {
			return err
		}
		if err := ps.apply(ctx, e.policy("ma15", "allow-other", mp.Allow, app("server"), from(e.sa("other", "allowed")))); err != nil {
			return err
		}
		to := e.wl("ma15", "server")
		return e.check(ctx, cat(e.all(e.id("cli", "allowed"), to, allowed), e.all(e.id("other", "allowed"), to, allowed),
			e.all(e.id("cli", "denied"), to, denied))...)
	},
})

var _ = register(fixture{servers: srv("ma16", "server")}, conformance.Check[*Env]{
	ID: "MA16", Name: "deleting every policy returns to allow-all within the convergence bound",
	Faults: []faults.Fault{faults.MeshDeleteIgnored},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		p := e.policy("ma16", "allow-one", mp.Allow, app("server"), from(e.sa("cli", "allowed")))
		if err := ps.apply(ctx, p); err != nil {
			return err
		}
		to, d := e.wl("ma16", "server"), e.id("cli", "denied")
		if err := e.check(ctx, e.all(d, to, denied)...); err != nil {
			return err
		}
		start := time.Now()
		if err := ps.remove(ctx, p.Ref()); err != nil {
			return err
		}
		if err := e.check(ctx, e.all(d, to, allowed)...); err != nil {
			return err
		}
		conformance.Note(ctx, "converged-within", time.Since(start).Round(time.Millisecond).String())
		return nil
	},
})

var _ = register(fixture{servers: srv("ma17", "server")}, conformance.Check[*Env]{
	ID: "MA17", Name: "editing a policy converges within the bound (3 consecutive observations)",
	Faults: []faults.Fault{faults.MeshEditFlaps},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		to, a, o := e.wl("ma17", "server"), e.id("cli", "allowed"), e.id("other", "allowed")
		if err := ps.apply(ctx, e.policy("ma17", "edited", mp.Allow, app("server"), from(e.sa("cli", "allowed")))); err != nil {
			return err
		}
		if err := e.check(ctx, e.one(a, to, allowed), e.one(o, to, denied)); err != nil {
			return err
		}
		start := time.Now()
		if err := ps.apply(ctx, e.policy("ma17", "edited", mp.Allow, app("server"), from(e.sa("other", "allowed")))); err != nil {
			return err
		}
		if err := e.check(ctx, cat(e.all(o, to, allowed), e.all(a, to, denied))...); err != nil {
			return err
		}
		conformance.Note(ctx, "converged-within", time.Since(start).Round(time.Millisecond).String())
		return nil
	},
})

var _ = register(fixture{servers: srv("ma18", "server")}, conformance.Check[*Env]{
	ID: "MA18", Name: "relabeling the server out of the selector stops enforcement",
	Faults: []faults.Fault{faults.MeshLabelsCached},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := e.allowOnly(ctx, ps, "ma18", e.sa("cli", "allowed")); err != nil {
			return err
		}
		to, d := e.wl("ma18", "server"), e.id("cli", "denied")
		if err := e.check(ctx, e.all(d, to, denied)...); err != nil {
			return err
		}
		if err := e.D.Relabel(ctx, to, map[string]string{"app": "moved", "gauntlet.dev/check": "ma18"}); err != nil {
			return conformance.Setupf("relabel %s: %v", to, err)
		}
		return e.check(ctx, e.all(d, to, allowed)...)
	},
})

var _ = register(fixture{servers: srv("ma19", "server")}, conformance.Check[*Env]{
	ID: "MA19", Name: "a client without mesh identity is denied when an ALLOW policy exists",
	Faults: []faults.Fault{faults.MeshPlaintextAllowed},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := e.allowOnly(ctx, ps, "ma19", e.sa("cli", "allowed")); err != nil {
			return err
		}
		// A STRICT-mTLS mesh refuses plaintext everywhere, which makes this
		// check pass without a policy's help: record which mesh this is.
		r, o, err := e.do(ctx, e.one(noID, e.wl(baseline.ns, baseline.name), allowed))
		if err != nil {
			return err
		}
		got, _ := judge(r, o)
		conformance.Note(ctx, "no-identity-without-policy", got.String())
		to := e.wl("ma19", "server")
		return e.check(ctx, cat(e.all(e.id("cli", "allowed"), to, allowed), e.all(noID, to, denied))...)
	},
})

var _ = register(fixture{servers: srv("ma20", "server")}, conformance.Check[*Env]{
	ID: "MA20", Name: "a denied request never reaches the application",
	Faults: []faults.Fault{faults.MeshDenyAfterForward},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := e.allowOnly(ctx, ps, "ma20", e.sa("cli", "allowed")); err != nil {
			return err
		}
		to, d := e.wl("ma20", "server"), e.id("cli", "denied")
		if err := e.check(ctx, e.all(d, to, denied)...); err != nil {
			return err
		}
		// Converged: now every denied request, whatever the client saw,
		// must be absent from the application's log.
		var leaked []string
		n := 0
		for _, x := range e.all(d, to, denied) {
			for i := 0; i < 5; i++ {
				r, o, err := e.do(ctx, x)
				if err != nil {
					return err
				}
				n++
				if o.ServerSaw {
					leaked = append(leaked, fmt.Sprintf("%s nonce %s (client saw: %s)", x, r.Nonce, o))
				}
			}
		}
		if len(leaked) > 0 {
			return conformance.Failf("the application saw %d of %d denied requests: %s", len(leaked), n, leaked[0])
		}
		return nil
	},
})

var _ = register(fixture{servers: srv("ma21", "server")}, conformance.Check[*Env]{
	ID: "MA21", Name: "health probes keep working under a namespace-wide ALLOW",
	Features: []conformance.Feature{FeatureProtocolHTTP}, // the kubelet's probe is HTTP
	Faults:   []faults.Fault{faults.MeshProbesEnforced},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := ps.apply(ctx, e.policy("ma21", "namespace-wide", mp.Allow, mp.PodSelector(nil), from(e.sa("cli", "allowed")))); err != nil {
			return err
		}
		to := e.wl("ma21", "server")
		if err := e.check(ctx, e.x(e.id("cli", "denied"), to, mp.HTTP, denied)); err != nil {
			return err
		}
		deadline := time.Now().Add(e.Bound)
		streak := 0
		for {
			o, err := e.D.Probe(ctx, to)
			if err != nil {
				return conformance.Setupf("probe %s: %v", to, err)
			}
			if o.HTTPStatus == 200 && o.ServerSaw {
				if streak++; streak == 3 {
					return nil
				}
				continue
			}
			streak = 0
			if time.Now().After(deadline) {
				return conformance.Failf("the kubelet's probe of %s fails under a namespace-wide ALLOW (within %s): %s", to, e.Bound, o)
			}
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-time.After(50 * time.Millisecond):
			}
		}
	},
})

var _ = register(fixture{}, conformance.Check[*Env]{
	ID: "MA22", Name: "default-deny installs: the baseline hook makes the fixture reachable before the tests",
	Faults: []faults.Fault{faults.MeshDefaultDeny},
	Run: func(ctx context.Context, e *Env) error {
		hook := e.S.BaselineHook
		if hook == "" {
			hook = "none (the mesh must allow traffic no policy targets)"
		}
		conformance.Note(ctx, "baseline-hook", hook)
		e.mu.Lock()
		out := e.hookOut
		e.mu.Unlock()
		if out != "" {
			conformance.Note(ctx, "baseline-hook-output", conformance.FirstLine(out, 200))
		}
		if err := e.check(ctx, e.baselineExpectations()...); err != nil {
			if conformance.IsFailure(err) {
				return conformance.Failf("with no policy of the suite applied, the baseline workload is not reachable (baseline hook: %s): %v", hook, err)
			}
			return err
		}
		return nil
	},
})

var _ = register(fixture{servers: srv("ma23", "server")}, conformance.Check[*Env]{
	ID: "MA23", Name: "a TCP denial is a connection error, never data",
	Features: []conformance.Feature{FeatureProtocolTCP},
	Faults:   []faults.Fault{faults.MeshTCPDenyData},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := e.allowOnly(ctx, ps, "ma23", e.sa("cli", "allowed")); err != nil {
			return err
		}
		to := e.wl("ma23", "server")
		o, err := e.observe(ctx, e.x(e.id("cli", "denied"), to, mp.TCP, denied))
		if err != nil {
			return err
		}
		conformance.Note(ctx, "tcp-denial", string(o.Err))
		return nil
	},
})
