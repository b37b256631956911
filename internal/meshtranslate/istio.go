package meshtranslate

import (
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// Istio's AuthorizationPolicy.
const (
	IstioAPIVersion = "security.istio.io/v1"
	IstioKind       = "AuthorizationPolicy"
)

// translateIstio writes one security.istio.io/v1 AuthorizationPolicy whose
// spec is valid protojson for istio.io/api security/v1beta1
// AuthorizationPolicy (Istio's authz builder reads exactly that).
//
// Mapping:
//   - a Pod targetRef's selector -> spec.selector.matchLabels (an empty
//     selector: no selector, i.e. every workload of the namespace; of the
//     mesh for a cluster policy);
//   - any other targetRef -> spec.targetRefs (Istio enforces those at
//     waypoints and gateways only). A selector on such a ref (invalid in
//     the GEP) becomes spec.selector beside spec.targetRefs, which Istio's
//     own CRD rejects ("only one of targetRefs or selector can be set"):
//     the API server, not gauntlet, refuses it;
//   - ServiceAccount sources -> principals "<td>/ns/<ns>/sa/<name>"; name
//     "*" -> "<td>/ns/<ns>/sa/*" (Istio's suffix wildcard, which keeps the
//     trust domain, unlike source.namespaces);
//   - SPIFFE sources -> principals without "spiffe://" (a source without
//     the scheme is passed as is: Istio's API does not validate principals);
//   - a rule's ports -> to.operation.ports (Istio matches the destination
//     port the workload receives on, i.e. the container port: GEP-3779's);
//   - action DENY -> DENY (Istio evaluates DENY before ALLOW);
//   - cluster scope -> the root namespace (Options.RootNamespace).
//
// What Istio cannot express, precisely:
//   - more than one Pod targetRef (GEP-invalid too): one selector per
//     policy -> *UnsupportedError;
//   - a Pod targetRef by name: Istio selects pods by labels only ->
//     *UnsupportedError;
//   - no targetRefs (GEP-invalid): an Istio policy without selector or
//     targetRefs applies to the whole namespace, a silent widening ->
//     *UnsupportedError;
//   - `sources: []` (matches no source): protobuf cannot tell an empty
//     repeated field from an absent one, and Istio reads an absent `from`
//     as "any source". The rule is dropped instead, which is the same
//     decision (an ORed rule that matches nothing adds nothing), and a
//     policy left with no rules is Istio's "matches nothing": ALLOW then
//     denies every request to its targets, DENY denies none — GEP's
//     semantics for both;
//   - enforcementLevel: Istio has no such field. Every policy gauntlet
//     writes uses identities and ports only, which Istio enforces at L4
//     (ztunnel or sidecar), so Network is honoured; a missing level (GEP
//     invalid) cannot be rejected by Istio's API;
//   - cluster scope's "overridable default" ALLOW: Istio unions root and
//     namespace ALLOW policies, so a namespace ALLOW cannot narrow a root
//     ALLOW; only a namespace DENY overrides it (what MX28 tests). A root
//     DENY is final, as the GEP's admin DENY.
func translateIstio(p mp.Policy, o Options) ([]*unstructured.Unstructured, error) {
	ns := p.Namespace
	if p.Scope == mp.ClusterScope {
		ns = o.root()
	}
	spec := map[string]any{}
	var pods []mp.TargetRef
	var others []any
	var otherSelector *mp.Selector
	for _, t := range p.TargetRefs {
		if isPodRef(t) {
			pods = append(pods, t)
			continue
		}
		ref := map[string]any{"kind": t.Kind}
		if t.Group != "" { // Istio's proto drops an empty group: core
			ref["group"] = t.Group
		}
		if t.Name != "" {
			ref["name"] = t.Name
		}
		others = append(others, ref)
		if t.Selector != nil && otherSelector == nil {
			otherSelector = t.Selector
		}
	}
	switch {
	case len(p.TargetRefs) == 0:
		return nil, unsupported(Istio, p, "no targetRefs: an Istio policy without selector or targetRefs applies to every workload of its namespace")
	case len(pods) > 1:
		return nil, unsupported(Istio, p, "%d Pod targetRefs: an Istio AuthorizationPolicy has one workload selector", len(pods))
	case len(pods) == 1 && pods[0].Name != "":
		return nil, unsupported(Istio, p, "Pod targetRef by name %q: Istio selects workloads by labels only", pods[0].Name)
	}
	sel := otherSelector
	if len(pods) == 1 {
		sel = pods[0].Selector
	}
	if sel != nil && (len(sel.MatchLabels) > 0 || len(others) > 0) {
		spec["selector"] = map[string]any{"matchLabels": matchLabels(sel)}
	}
	if len(others) > 0 {
		spec["targetRefs"] = others
	}
	if p.Action != "" {
		spec["action"] = string(p.Action)
	}
	var rules []any
	for _, r := range p.Rules {
		if r.Sources != nil && len(r.Sources) == 0 {
			continue // matches no source: see above
		}
		rule := map[string]any{}
		if len(r.Sources) > 0 {
			principals := make([]any, 0, len(r.Sources))
			for _, s := range r.Sources {
				principals = append(principals, istioPrincipal(s, ns, o.td()))
			}
			rule["from"] = []any{map[string]any{"source": map[string]any{"principals": principals}}}
		}
		if len(r.Ports) > 0 {
			ports := make([]any, 0, len(r.Ports))
			for _, port := range r.Ports {
				ports = append(ports, strconv.Itoa(port))
			}
			rule["to"] = []any{map[string]any{"operation": map[string]any{"ports": ports}}}
		}
		rules = append(rules, rule)
	}
	if len(rules) > 0 {
		spec["rules"] = rules
	}
	return []*unstructured.Unstructured{object(IstioAPIVersion, IstioKind, ns, p.Name, policyLabels(p), spec)}, nil
}

// istioPrincipal is a source as an Istio principal (a SPIFFE ID without
// its scheme).
func istioPrincipal(s mp.Source, policyNS, td string) string {
	switch {
	case s.Type == mp.ServiceAccountSource && s.ServiceAccount != nil:
		return td + "/ns/" + saNamespace(s.ServiceAccount, policyNS) + "/sa/" + s.ServiceAccount.Name
	case s.Type == mp.SPIFFESource:
		return strings.TrimPrefix(s.SPIFFE, "spiffe://")
	}
	// An unknown or empty source type (GEP-invalid): pass what there is.
	return s.SPIFFE
}
