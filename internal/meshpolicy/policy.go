// Package meshpolicy is the neutral east-west authorization model the
// meshauthz suite speaks, in the shape of GEP-3779's AuthorizationPolicy
// (targetRefs, action, rules of sources and network attributes,
// enforcementLevel) plus the extensions the suite tests behind declared
// features (DENY, a cluster/admin scope), and the Driver interface between
// the checks and a mesh. A driver translates the model into its mesh's API
// (the reference mesh in fakes/mesh enforces it directly; a Kubernetes
// driver would write GEP-3779, Istio or Linkerd resources).
package meshpolicy

import (
	"fmt"
	"sort"
	"strings"
)

// Action is what a policy does with the requests its rules match.
type Action string

// Actions. GEP-3779 core has ALLOW only; DENY is an extension (feature Deny).
const (
	Allow Action = "ALLOW"
	Deny  Action = "DENY"
)

// Scope says who owns a policy. Namespace is GEP-3779's scope; Cluster is
// the admin scope the GEP lists as a TBD goal (feature ClusterScope): a
// cluster DENY cannot be overridden by namespace policies, a cluster ALLOW
// is a default that namespace policies may override.
type Scope string

// Scopes.
const (
	NamespaceScope Scope = ""
	ClusterScope   Scope = "Cluster"
)

// EnforcementLevel is GEP-3779's required enforcementLevel; the core
// defines Network (L4: identity and destination port) only.
type EnforcementLevel string

// Network is L4 enforcement.
const Network EnforcementLevel = "Network"

// Policy is one authorization policy.
type Policy struct {
	Name string `json:"name"`
	// Namespace owns the policy; empty for ClusterScope policies.
	Namespace string `json:"namespace,omitempty"`
	Scope     Scope  `json:"scope,omitempty"`
	// TargetRefs select the workloads the policy applies to. For kind Pod
	// the ref has a selector and no name; an empty selector selects every
	// pod of the namespace (of every namespace, for a cluster policy).
	TargetRefs       []TargetRef      `json:"targetRefs"`
	Action           Action           `json:"action"`
	Rules            []Rule           `json:"rules,omitempty"`
	EnforcementLevel EnforcementLevel `json:"enforcementLevel,omitempty"`
}

// TargetRef is GEP-3779's PolicyTargetReferenceWithLabelSelectors.
type TargetRef struct {
	Group    string    `json:"group"`
	Kind     string    `json:"kind"`
	Name     string    `json:"name,omitempty"`
	Selector *Selector `json:"selector,omitempty"`
}

// Selector is a label selector (matchLabels only: what the suite needs).
type Selector struct {
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// Matches reports whether labels satisfy the selector (a nil or empty
// selector matches everything).
func (s *Selector) Matches(labels map[string]string) bool {
	if s == nil {
		return true
	}
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// PodSelector is the usual target: pods whose labels match.
func PodSelector(labels map[string]string) TargetRef {
	return TargetRef{Group: "", Kind: "Pod", Selector: &Selector{MatchLabels: labels}}
}

// Rule matches a request when its sources AND its network attributes
// match. A policy's rules are ORed.
type Rule struct {
	// Sources: nil (omitted) matches any source, an empty non-nil list
	// matches none ("allow nothing"), otherwise any listed source.
	Sources []Source `json:"sources"`
	// Ports are destination (container) ports; empty matches every port.
	Ports []int `json:"ports,omitempty"`
}

// SourceType discriminates a Source.
type SourceType string

// Source types of GEP-3779.
const (
	ServiceAccountSource SourceType = "ServiceAccount"
	SPIFFESource         SourceType = "SPIFFE"
)

// Source is one allowed (or denied) peer identity.
type Source struct {
	Type           SourceType      `json:"type"`
	ServiceAccount *ServiceAccount `json:"serviceAccount,omitempty"`
	SPIFFE         string          `json:"spiffe,omitempty"`
}

// ServiceAccount names a service account; an empty Namespace means the
// policy's namespace, Name "*" every service account of the namespace.
type ServiceAccount struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// SA builds a service-account source ("" namespace: the policy's).
func SA(namespace, name string) Source {
	return Source{Type: ServiceAccountSource, ServiceAccount: &ServiceAccount{Namespace: namespace, Name: name}}
}

// SPIFFE builds a SPIFFE source.
func SPIFFE(uri string) Source { return Source{Type: SPIFFESource, SPIFFE: uri} }

// String is a compact rendering for diagnostics.
func (p Policy) String() string {
	var b strings.Builder
	scope := p.Namespace
	if p.Scope == ClusterScope {
		scope = "cluster"
	}
	fmt.Fprintf(&b, "%s/%s %s", scope, p.Name, p.Action)
	for _, t := range p.TargetRefs {
		fmt.Fprintf(&b, " target=%s", t.Kind)
		if t.Name != "" {
			b.WriteString(":" + t.Name)
		}
		if t.Selector != nil {
			b.WriteString(labelString(t.Selector.MatchLabels))
		}
	}
	if len(p.Rules) == 0 {
		b.WriteString(" rules=none")
	}
	for i, r := range p.Rules {
		fmt.Fprintf(&b, " rule%d{", i)
		switch {
		case r.Sources == nil:
			b.WriteString("sources=any")
		case len(r.Sources) == 0:
			b.WriteString("sources=[]")
		default:
			var ss []string
			for _, s := range r.Sources {
				ss = append(ss, s.String())
			}
			b.WriteString("sources=" + strings.Join(ss, ","))
		}
		if len(r.Ports) > 0 {
			fmt.Fprintf(&b, " ports=%v", r.Ports)
		}
		b.WriteString("}")
	}
	return b.String()
}

// String renders a source.
func (s Source) String() string {
	switch {
	case s.Type == SPIFFESource:
		return s.SPIFFE
	case s.ServiceAccount != nil:
		return "sa:" + s.ServiceAccount.Namespace + "/" + s.ServiceAccount.Name
	}
	return "source:" + string(s.Type)
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var kv []string
	for _, k := range keys {
		kv = append(kv, k+"="+m[k])
	}
	return "{" + strings.Join(kv, ",") + "}"
}
