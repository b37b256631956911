// Package istioproto proves that the Istio flavor of internal/meshtranslate
// speaks Istio's own API types: every spec in its golden files unmarshals
// with protojson into istio.io/api security/v1beta1 AuthorizationPolicy
// (what Istio's authz builder, and so hack/istio-grpc, reads) and marshals
// back to the same JSON, so no field is unknown, misspelled or dropped.
// It lives in this tools module so that the main module does not depend on
// istio.io/api.
package istioproto

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	securityv1beta1 "istio.io/api/security/v1beta1"
	"sigs.k8s.io/yaml"
)

const golden = "../../../internal/meshtranslate/testdata/*.istio.golden.yaml"

func TestIstioSpecsAreIstioProtos(t *testing.T) {
	files, err := filepath.Glob(golden)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("%d golden files match %s: is the tree laid out as expected?", len(files), golden)
	}
	specs := 0
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, doc := range bytes.Split(data, []byte("\n---\n")) {
				var obj struct {
					APIVersion string         `json:"apiVersion"`
					Kind       string         `json:"kind"`
					Error      string         `json:"error"`
					Spec       map[string]any `json:"spec"`
				}
				if err := yaml.Unmarshal(doc, &obj); err != nil {
					t.Fatalf("document %d: %v", i, err)
				}
				if obj.Error != "" {
					t.Logf("an UnsupportedError, no object: %s", obj.Error)
					continue
				}
				if obj.APIVersion != "security.istio.io/v1" || obj.Kind != "AuthorizationPolicy" {
					t.Fatalf("document %d is %s %s", i, obj.APIVersion, obj.Kind)
				}
				in, err := json.Marshal(obj.Spec)
				if err != nil {
					t.Fatal(err)
				}
				var ap securityv1beta1.AuthorizationPolicy
				if err := protojson.Unmarshal(in, &ap); err != nil {
					t.Fatalf("document %d: protojson: %v\n%s", i, err, in)
				}
				out, err := protojson.Marshal(&ap)
				if err != nil {
					t.Fatal(err)
				}
				var back map[string]any
				if err := json.Unmarshal(out, &back); err != nil {
					t.Fatal(err)
				}
				want := obj.Spec
				if want["action"] == "ALLOW" { // the enum's zero value: protojson omits it
					delete(want, "action")
				}
				if back == nil {
					back = map[string]any{}
				}
				if !reflect.DeepEqual(back, want) {
					t.Errorf("document %d does not round-trip through the proto:\nin  %s\nout %s", i, in, out)
				}
				specs++
			}
		})
	}
	t.Logf("%d Istio specs round-trip", specs)
}
