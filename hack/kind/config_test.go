// Package kind checks hack/kind's cluster config with kind's own config
// types (sigs.k8s.io/kind v0.33.0), in its own module so that kind stays
// out of gauntlet's go.mod. Run: cd hack/kind && go test ./...
package kind

import (
	"os"
	"testing"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

func TestClusterConfigParses(t *testing.T) {
	b, err := os.ReadFile("cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c v1alpha4.Cluster
	// Strict: a misspelt field is an error, as kind's own loader makes it.
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		t.Fatalf("cluster.yaml does not parse as kind's v1alpha4 Cluster: %v", err)
	}
	if c.Kind != "Cluster" || c.APIVersion != "kind.x-k8s.io/v1alpha4" {
		t.Fatalf("kind %q apiVersion %q, want Cluster kind.x-k8s.io/v1alpha4", c.Kind, c.APIVersion)
	}
	v1alpha4.SetDefaultsCluster(&c)
	roles := map[v1alpha4.NodeRole]int{}
	for _, n := range c.Nodes {
		roles[n.Role]++
		if n.Image == "" {
			t.Errorf("node %s has no image after kind's defaults", n.Role)
		}
	}
	if roles[v1alpha4.ControlPlaneRole] != 1 || roles[v1alpha4.WorkerRole] < 1 {
		t.Errorf("nodes %v: want one control plane and at least one worker (server and client pods on different nodes)", roles)
	}
	if c.Networking.DisableDefaultCNI {
		t.Error("the default CNI is disabled: nothing would give pods a network")
	}
	if c.Networking.IPFamily != v1alpha4.IPv4Family {
		t.Errorf("ipFamily %q, want ipv4", c.Networking.IPFamily)
	}
	if c.Networking.PodSubnet == "" || c.Networking.ServiceSubnet == "" {
		t.Errorf("kind's defaults left subnets empty: %+v", c.Networking)
	}
}

// The same decoder must refuse a misspelt field, or the test above proves
// nothing.
func TestStrictDecodingCatchesTypos(t *testing.T) {
	bad := []byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- rol: worker\n")
	var c v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(bad, &c); err == nil {
		t.Fatal("a misspelt field parsed")
	}
}
