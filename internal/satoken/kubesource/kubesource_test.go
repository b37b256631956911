package kubesource

import (
	"context"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gauntlet-conformance/gauntlet/internal/kubeapi"
	"github.com/gauntlet-conformance/gauntlet/internal/satoken"
)

// The source creates one namespace/SA/pod per subject, asks TokenRequest
// for a pod-bound token with the claims' audience, and cleans up.
func TestSourceAgainstFakeClientset(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset()
	var got []*authenticationv1.TokenRequest
	cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		got = append(got, tr)
		tr.Status.Token = "tok-" + tr.Spec.BoundObjectRef.Name
		return true, tr, nil
	})
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		a.(k8stesting.CreateAction).GetObject().(*corev1.Pod).UID = "pod-uid-1" // the fake assigns none
		return false, nil, nil
	})
	s := FromClient(kubeapi.New(cs), "fake")
	ctx := context.Background()
	for range 2 {
		tok, err := s.Token(ctx, satoken.Claims{Namespace: "gauntlet", ServiceAccount: "puller", PodName: "app-0", Audience: []string{"sts.amazonaws.com"}})
		if err != nil {
			t.Fatal(err)
		}
		if tok != "tok-app-0" {
			t.Fatalf("token %q", tok)
		}
	}
	if len(got) != 2 || got[0].Spec.Audiences[0] != "sts.amazonaws.com" || got[0].Spec.BoundObjectRef.Kind != "Pod" {
		t.Fatalf("token requests: %+v", got)
	}
	if n := len(s.c.Namespaces()); n != 1 {
		t.Fatalf("%d namespaces for one subject", n)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(s.c.Namespaces()); n != 0 {
		t.Fatalf("%d namespaces left after Close", n)
	}
	if _, err := s.Token(ctx, satoken.Claims{Namespace: "gauntlet"}); err == nil {
		t.Fatal("a token without a service account was issued")
	}
}
