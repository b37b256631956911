package kubesource

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/internal/satoken"
)

// TestRealAPIServerBind runs against a real kube-apiserver (GAUNTLET_KUBECONFIG,
// as `make test-k8s-tokens` sets it): Bind creates the subject, Token returns
// a TokenRequest token whose claims are exactly the bound pod and service
// account, TokenReview accepts it, and the server itself refuses a token for
// a stale pod UID and for the service account's old UID once the caller
// recreated it.
func TestRealAPIServerBind(t *testing.T) {
	kubeconfig := os.Getenv("GAUNTLET_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("GAUNTLET_KUBECONFIG is not set: run `make test-k8s-tokens` or start `hack/k8s/apiserver up`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := New(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	const aud = "registry.gauntlet.test/kubesource"
	want := satoken.Subject{Namespace: "gauntlet-kubesource", ServiceAccount: "puller", ServiceAccountUID: "caller-sa-1",
		Annotations: map[string]string{"gauntlet.test/role": "reader"}, PodName: "app-0", PodUID: "caller-pod-1"}
	got, err := s.Bind(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.Namespace, want.Namespace+"-") || got.PodUID == want.PodUID || got.ServiceAccountUID == want.ServiceAccountUID {
		t.Fatalf("bound %+v: want a generated namespace and the server's UIDs", got)
	}
	claims := func(sub satoken.Subject) satoken.Claims {
		return satoken.Claims{Namespace: sub.Namespace, ServiceAccount: sub.ServiceAccount, ServiceAccountUID: sub.ServiceAccountUID,
			PodName: sub.PodName, PodUID: sub.PodUID, Audience: []string{aud}}
	}
	tok, err := s.Token(ctx, claims(got))
	if err != nil {
		t.Fatal(err)
	}
	c, err := satoken.Decode(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Namespace != got.Namespace || c.ServiceAccount != "puller" || c.ServiceAccountUID != got.ServiceAccountUID ||
		c.PodName != "app-0" || c.PodUID != got.PodUID || len(c.Audience) != 1 || c.Audience[0] != aud {
		t.Fatalf("token claims %+v for bound subject %+v", c, got)
	}
	if err := s.Verify(ctx, tok, aud); err != nil {
		t.Fatal(err)
	}
	stale := got
	stale.PodUID = "00000000-0000-4000-8000-000000000000"
	if _, err := s.Token(ctx, claims(stale)); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("token for a stale pod UID: %v, want the server's UID conflict", err)
	}
	// The caller recreates the service account (a new caller UID): the
	// server gets a new one, and the old UID is refused.
	want.ServiceAccountUID, want.PodUID = "caller-sa-2", "caller-pod-2"
	again, err := s.Bind(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if again.ServiceAccountUID == got.ServiceAccountUID || again.PodUID == got.PodUID || again.Namespace != got.Namespace {
		t.Fatalf("recreated subject %+v, was %+v", again, got)
	}
	if _, err := s.Token(ctx, claims(again)); err != nil {
		t.Fatal(err)
	}
	old := again
	old.ServiceAccountUID = got.ServiceAccountUID
	if _, err := s.Token(ctx, claims(old)); err == nil {
		t.Fatal("a token for the service account's old UID was issued")
	} else {
		t.Logf("old service account UID refused: %v", err)
	}
}
