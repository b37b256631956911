package mesh

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gauntlet-conformance/gauntlet/faults"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Class is a (scope, action) pair of policies; the mesh evaluates classes in
// its precedence order and the first class with a matching policy decides.
type Class struct {
	Scope  mp.Scope
	Action mp.Action
}

func (c Class) String() string {
	s := "namespace"
	if c.Scope == mp.ClusterScope {
		s = "cluster"
	}
	return s + " " + string(c.Action)
}

// DefaultPrecedence: a cluster (admin) DENY is final, a namespace DENY
// beats any ALLOW, a namespace ALLOW beats the cluster's default ALLOW.
// When nothing matches, a workload some ALLOW policy targets is denied, any
// other is allowed (GEP-3779: ALLOW policies are default-deny for their
// targets only).
var DefaultPrecedence = []Class{
	{mp.ClusterScope, mp.Deny},
	{mp.NamespaceScope, mp.Deny},
	{mp.NamespaceScope, mp.Allow},
	{mp.ClusterScope, mp.Allow},
}

// stored is a policy as the control plane holds it.
type stored struct {
	p       mp.Policy
	prev    mp.Policy // the version before the last edit (MeshEditFlaps)
	hasPrev bool
	seq     int64 // creation order
}

// peer is an authenticated (or not) client.
type peer struct {
	none bool
	id   spiffeid.ID
	ns   string
	sa   string
}

func (p peer) String() string {
	if p.none {
		return "no identity"
	}
	return p.id.String()
}

func peerFromID(id spiffeid.ID) peer {
	p := peer{id: id}
	seg := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(seg) == 4 && seg[0] == "ns" && seg[2] == "sa" {
		p.ns, p.sa = seg[1], seg[3]
	}
	return p
}

// decide is the policy decision for one connection: peer -> workload w on
// container port port, reached through Service port dialled (0: direct).
// The caller holds m.mu (read).
func (m *Mesh) decide(w *workload, pr peer, port, dialled int) (bool, string) {
	if m.has(faults.MeshServicePortMatching) && dialled != 0 {
		port = dialled
	}
	labels := w.labels
	if m.has(faults.MeshLabelsCached) {
		labels = w.deployLabels
	}
	var applicable []mp.Policy
	for _, s := range m.sortedPolicies() {
		p := s.p
		if s.hasPrev && m.has(faults.MeshEditFlaps) && m.flap.Add(1)%2 == 0 {
			p = s.prev
		}
		if m.targets(p, w, labels) {
			applicable = append(applicable, p)
		}
	}
	if m.has(faults.MeshFirstAllowOnly) {
		var kept []mp.Policy
		first := true
		for _, p := range applicable {
			if p.Action == mp.Allow && p.Scope != mp.ClusterScope {
				if !first {
					continue
				}
				first = false
			}
			kept = append(kept, p)
		}
		applicable = kept
	}
	tcp := false
	for _, p := range w.ports {
		tcp = tcp || (p.Port == port && p.Protocol == mp.TCP)
	}
	for _, c := range m.precedence() {
		if c.Action == mp.Deny && tcp && m.has(faults.MeshDenyIgnoredTCP) {
			continue
		}
		for _, p := range applicable {
			if p.Scope == c.Scope && p.Action == c.Action && m.matches(p, pr, port) {
				return p.Action == mp.Allow, fmt.Sprintf("%s policy %s matched", c, p.Name)
			}
		}
	}
	for _, p := range applicable {
		if p.Action == mp.Allow {
			if m.has(faults.MeshAllowIgnored) {
				return true, "no rule matched (ALLOW ignored)"
			}
			return false, fmt.Sprintf("ALLOW policy %s targets the workload and no rule matched", p.Name)
		}
	}
	if m.has(faults.MeshDefaultDeny) {
		return false, "default deny"
	}
	return true, "no policy targets the workload"
}

func (m *Mesh) precedence() []Class {
	switch {
	case m.has(faults.MeshAllowBeatsDeny):
		return []Class{{mp.ClusterScope, mp.Deny}, {mp.NamespaceScope, mp.Allow}, {mp.NamespaceScope, mp.Deny}, {mp.ClusterScope, mp.Allow}}
	case m.has(faults.MeshAdminDenyOverridable):
		return []Class{{mp.NamespaceScope, mp.Deny}, {mp.NamespaceScope, mp.Allow}, {mp.ClusterScope, mp.Deny}, {mp.ClusterScope, mp.Allow}}
	case m.has(faults.MeshAdminAllowFinal):
		return []Class{{mp.ClusterScope, mp.Deny}, {mp.ClusterScope, mp.Allow}, {mp.NamespaceScope, mp.Deny}, {mp.NamespaceScope, mp.Allow}}
	}
	return m.opts.Precedence
}

func (m *Mesh) sortedPolicies() []*stored {
	out := make([]*stored, 0, len(m.policies))
	for _, s := range m.policies {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// targets reports whether p applies to w (whose labels are labels).
func (m *Mesh) targets(p mp.Policy, w *workload, labels map[string]string) bool {
	if p.Scope != mp.ClusterScope && p.Namespace != w.ref.Namespace && !m.has(faults.MeshNamespaceIgnored) {
		return false
	}
	for _, t := range p.TargetRefs {
		switch t.Kind {
		case "Pod":
			empty := t.Selector == nil || len(t.Selector.MatchLabels) == 0
			switch {
			case m.has(faults.MeshSelectorIgnored):
				return true
			case empty && m.has(faults.MeshEmptySelectorNone):
			case t.Selector.Matches(labels):
				return true
			}
		case "Service":
			if t.Name == w.ref.Name {
				return true
			}
		}
	}
	return false
}

// matches reports whether a request matches one of p's rules (ORed; the
// criteria of a rule ANDed).
func (m *Mesh) matches(p mp.Policy, pr peer, port int) bool {
	if len(p.Rules) == 0 {
		return p.Action == mp.Allow && m.has(faults.MeshNoRulesAllowAll)
	}
	and := m.has(faults.MeshRulesANDed)
	for _, r := range p.Rules {
		src, prt := m.sourcesMatch(p, r.Sources, pr), portsMatch(r.Ports, port)
		ok := src && prt
		if m.has(faults.MeshRuleCriteriaORed) {
			ok = src || prt
		}
		if and && !ok {
			return false
		}
		if !and && ok {
			return true
		}
	}
	return and
}

func portsMatch(ports []int, port int) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p == port {
			return true
		}
	}
	return false
}

func (m *Mesh) sourcesMatch(p mp.Policy, sources []mp.Source, pr peer) bool {
	if sources == nil {
		return true
	}
	if len(sources) == 0 {
		return m.has(faults.MeshEmptySourcesMatchAll)
	}
	for _, s := range sources {
		if m.sourceMatches(p, s, pr) {
			return true
		}
	}
	return false
}

func (m *Mesh) sourceMatches(p mp.Policy, s mp.Source, pr peer) bool {
	if pr.none {
		return m.has(faults.MeshPlaintextAllowed)
	}
	switch s.Type {
	case mp.SPIFFESource:
		return !m.has(faults.MeshSPIFFENeverMatches) && s.SPIFFE == pr.id.String()
	case mp.ServiceAccountSource:
		if s.ServiceAccount == nil || !pr.id.MemberOf(m.ca.TrustDomain()) {
			return false
		}
		ns := s.ServiceAccount.Namespace
		if ns == "" {
			ns = p.Namespace
			if m.has(faults.MeshSANamespaceDefault) {
				ns = "default"
			}
		}
		nsOK := ns == pr.ns || m.has(faults.MeshIdentityNameOnly)
		if s.ServiceAccount.Name == "*" {
			return nsOK || m.has(faults.MeshWildcardAnyNamespace)
		}
		return nsOK && s.ServiceAccount.Name == pr.sa
	}
	return false
}

// validate is the reference policy API's admission (feature
// AuthorizationPolicyAPIValidation): GEP-3779's schema and CEL rules, plus
// the extensions this install enables.
func (m *Mesh) validate(p mp.Policy) error {
	if m.has(faults.MeshNoValidation) {
		return nil
	}
	bad := func(f string, a ...any) error { return &mp.RejectedError{Reason: fmt.Sprintf(f, a...)} }
	switch {
	case p.Name == "":
		return bad("metadata.name is required")
	case p.Scope == mp.ClusterScope && !m.opts.ClusterScope:
		return bad("scope Cluster is not installed (core-only install)")
	case p.Scope == mp.ClusterScope && p.Namespace != "":
		return bad("a cluster-scope policy has no namespace")
	case p.Scope == mp.NamespaceScope && p.Namespace == "":
		return bad("metadata.namespace is required")
	case p.Scope != mp.NamespaceScope && p.Scope != mp.ClusterScope:
		return bad("unknown scope %q", p.Scope)
	}
	switch p.Action {
	case mp.Allow:
	case mp.Deny:
		// Cluster DENY is part of the cluster scope (admin policies);
		// namespace DENY is the Deny extension.
		if !m.opts.Deny && p.Scope != mp.ClusterScope {
			return bad("spec.action: Unsupported value \"DENY\": supported values: \"ALLOW\" (core-only install)")
		}
	default:
		return bad("spec.action: Unsupported value %q", p.Action)
	}
	if p.EnforcementLevel != mp.Network {
		return bad("spec.enforcementLevel: Required value: must be Network, got %q", p.EnforcementLevel)
	}
	if len(p.TargetRefs) == 0 {
		return bad("spec.targetRefs: Required value")
	}
	pods := 0
	for i, t := range p.TargetRefs {
		switch t.Kind {
		case "Pod":
			pods++
			if t.Name != "" || t.Selector == nil {
				return bad("spec.targetRefs[%d]: kind Pod needs a selector and no name", i)
			}
		case "Service":
			if t.Selector != nil || t.Name == "" {
				return bad("spec.targetRefs[%d]: kind Service needs a name and no selector", i)
			}
		default:
			return bad("spec.targetRefs[%d].kind: Unsupported value %q", i, t.Kind)
		}
	}
	if pods > 0 && len(p.TargetRefs) > 1 {
		return bad("spec.targetRefs: a Pod targetRef must be the only one")
	}
	for i, r := range p.Rules {
		for j, s := range r.Sources {
			switch s.Type {
			case mp.ServiceAccountSource:
				if s.ServiceAccount == nil || s.ServiceAccount.Name == "" || s.SPIFFE != "" {
					return bad("spec.rules[%d].sources[%d]: type ServiceAccount needs serviceAccount.name only", i, j)
				}
				if p.Scope == mp.ClusterScope && s.ServiceAccount.Namespace == "" {
					return bad("spec.rules[%d].sources[%d].serviceAccount.namespace: required in a cluster-scope policy", i, j)
				}
			case mp.SPIFFESource:
				if !strings.HasPrefix(s.SPIFFE, "spiffe://") || len(strings.Split(s.SPIFFE, "/")) < 3 || s.ServiceAccount != nil {
					return bad("spec.rules[%d].sources[%d].spiffe: must start with spiffe:// and name a trust domain and a path", i, j)
				}
				if _, err := spiffeid.FromString(s.SPIFFE); err != nil {
					return bad("spec.rules[%d].sources[%d].spiffe: %v", i, j, err)
				}
			default:
				return bad("spec.rules[%d].sources[%d].type: Unsupported value %q", i, j, s.Type)
			}
		}
		for _, port := range r.Ports {
			if port < 1 || port > 65535 {
				return bad("spec.rules[%d].ports: %d is not a port", i, port)
			}
		}
	}
	return nil
}
