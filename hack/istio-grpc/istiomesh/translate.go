package istiomesh

import (
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/internal/meshtranslate"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// translate is the one translation a user of the Kubernetes driver gets
// too: meshtranslate's Istio flavor (security.istio.io/v1
// AuthorizationPolicy; cluster scope in the root namespace).
func translate(p mp.Policy, td, root string) ([]*unstructured.Unstructured, error) {
	return meshtranslate.Translate(p, meshtranslate.Istio, meshtranslate.Options{TrustDomain: td, RootNamespace: root})
}
