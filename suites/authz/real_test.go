package authz_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/suites/authz"
)

// TestRealChain runs AZ06–AZ12 against a real kube-apiserver started with
// the configuration of a running `gauntlet authz-webhooks` (what
// hack/authz/conformance.sh sets up): GAUNTLET_KUBECONFIG (the admin
// kubeconfig hack/k8s/apiserver up prints), GAUNTLET_AUTHZ_WEBHOOKS_DIR and,
// for the start-up cases, GAUNTLET_KUBE_APISERVER (the binary).
func TestRealChain(t *testing.T) {
	kc, dir := os.Getenv("GAUNTLET_KUBECONFIG"), os.Getenv("GAUNTLET_AUTHZ_WEBHOOKS_DIR")
	if kc == "" || dir == "" {
		t.Skip("set GAUNTLET_KUBECONFIG and GAUNTLET_AUTHZ_WEBHOOKS_DIR (hack/authz/conformance.sh does) to run the chain checks against a real kube-apiserver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	chain, _, err := authz.RealChain(ctx, kc, dir, os.Getenv("GAUNTLET_KUBE_APISERVER"))
	if err != nil {
		t.Fatal(err)
	}
	tgt := conformance.Target{Name: chain.Name, Settings: authz.Settings{Chain: chain}}
	rep, err := conformance.Run(ctx, authz.Suite, tgt, conformance.RunOptions{Select: func(i conformance.Info) bool { return i.ID >= "AZ06" }})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Status == conformance.Filtered {
			continue
		}
		if r.Status != conformance.Passed {
			t.Errorf("%s: %s: %s", r.Title(), r.Status, r.Message)
		}
		if !strings.HasPrefix(r.Target, "kube-apiserver ") {
			t.Errorf("%s reported against %q", r.ID, r.Target)
		}
	}
}
