package kubeapi

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"
)

// TestRealAPIServer runs against a real kube-apiserver: the one
// `hack/k8s/apiserver up` starts (or `make test-k8s`), found through
// GAUNTLET_KUBECONFIG. It gets a pod-bound token for the registry audience
// the way a kubelet does for a credential provider, checks what the token
// claims, and has the API server's own TokenReview verify it; then it shows
// that the token dies with its service account (recreated: same name, new
// UID).
func TestRealAPIServer(t *testing.T) {
	kubeconfig := os.Getenv("GAUNTLET_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("GAUNTLET_KUBECONFIG is not set: start a real API server with `eval \"$(hack/k8s/apiserver up)\"` and export GAUNTLET_KUBECONFIG, or run `make test-k8s`")
	}
	issuer := os.Getenv("GAUNTLET_SA_ISSUER")
	if issuer == "" {
		issuer = "https://kubernetes.default.svc.cluster.local"
	}
	const audience = "gauntlet-registry"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, err := Connect(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := c.CreateNamespace(ctx, "gauntlet-kubeapi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Cleanup(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	const role = "arn:aws:iam::123456789012:role/gauntlet-puller"
	sa, err := c.CreateServiceAccount(ctx, ns, "puller", map[string]string{"eks.amazonaws.com/ecr-role-arn": role})
	if err != nil {
		t.Fatal(err)
	}
	if sa.UID == "" || sa.Annotations["eks.amazonaws.com/ecr-role-arn"] != role {
		t.Fatalf("service account as created: %+v", sa.ObjectMeta)
	}
	pod, err := c.CreatePod(ctx, ns, "consumer", sa.Name)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.PodToken(ctx, TokenRequest{Namespace: ns, ServiceAccount: sa.Name, PodName: pod.Name, PodUID: pod.UID,
		Audiences: []string{audience}, ExpirationSeconds: 600})
	if err != nil {
		t.Fatal(err)
	}

	claims, err := DecodeClaims(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("token claims: %+v", claims)
	user := ServiceAccountUsername(ns, sa.Name)
	checks := []struct {
		what      string
		got, want any
	}{
		{"iss", claims.Issuer, issuer},
		{"sub", claims.Subject, user},
		{"aud", claims.Audience, []string{audience}},
		{"namespace", claims.Namespace, ns},
		{"serviceaccount.name", claims.ServiceAccountName, sa.Name},
		{"serviceaccount.uid", claims.ServiceAccountUID, string(sa.UID)},
		{"pod.name", claims.PodName, pod.Name},
		{"pod.uid", claims.PodUID, string(pod.UID)},
		{"exp - iat", claims.Expiry.Sub(claims.IssuedAt), 600 * time.Second},
		{"exp = TokenRequest status", claims.Expiry.Equal(tok.Expiration), true},
	}
	for _, ck := range checks {
		if !equal(ck.got, ck.want) {
			t.Errorf("token claim %s = %v, want %v", ck.what, ck.got, ck.want)
		}
	}

	reviews := []struct {
		name      string
		token     string
		audiences []string
		wantAuth  bool
	}{
		{name: "registry audience", token: tok.Token, audiences: []string{audience}, wantAuth: true},
		{name: "other audience", token: tok.Token, audiences: []string{"someone-else"}},
		{name: "tampered token", token: tok.Token[:len(tok.Token)-4] + "AAAA", audiences: []string{audience}},
	}
	for _, rv := range reviews {
		t.Run("TokenReview/"+rv.name, func(t *testing.T) {
			r, err := c.ReviewToken(ctx, rv.token, rv.audiences)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("review: %+v", r)
			if r.Authenticated != rv.wantAuth {
				t.Fatalf("authenticated = %v (error %q), want %v", r.Authenticated, r.Error, rv.wantAuth)
			}
			if !rv.wantAuth {
				return
			}
			if r.Username != user || r.UID != string(sa.UID) || !slices.Equal(r.Audiences, []string{audience}) ||
				!slices.Contains(r.Groups, "system:serviceaccounts:"+ns) {
				t.Fatalf("review = %+v, want user %s uid %s audiences [%s]", r, user, sa.UID, audience)
			}
			if got := r.Extra["authentication.kubernetes.io/pod-name"]; !slices.Equal(got, []string{pod.Name}) {
				t.Errorf("extra pod-name = %v, want [%s]", got, pod.Name)
			}
			if got := r.Extra["authentication.kubernetes.io/pod-uid"]; !slices.Equal(got, []string{string(pod.UID)}) {
				t.Errorf("extra pod-uid = %v, want [%s]", got, pod.UID)
			}
		})
	}

	t.Run("recreated service account", func(t *testing.T) {
		sa2, err := c.RecreateServiceAccount(ctx, ns, sa.Name)
		if err != nil {
			t.Fatal(err)
		}
		if sa2.Annotations["eks.amazonaws.com/ecr-role-arn"] != role {
			t.Errorf("annotations lost on recreate: %v", sa2.Annotations)
		}
		// The old token names the old UID: the server must refuse it, but
		// only once its 10 s cache of successful token authentications
		// (TokenSuccessCacheTTL, no flag) has let go of it.
		start := time.Now()
		old := waitReview(ctx, t, c, tok.Token, audience, false, 30*time.Second)
		t.Logf("token of the deleted service account refused %v after the recreate: %s", time.Since(start).Round(100*time.Millisecond), old.Error)
		tok2, err := c.PodToken(ctx, TokenRequest{Namespace: ns, ServiceAccount: sa.Name, PodName: pod.Name, PodUID: pod.UID,
			Audiences: []string{audience}, ExpirationSeconds: 600})
		if err != nil {
			t.Fatal(err)
		}
		if c2, err := DecodeClaims(tok2.Token); err != nil || c2.ServiceAccountUID != string(sa2.UID) {
			t.Fatalf("new token claims %+v (%v), want service account uid %s", c2, err, sa2.UID)
		}
		// The authenticator reads service accounts from an informer cache,
		// which may lag the recreate for a moment.
		r := waitReview(ctx, t, c, tok2.Token, audience, true, 10*time.Second)
		if r.UID != string(sa2.UID) {
			t.Fatalf("new token: review %+v, want authenticated as uid %s", r, sa2.UID)
		}
	})
}

// waitReview reviews token until its Authenticated equals want, within limit.
func waitReview(ctx context.Context, t *testing.T, c *Client, token, audience string, want bool, limit time.Duration) Review {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r, err := c.ReviewToken(ctx, token, []string{audience})
		if err != nil {
			t.Fatal(err)
		}
		if r.Authenticated == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("token review still authenticated=%v after %v (want %v): %+v", r.Authenticated, limit, want, r)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func equal(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, ok := b.([]string)
		return ok && slices.Equal(as, bs)
	}
	return a == b
}
