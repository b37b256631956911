package meshtranslate

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// Linkerd's policy API.
const (
	LinkerdGroup           = "policy.linkerd.io"
	LinkerdServerVersion   = LinkerdGroup + "/v1beta3"
	LinkerdPolicyVersion   = LinkerdGroup + "/v1alpha1"
	LinkerdServer          = "Server"
	LinkerdAuthzPolicy     = "AuthorizationPolicy"
	LinkerdMeshTLSAuthn    = "MeshTLSAuthentication"
	LinkerdNetworkAuthn    = "NetworkAuthentication"
	linkerdIdentitySuffix  = ".serviceaccount.identity.linkerd."
	linkerdAnyNetworkIPv4  = "0.0.0.0/0"
	linkerdAnyNetworkIPv6  = "::/0"
	linkerdServerAccessDef = "deny"
)

// translateLinkerd expresses an ALLOW policy with Linkerd's three-part
// model:
//
//   - a Server per selected pod port (a Server names one port; once a
//     Server selects a pod's port, Linkerd denies what no
//     AuthorizationPolicy allows there, which is the GEP's "a targeted
//     workload admits only what an ALLOW matches"). Servers are named by
//     selector and port and labelled SharedLabel: Linkerd's admission
//     refuses a second Server with the same port and pod selector, so two
//     policies on the same pods (MA15) share them;
//   - per rule, one authentication: a MeshTLSAuthentication listing the
//     rule's sources (ORed), or, for a rule whose sources are omitted (any
//     source, meshed or not), a NetworkAuthentication of every address
//     (Linkerd ignores an AuthorizationPolicy with no required
//     authentication);
//   - per rule and Server of a port the rule covers, an AuthorizationPolicy
//     (Linkerd ANDs the authentications of one AuthorizationPolicy and ORs
//     AuthorizationPolicies, so rules map to separate ones).
//
// A rule with `sources: []` produces nothing (it matches nothing); a policy
// without rules is only its Servers: every request denied.
//
// Identities: service account ns/sa -> "sa.ns.serviceaccount.identity.linkerd.<td>",
// name "*" -> "*.ns.serviceaccount.identity.linkerd.<td>" (Linkerd's
// wildcard prefix); a SPIFFE source of the Kubernetes shape in the trust
// domain (spiffe://<td>/ns/<ns>/sa/<sa>) is written as that DNS-like
// identity, the one Linkerd proxies present; any other SPIFFE ID is passed
// as is (Linkerd 2.15+ accepts SPIFFE IDs in identities).
//
// What Linkerd cannot express (*UnsupportedError): action DENY (Linkerd
// has ALLOW and AUDIT only), cluster scope (its policies are namespaced, it
// has no admin tier), targetRefs other than Pod selectors (GEP's Service
// refs; Linkerd's Server selects pods) and Pods by name. enforcementLevel
// has no Linkerd field and is dropped (Server policy is L4 for opaque and
// unknown protocols).
func translateLinkerd(p mp.Policy, o Options) ([]*unstructured.Unstructured, error) {
	switch {
	case p.Action == mp.Deny:
		return nil, unsupported(Linkerd, p, "action DENY: Linkerd authorization policies only allow (or audit); what no policy allows is denied, but nothing can be denied explicitly")
	case p.Scope == mp.ClusterScope:
		return nil, unsupported(Linkerd, p, "cluster scope: Linkerd policies are namespaced and there is no admin policy tier")
	case len(p.TargetRefs) == 0:
		return nil, unsupported(Linkerd, p, "no targetRefs: a Linkerd Server needs a pod selector")
	}
	ports := portSet(p, o)
	var servers []*unstructured.Unstructured
	seen := map[string]bool{}
	for _, t := range p.TargetRefs {
		if !isPodRef(t) {
			return nil, unsupported(Linkerd, p, "targetRef %s/%s %q: Linkerd Servers select pods by labels only", t.Group, t.Kind, t.Name)
		}
		if t.Name != "" {
			return nil, unsupported(Linkerd, p, "Pod targetRef by name %q: Linkerd Servers select pods by labels only", t.Name)
		}
		key := selectorKey(t.Selector)
		for _, port := range ports[key] {
			name := fmt.Sprintf("gauntlet-%s-%d", key, port.Port)
			if seen[name] {
				continue
			}
			seen[name] = true
			servers = append(servers, object(LinkerdServerVersion, LinkerdServer, p.Namespace, name,
				map[string]string{SharedLabel: "true"}, map[string]any{
					"podSelector":   selectorObject(t.Selector),
					"port":          int64(port.Port),
					"proxyProtocol": linkerdProtocol(port.Protocol),
					"accessPolicy":  linkerdServerAccessDef,
				}))
		}
	}
	out := append([]*unstructured.Unstructured{}, servers...)
	var policies []*unstructured.Unstructured
	for i, r := range p.Rules {
		if r.Sources != nil && len(r.Sources) == 0 {
			continue // matches no source
		}
		authnName := fmt.Sprintf("%s-r%d", p.Name, i)
		var authn *unstructured.Unstructured
		if r.Sources == nil {
			authn = object(LinkerdPolicyVersion, LinkerdNetworkAuthn, p.Namespace, authnName, policyLabels(p), map[string]any{
				"networks": []any{map[string]any{"cidr": linkerdAnyNetworkIPv4}, map[string]any{"cidr": linkerdAnyNetworkIPv6}},
			})
		} else {
			ids := make([]any, 0, len(r.Sources))
			for _, s := range r.Sources {
				ids = append(ids, linkerdIdentity(s, p.Namespace, o.td()))
			}
			authn = object(LinkerdPolicyVersion, LinkerdMeshTLSAuthn, p.Namespace, authnName, policyLabels(p), map[string]any{"identities": ids})
		}
		out = append(out, authn)
		for _, srv := range servers {
			port, _, _ := unstructured.NestedInt64(srv.Object, "spec", "port")
			if len(r.Ports) > 0 && !containsPort(r.Ports, int(port)) {
				continue
			}
			policies = append(policies, object(LinkerdPolicyVersion, LinkerdAuthzPolicy, p.Namespace,
				fmt.Sprintf("%s-r%d-%s", p.Name, i, strings.TrimPrefix(srv.GetName(), "gauntlet-")), policyLabels(p), map[string]any{
					"targetRef": map[string]any{"group": LinkerdGroup, "kind": LinkerdServer, "name": srv.GetName()},
					"requiredAuthenticationRefs": []any{map[string]any{
						"group": LinkerdGroup, "kind": authn.GetKind(), "name": authn.GetName(),
					}},
				}))
		}
	}
	return append(out, policies...), nil
}

// portSet is, per selector key, the ports of the workloads the selector
// picks in the policy's namespace (none: the standard echo ports), plus
// every port a rule names.
func portSet(p mp.Policy, o Options) map[string][]mp.Port {
	out := map[string][]mp.Port{}
	for _, t := range p.TargetRefs {
		key := selectorKey(t.Selector)
		byNum := map[int]mp.Port{}
		for _, w := range o.Workloads {
			if w.Namespace != p.Namespace || !t.Selector.Matches(w.Labels) {
				continue
			}
			for _, port := range w.Ports {
				byNum[port.Port] = port
			}
		}
		if len(byNum) == 0 {
			for _, port := range mp.StandardPorts() {
				byNum[port.Port] = port
			}
		}
		for _, r := range p.Rules {
			for _, n := range r.Ports {
				if _, ok := byNum[n]; !ok {
					byNum[n] = mp.Port{Port: n}
				}
			}
		}
		list := make([]mp.Port, 0, len(byNum))
		for _, port := range byNum {
			list = append(list, port)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Port < list[j].Port })
		out[key] = list
	}
	return out
}

// selectorKey names a pod selector in Server names: "all" for an empty
// one, else a hash of its labels (label values need not be DNS-safe).
func selectorKey(s *mp.Selector) string {
	if s == nil || len(s.MatchLabels) == 0 {
		return "all"
	}
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + s.MatchLabels[k] + "\n")
	}
	return shortHash(b.String(), 10)
}

func selectorObject(s *mp.Selector) map[string]any {
	if s == nil || len(s.MatchLabels) == 0 {
		return map[string]any{}
	}
	return map[string]any{"matchLabels": matchLabels(s)}
}

// linkerdProtocol is a Server's proxyProtocol: HTTP/1 and gRPC skip
// protocol detection; plain TCP is opaque (no detection, L4 only).
func linkerdProtocol(p mp.Protocol) string {
	switch p {
	case mp.HTTP:
		return "HTTP/1"
	case mp.GRPC:
		return "gRPC"
	case mp.TCP:
		return "opaque"
	}
	return "unknown"
}

func linkerdIdentity(s mp.Source, policyNS, td string) string {
	switch {
	case s.Type == mp.ServiceAccountSource && s.ServiceAccount != nil:
		return s.ServiceAccount.Name + "." + saNamespace(s.ServiceAccount, policyNS) + linkerdIdentitySuffix + td
	case s.Type == mp.SPIFFESource:
		if ns, sa, ok := kubeSPIFFE(s.SPIFFE, td); ok {
			return sa + "." + ns + linkerdIdentitySuffix + td
		}
		return s.SPIFFE
	}
	return s.SPIFFE
}

// kubeSPIFFE splits spiffe://<td>/ns/<ns>/sa/<sa>.
func kubeSPIFFE(id, td string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(id, "spiffe://"+td+"/ns/")
	if !ok {
		return "", "", false
	}
	ns, sa, ok = strings.Cut(rest, "/sa/")
	if !ok || ns == "" || sa == "" || strings.Contains(sa, "/") || strings.Contains(ns, "/") {
		return "", "", false
	}
	return ns, sa, true
}

func containsPort(ports []int, p int) bool {
	for _, q := range ports {
		if q == p {
			return true
		}
	}
	return false
}
