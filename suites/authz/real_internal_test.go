package authz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	apiv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
)

func TestReloadMetrics(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		body       string
		ok, failed int
	}{
		{"none yet", "# HELP x\nother_metric 3\n", 0, 0},
		{"both", reloadMetric + `{apiserver_id_hash="sha256:1",status="success"} 2` + "\n" +
			reloadMetric + `{apiserver_id_hash="sha256:1",status="failure"} 5` + "\n", 2, 5},
		{"two servers", reloadMetric + `{apiserver_id_hash="a",status="failure"} 1` + "\n" +
			reloadMetric + `{apiserver_id_hash="b",status="failure"} 1` + "\n", 0, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/metrics" {
					http.NotFound(w, r)
					return
				}
				w.Write([]byte(c.body))
			}))
			defer srv.Close()
			rc := &realConfig{host: srv.URL, http: srv.Client()}
			ok, failed, err := rc.Reloads(context.Background())
			if err != nil || ok != c.ok || failed != c.failed {
				t.Errorf("Reloads = %d, %d, %v; want %d, %d", ok, failed, err, c.ok, c.failed)
			}
		})
	}
}

// The invalid variants are derived from the reference configuration; each
// must change it (a no-op mutation would make AZ12 judge the valid file).
func TestVariantsChangeTheConfig(t *testing.T) {
	t.Parallel()
	base := []byte(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthorizationConfiguration
authorizers:
- type: Webhook
  name: authz-a
  webhook: {timeout: 1s, authorizedTTL: 3s, unauthorizedTTL: 1s, subjectAccessReviewVersion: v1, failurePolicy: NoOpinion, connectionInfo: {type: KubeConfigFile, kubeConfigFile: /a}}
- type: Webhook
  name: authz-b
  webhook: {timeout: 1s, authorizedTTL: 3s, unauthorizedTTL: 1s, subjectAccessReviewVersion: v1, matchConditionSubjectAccessReviewVersion: v1, failurePolicy: Deny, connectionInfo: {type: KubeConfigFile, kubeConfigFile: /b}, matchConditions: [{expression: "true"}]}
- type: Webhook
  name: authz-c
  webhook: {timeout: 1s, authorizedTTL: 3s, unauthorizedTTL: 1s, subjectAccessReviewVersion: v1, failurePolicy: NoOpinion, connectionInfo: {type: KubeConfigFile, kubeConfigFile: /c}}
`)
	same, err := derive(base, func(*apiv1.AuthorizationConfiguration) {})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range variants {
		b, err := derive(base, v.mutate)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if string(b) == string(same) {
			t.Errorf("%s does not change the configuration", v.name)
		}
	}
}
