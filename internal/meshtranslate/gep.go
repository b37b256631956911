package meshtranslate

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// GEPGroup is the API group of gauntlet's GEP-3779 CRD. GEP-3779 has no
// published type or group (gateway-api v1.7.0 carries it as Go text in the
// GEP only), so the CRD cannot claim gateway.networking.k8s.io (or its
// x-k8s.io experimental spelling): that would pose as upstream API. The
// group is gauntlet's own domain, prefixed with the GEP number so that it
// says what it is: the GEP's shape, nothing more. When upstream publishes
// the type, a new flavor points at its group and this one stays for
// comparison.
const (
	GEPGroup      = "gep3779.gauntlet.dev"
	GEPVersion    = "v1alpha1"
	GEPAPIVersion = GEPGroup + "/" + GEPVersion
	// GEPKind is the GEP's namespaced AuthorizationPolicy.
	GEPKind = "AuthorizationPolicy"
	// GEPClusterKind is the cluster-scope extension (feature ClusterScope):
	// the GEP names a separate ClusterAuthorizationPolicy resource as the
	// preferred shape for cluster-wide policies. Only the extended CRD
	// bundle serves it.
	GEPClusterKind = "ClusterAuthorizationPolicy"
)

// translateGEP writes the policy in the GEP's shape, field for field,
// invalid or not: the CRD's schema and CEL rules are the validation.
func translateGEP(p mp.Policy, _ Options) ([]*unstructured.Unstructured, error) {
	spec := map[string]any{}
	refs := make([]any, 0, len(p.TargetRefs))
	for _, t := range p.TargetRefs {
		ref := map[string]any{"group": t.Group, "kind": t.Kind}
		if t.Name != "" {
			ref["name"] = t.Name
		}
		if t.Selector != nil {
			sel := map[string]any{}
			if len(t.Selector.MatchLabels) > 0 {
				sel["matchLabels"] = matchLabels(t.Selector)
			}
			ref["selector"] = sel
		}
		refs = append(refs, ref)
	}
	spec["targetRefs"] = refs
	if p.Action != "" {
		spec["action"] = string(p.Action)
	}
	if p.EnforcementLevel != "" {
		spec["enforcementLevel"] = string(p.EnforcementLevel)
	}
	if len(p.Rules) > 0 {
		rules := make([]any, 0, len(p.Rules))
		for _, r := range p.Rules {
			rule := map[string]any{}
			// nil sources (any source) stay omitted; an empty list (no
			// source) must reach the server as [].
			if r.Sources != nil {
				srcs := make([]any, 0, len(r.Sources))
				for _, s := range r.Sources {
					srcs = append(srcs, gepSource(s))
				}
				rule["sources"] = srcs
			}
			if len(r.Ports) > 0 {
				ports := make([]any, 0, len(r.Ports))
				for _, port := range r.Ports {
					ports = append(ports, int64(port))
				}
				rule["networkAttributes"] = map[string]any{"ports": ports}
			}
			rules = append(rules, rule)
		}
		spec["rules"] = rules
	}
	kind, ns := GEPKind, p.Namespace
	if p.Scope == mp.ClusterScope {
		kind, ns = GEPClusterKind, ""
	}
	return []*unstructured.Unstructured{object(GEPAPIVersion, kind, ns, p.Name, policyLabels(p), spec)}, nil
}

func gepSource(s mp.Source) map[string]any {
	out := map[string]any{"type": string(s.Type)}
	if s.ServiceAccount != nil {
		sa := map[string]any{"name": s.ServiceAccount.Name}
		if s.ServiceAccount.Namespace != "" {
			sa["namespace"] = s.ServiceAccount.Namespace
		}
		out["serviceAccount"] = sa
	}
	if s.SPIFFE != "" {
		out["spiffe"] = s.SPIFFE
	}
	return out
}
