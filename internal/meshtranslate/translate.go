// Package meshtranslate turns the neutral policy model of internal/meshpolicy
// into the API objects a mesh on Kubernetes reads: gauntlet's CRD for the
// GEP-3779 shape (hack/meshapi/crds), Istio's security.istio.io/v1
// AuthorizationPolicy and Linkerd's policy.linkerd.io Server +
// AuthorizationPolicy + MeshTLSAuthentication / NetworkAuthentication.
//
// Translate never validates: an invalid policy (MX29) is translated as
// faithfully as the target API allows, so that the API server, not
// gauntlet, is the one that rejects it. What a flavor cannot express at all
// is an *UnsupportedError naming the construct, never a silent
// approximation.
package meshtranslate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// Flavor is a target API.
type Flavor string

// Flavors.
const (
	// GEP3779 is gauntlet's CRD for GEP-3779's AuthorizationPolicy (and the
	// ClusterAuthorizationPolicy extension), group GEPGroup.
	GEP3779 Flavor = "gep3779"
	// Istio is security.istio.io/v1 AuthorizationPolicy.
	Istio Flavor = "istio"
	// Linkerd is policy.linkerd.io Server (v1beta3), AuthorizationPolicy,
	// MeshTLSAuthentication and NetworkAuthentication (v1alpha1).
	Linkerd Flavor = "linkerd"
)

// Flavors lists every flavor, for flags and usage lines.
func Flavors() []Flavor { return []Flavor{GEP3779, Istio, Linkerd} }

// ParseFlavor parses a flavor name (case-insensitive).
func ParseFlavor(s string) (Flavor, error) {
	for _, f := range Flavors() {
		if strings.EqualFold(s, string(f)) {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown policy flavor %q (want one of %v)", s, Flavors())
}

// Options carry what a translation needs beyond the policy.
type Options struct {
	// TrustDomain of workload identities (default DefaultTrustDomain):
	// Istio principals and Linkerd identities are spelled with it.
	TrustDomain string
	// RootNamespace is Istio's root namespace, where cluster-scope
	// policies live (default DefaultRootNamespace).
	RootNamespace string
	// Workloads are the fixture's workloads: a Linkerd Server names one
	// port, so the Linkerd flavor makes one per port of the workloads the
	// policy selects (none selected: the standard echo ports).
	Workloads []mp.Workload
}

// Defaults.
const (
	DefaultTrustDomain   = "cluster.local"
	DefaultRootNamespace = "istio-system"
)

func (o Options) td() string {
	if o.TrustDomain == "" {
		return DefaultTrustDomain
	}
	return o.TrustDomain
}

func (o Options) root() string {
	if o.RootNamespace == "" {
		return DefaultRootNamespace
	}
	return o.RootNamespace
}

// Labels on every translated object, so that a driver can find (and
// delete) what one policy produced.
const (
	// PolicyLabel's value is PolicyLabelValue(p.Ref()).
	PolicyLabel = "meshtranslate.gauntlet.dev/policy"
	// SharedLabel marks an object several policies may produce identically
	// (Linkerd Servers: Linkerd refuses two Servers with the same port and
	// pod selector). Such an object has no PolicyLabel: delete it only
	// when no remaining policy's translation still contains it.
	SharedLabel = "meshtranslate.gauntlet.dev/shared"
	// ManagedByLabel is app.kubernetes.io/managed-by=gauntlet.
	ManagedByLabel = "app.kubernetes.io/managed-by"
)

// PolicyLabelValue is the PolicyLabel value for a policy: its name, or a
// hash of it when the name is not a valid label value.
func PolicyLabelValue(r mp.PolicyRef) string {
	if len(r.Name) <= 63 && !strings.ContainsAny(r.Name, "/ ") {
		return r.Name
	}
	return "h-" + shortHash(r.Name, 16)
}

// Translate returns the objects that express p in flavor f, in the order to
// create them (referenced objects first). Namespaced objects carry their
// namespace; for a cluster-scope policy that is the flavor's (Istio: the
// root namespace; GEP3779: none, ClusterAuthorizationPolicy is
// cluster-scoped).
func Translate(p mp.Policy, f Flavor, o Options) ([]*unstructured.Unstructured, error) {
	switch f {
	case GEP3779:
		return translateGEP(p, o)
	case Istio:
		return translateIstio(p, o)
	case Linkerd:
		return translateLinkerd(p, o)
	}
	return nil, fmt.Errorf("unknown policy flavor %q (want one of %v)", f, Flavors())
}

// UnsupportedError says that a flavor's API cannot express part of a
// policy. It is the translator's limit, not the API refusing the policy: a
// driver must not report it as a *meshpolicy.RejectedError.
type UnsupportedError struct {
	Flavor Flavor
	Policy string
	// What is the construct the flavor cannot express, and why.
	What string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("%s cannot express policy %s: %s", e.Flavor, e.Policy, e.What)
}

// IsUnsupported reports whether err is an *UnsupportedError.
func IsUnsupported(err error) (*UnsupportedError, bool) {
	var u *UnsupportedError
	return u, errors.As(err, &u)
}

func unsupported(f Flavor, p mp.Policy, format string, args ...any) error {
	return &UnsupportedError{Flavor: f, Policy: p.String(), What: fmt.Sprintf(format, args...)}
}

// object builds an unstructured object with gauntlet's labels.
func object(apiVersion, kind, namespace, name string, labels map[string]string, spec map[string]any) *unstructured.Unstructured {
	meta := map[string]any{"name": name}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	l := map[string]any{ManagedByLabel: "gauntlet"}
	for k, v := range labels {
		l[k] = v
	}
	meta["labels"] = l
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       kind,
		"metadata":   meta,
		"spec":       spec,
	}}
}

func policyLabels(p mp.Policy) map[string]string {
	return map[string]string{PolicyLabel: PolicyLabelValue(p.Ref())}
}

// matchLabels renders a selector's labels for unstructured content.
func matchLabels(s *mp.Selector) map[string]any {
	out := map[string]any{}
	if s != nil {
		for k, v := range s.MatchLabels {
			out[k] = v
		}
	}
	return out
}

func shortHash(s string, n int) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:n]
}

// isPodRef reports whether a targetRef names pods (core group).
func isPodRef(t mp.TargetRef) bool {
	return t.Kind == "Pod" && (t.Group == "" || t.Group == "core")
}

// saNamespace is a service-account source's namespace: its own, or the
// policy's when empty (GEP-3779).
func saNamespace(sa *mp.ServiceAccount, policyNS string) string {
	if sa.Namespace != "" {
		return sa.Namespace
	}
	return policyNS
}
