package meshauthz

import (
	"context"
	"fmt"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// MX: vendor extensions, each behind a declared feature (MX26 is
// informational and runs wherever TCP is served: it records what happens
// and fails only on a stalled connection).

var _ = register(fixture{servers: srv("mx24", "server")}, conformance.Check[*Env]{
	ID: "MX24", Name: "a denied HTTP request gets exactly 403",
	Features: []conformance.Feature{FeatureHTTP403, FeatureProtocolHTTP},
	Faults:   []faults.Fault{faults.MeshHTTPDenyReset},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := e.allowOnly(ctx, ps, "mx24", e.sa("cli", "allowed")); err != nil {
			return err
		}
		x := e.x(e.id("cli", "denied"), e.wl("mx24", "server"), mp.HTTP, denied)
		if _, err := e.observe(ctx, x); err != nil {
			return err
		}
		_, o, err := e.do(ctx, x)
		if err != nil {
			return err
		}
		if o.HTTPStatus != 403 {
			return conformance.Failf("%s: denied, but with %s, not HTTP 403", x, o)
		}
		conformance.Note(ctx, "403-body", conformance.FirstLine(o.Body, 120))
		return nil
	},
})

var _ = register(fixture{servers: srv("mx25", "server")}, conformance.Check[*Env]{
	ID: "MX25", Name: "a denied gRPC call gets PERMISSION_DENIED",
	Features: []conformance.Feature{FeatureGRPC, FeatureProtocolGRPC},
	Faults:   []faults.Fault{faults.MeshGRPCDenyUnavailable},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := e.allowOnly(ctx, ps, "mx25", e.sa("cli", "allowed")); err != nil {
			return err
		}
		x := e.x(e.id("cli", "denied"), e.wl("mx25", "server"), mp.GRPC, denied)
		if _, err := e.observe(ctx, x); err != nil {
			return err
		}
		_, o, err := e.do(ctx, x)
		if err != nil {
			return err
		}
		if o.GRPCCode != "PermissionDenied" {
			return conformance.Failf("%s: denied, but with %s, not PERMISSION_DENIED", x, o)
		}
		conformance.Note(ctx, "grpc-message", o.GRPCMessage)
		return nil
	},
})

var _ = register(fixture{servers: srv("mx26", "server")}, conformance.Check[*Env]{
	ID: "MX26", Name: "a policy change while a connection is open: record whether it is cut (never stalled)",
	Labels:   []string{"informational"},
	Features: []conformance.Feature{FeatureProtocolTCP},
	Faults:   []faults.Fault{faults.MeshStallOnPolicyChange},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		to, d := e.wl("mx26", "server"), e.id("cli", "denied")
		open := e.request(e.x(d, to, mp.TCP, allowed))
		c, err := e.D.Open(ctx, open)
		if err != nil {
			return conformance.Setupf("open %s: %v", open, err)
		}
		defer c.Close()
		if got, err := c.Echo(ctx, open.Nonce); err != nil || got != "echo "+open.Nonce {
			return conformance.Setupf("open %s: echo %q, %v", open, got, err)
		}
		if err := e.allowOnly(ctx, ps, "mx26", e.sa("cli", "allowed")); err != nil {
			return err
		}
		// New connections are denied once the change converged...
		if err := e.check(ctx, e.x(d, to, mp.TCP, denied)); err != nil {
			return err
		}
		// ...and the old one is either still echoing or cleanly closed.
		ectx, cancel := context.WithTimeout(ctx, e.S.RequestTimeout)
		defer cancel()
		line := e.nonce()
		got, err := c.Echo(ectx, line)
		switch class := mp.Classify(err); {
		case err == nil && got == "echo "+line:
			conformance.Note(ctx, "open-connection", "kept: still forwarded after the policy denied its client")
		case err == nil:
			return conformance.Failf("the open connection returned %q to %q after the policy change: neither the echo nor a close", got, line)
		case class == mp.ErrTimeout:
			return conformance.Failf("the open connection stalled after the policy change: no echo and no close within %s", e.S.RequestTimeout)
		case connDenial[class]:
			conformance.Note(ctx, "open-connection", "cut ("+string(class)+")")
		default:
			return conformance.Failf("the open connection failed oddly after the policy change: %v", err)
		}
		return nil
	},
})

var _ = register(fixture{servers: srv("mx27", "server")}, conformance.Check[*Env]{
	ID: "MX27", Name: "DENY beats ALLOW for the same source",
	Features: []conformance.Feature{FeatureDeny},
	Faults:   []faults.Fault{faults.MeshAllowBeatsDeny, faults.MeshDenyIgnoredTCP},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		if err := ps.apply(ctx, e.policy("mx27", "allow", mp.Allow, app("server"), from(e.sa("cli", "allowed"), e.sa("other", "allowed")))); err != nil {
			return err
		}
		if err := ps.apply(ctx, e.policy("mx27", "deny", mp.Deny, app("server"), from(e.sa("cli", "allowed")))); err != nil {
			return err
		}
		to := e.wl("mx27", "server")
		return e.check(ctx, cat(e.all(e.id("cli", "allowed"), to, denied), e.all(e.id("other", "allowed"), to, allowed))...)
	},
})

// clusterTarget selects one MX28 workload across namespaces.
func clusterTarget(name string) mp.TargetRef {
	return mp.PodSelector(map[string]string{"gauntlet.dev/check": "mx28", "app": name})
}

var _ = register(fixture{servers: srv("mx28", "a", "b")}, conformance.Check[*Env]{
	ID: "MX28", Name: "a cluster DENY cannot be overridden by a namespace ALLOW; a cluster ALLOW can be by a namespace DENY",
	Features: []conformance.Feature{FeatureClusterScope},
	Faults:   []faults.Fault{faults.MeshAdminDenyOverridable, faults.MeshAdminAllowFinal},
	Cases:    []string{"admin-deny-final", "admin-allow-overridable"},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		cluster := func(name string, action mp.Action, target mp.TargetRef, src mp.Source) mp.Policy {
			return mp.Policy{Name: e.ns("mx28-" + name), Scope: mp.ClusterScope, TargetRefs: []mp.TargetRef{target},
				Action: action, Rules: []mp.Rule{from(src)}, EnforcementLevel: mp.Network}
		}
		conformance.Case(ctx, "admin-deny-final", func(ctx context.Context) error {
			a, to := e.id("cli", "allowed"), e.wl("mx28", "a")
			if err := ps.apply(ctx, e.policy("mx28", "allow-a", mp.Allow, app("a"), from(e.sa("cli", "allowed")))); err != nil {
				return err
			}
			if err := e.check(ctx, e.one(a, to, allowed)); err != nil {
				return err
			}
			if err := ps.apply(ctx, cluster("deny-a", mp.Deny, clusterTarget("a"), e.sa("cli", "allowed"))); err != nil {
				return err
			}
			return e.check(ctx, e.all(a, to, denied)...)
		})
		conformance.Case(ctx, "admin-allow-overridable", func(ctx context.Context) error {
			if !e.Target.Has(FeatureDeny) {
				return conformance.Skip(FeatureDeny, "overriding a cluster ALLOW needs a namespace DENY")
			}
			o, to := e.id("other", "allowed"), e.wl("mx28", "b")
			if err := ps.apply(ctx, cluster("allow-b", mp.Allow, clusterTarget("b"), e.sa("other", "allowed"))); err != nil {
				return err
			}
			if err := e.check(ctx, e.one(o, to, allowed), e.one(e.id("cli", "denied"), to, denied)); err != nil {
				return err
			}
			if err := ps.apply(ctx, e.policy("mx28", "deny-b", mp.Deny, app("b"), from(e.sa("other", "allowed")))); err != nil {
				return err
			}
			return e.check(ctx, e.all(o, to, denied)...)
		})
		return nil
	},
})

var _ = register(fixture{servers: srv("mx29", "server")}, conformance.Check[*Env]{
	ID: "MX29", Name: "the policy API rejects invalid policies",
	Features: []conformance.Feature{FeatureAPI},
	Faults:   []faults.Fault{faults.MeshNoValidation},
	Cases: []string{"valid-accepted", "selector-on-service", "spiffe-without-scheme", "two-pod-targets",
		"missing-enforcement-level", "deny-on-core-only"},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		base := func(name string) mp.Policy {
			return e.policy("mx29", name, mp.Allow, app("server"), from(e.sa("cli", "allowed")))
		}
		conformance.Case(ctx, "valid-accepted", func(ctx context.Context) error {
			p := base("valid")
			ps.refs = append(ps.refs, p.Ref())
			if err := e.D.Apply(ctx, p); err != nil {
				if _, ok := mp.IsRejected(err); ok {
					return conformance.Failf("a valid policy was rejected (%v): %s", err, p)
				}
				return conformance.Setupf("apply %s: %v", p, err)
			}
			return nil
		})
		invalid := []struct {
			name, why string
			edit      func(p *mp.Policy)
		}{
			{"selector-on-service", "a Service targetRef with a selector", func(p *mp.Policy) {
				p.TargetRefs = []mp.TargetRef{{Kind: "Service", Name: "server", Selector: &mp.Selector{MatchLabels: map[string]string{"app": "server"}}}}
			}},
			{"spiffe-without-scheme", "a SPIFFE source without spiffe://", func(p *mp.Policy) {
				p.Rules = []mp.Rule{from(mp.SPIFFE(e.TD + "/ns/" + e.ns("cli") + "/sa/allowed"))}
			}},
			{"two-pod-targets", "two Pod targetRefs", func(p *mp.Policy) {
				p.TargetRefs = []mp.TargetRef{app("server"), app("other")}
			}},
			{"missing-enforcement-level", "no enforcementLevel", func(p *mp.Policy) { p.EnforcementLevel = "" }},
			{"deny-on-core-only", "action DENY on a core-only install", func(p *mp.Policy) { p.Action = mp.Deny }},
		}
		for _, c := range invalid {
			conformance.Case(ctx, c.name, func(ctx context.Context) error {
				if c.name == "deny-on-core-only" && e.Target.Has(FeatureDeny) {
					return conformance.Skip("", "the target declares %s: DENY is valid there", FeatureDeny)
				}
				p := base(c.name)
				c.edit(&p)
				err := e.D.Apply(ctx, p)
				if err == nil {
					ps.refs = append(ps.refs, p.Ref())
					return conformance.Failf("the API accepted %s: %s", c.why, p)
				}
				rej, ok := mp.IsRejected(err)
				if !ok {
					return conformance.Setupf("apply %s: %v", p, err)
				}
				conformance.Note(ctx, c.name, rej.Reason)
				return nil
			})
		}
		return nil
	},
})

var _ = register(fixture{servers: srv("mx30", "server")}, conformance.Check[*Env]{
	ID: "MX30", Name: "policies report an Accepted status",
	Features: []conformance.Feature{FeatureStatus},
	Faults:   []faults.Fault{faults.MeshStatusMissing},
	Run: func(ctx context.Context, e *Env) error {
		ps := e.policies()
		defer ps.cleanup()
		p := e.policy("mx30", "allow-one", mp.Allow, app("server"), from(e.sa("cli", "allowed")))
		if err := ps.apply(ctx, p); err != nil {
			return err
		}
		st, ok, err := e.pollStatus(ctx, p.Ref(), func(s mp.PolicyStatus) bool { return s.Reported && s.Accepted })
		if err != nil {
			return err
		}
		if !ok {
			what := "no status"
			if st.Reported {
				what = fmt.Sprintf("Accepted=false (%s: %s)", st.Reason, st.Message)
			}
			return conformance.Failf("policy %s/%s has %s after %s, want an Accepted condition", p.Namespace, p.Name, what, e.Bound)
		}
		conformance.Note(ctx, "accepted-reason", st.Reason)
		return nil
	},
})
