package kubesource

import (
	"context"
	"fmt"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
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

// Bind creates a subject's objects once, hands back the server's UIDs,
// recreates the service account or pod when the caller's UID for it
// changes, updates changed annotations in place, and Token then asks for
// exactly the bound identities.
func TestBindAgainstFakeClientset(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset()
	var (
		n        int
		requests []*authenticationv1.TokenRequest
		creates  []string
	)
	cs.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch o := a.(k8stesting.CreateAction).GetObject().(type) {
		case *authenticationv1.TokenRequest:
			tr := o.DeepCopy()
			requests = append(requests, tr)
			tr.Status.Token = "tok"
			return true, tr, nil
		case *corev1.Pod:
			n++
			o.UID = types.UID(fmt.Sprintf("pod-uid-%d", n)) // the fake assigns none
			creates = append(creates, "pod "+o.Name)
		case *corev1.ServiceAccount:
			n++
			o.UID = types.UID(fmt.Sprintf("sa-uid-%d", n))
			creates = append(creates, "sa "+o.Name)
		}
		return false, nil, nil
	})
	s := FromClient(kubeapi.New(cs), "fake")
	ctx := context.Background()
	bind := func(sub satoken.Subject) satoken.Subject {
		t.Helper()
		got, err := s.Bind(ctx, sub)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	a := bind(satoken.Subject{Namespace: "gauntlet-s01", ServiceAccount: "a", ServiceAccountUID: "mine-1",
		Annotations: map[string]string{"role": "r"}, PodName: "pod-1", PodUID: "mine-p1"})
	if !strings.HasPrefix(a.Namespace, "gauntlet-s01-") || a.ServiceAccountUID != "sa-uid-1" || a.PodUID != "pod-uid-2" {
		t.Fatalf("bound %+v", a)
	}
	static := bind(satoken.Subject{Namespace: "gauntlet-s01", PodName: "static", PodUID: "mine-static"})
	if static.Namespace != a.Namespace || static.PodUID != "mine-static" {
		t.Fatalf("a static pod bound as %+v", static)
	}
	if again := bind(satoken.Subject{Namespace: "gauntlet-s01", ServiceAccount: "a", ServiceAccountUID: "mine-1",
		Annotations: map[string]string{"role": "r"}, PodName: "pod-1", PodUID: "mine-p1"}); fmt.Sprint(again) != fmt.Sprint(a) {
		t.Fatalf("binding the same subject again gave %+v, want %+v", again, a)
	}
	if len(creates) != 2 {
		t.Fatalf("creates %q, want one service account and one pod", creates)
	}
	// Changed annotations: same service account, updated.
	bind(satoken.Subject{Namespace: "gauntlet-s01", ServiceAccount: "a", ServiceAccountUID: "mine-1",
		Annotations: map[string]string{"role": "w"}, PodName: "pod-1", PodUID: "mine-p1"})
	sa, err := cs.CoreV1().ServiceAccounts(a.Namespace).Get(ctx, "a", metav1.GetOptions{})
	if err != nil || sa.Annotations["role"] != "w" || sa.UID != "sa-uid-1" {
		t.Fatalf("after an annotation change: %v %v", sa, err)
	}
	// Recreated by the caller: a new service account and pod UID.
	re := bind(satoken.Subject{Namespace: "gauntlet-s01", ServiceAccount: "a", ServiceAccountUID: "mine-2",
		PodName: "pod-1", PodUID: "mine-p2"})
	if re.ServiceAccountUID == a.ServiceAccountUID || re.PodUID == a.PodUID {
		t.Fatalf("recreated subject kept its UIDs: %+v", re)
	}
	if _, err := s.Token(ctx, satoken.Claims{Namespace: re.Namespace, ServiceAccount: "a", ServiceAccountUID: re.ServiceAccountUID,
		PodName: "pod-1", PodUID: re.PodUID, Audience: []string{"aud"}}); err != nil {
		t.Fatal(err)
	}
	tr := requests[len(requests)-1]
	if tr.UID != types.UID(re.ServiceAccountUID) || tr.Spec.BoundObjectRef.UID != types.UID(re.PodUID) || tr.Namespace != "" && tr.Namespace != re.Namespace {
		t.Fatalf("token request %+v for %+v", tr, re)
	}
	if n := len(s.c.Namespaces()); n != 1 {
		t.Fatalf("%d namespaces, want the bound one only", n)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bind(ctx, satoken.Subject{Namespace: "x", ServiceAccount: "a"}); err == nil {
		t.Fatal("a service account without a pod was bound")
	}
}

// A service account the cluster made itself (the "default" of every
// namespace, with a service account controller running) is taken over with
// the annotations asked for, not an error.
func TestBindAdoptsControllerServiceAccount(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset()
	cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sa, ok := a.(k8stesting.CreateAction).GetObject().(*corev1.ServiceAccount)
		if !ok || sa.Name != "default" {
			return false, nil, nil
		}
		made := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: a.GetNamespace(), UID: "controller-uid"}}
		if err := cs.Tracker().Add(made); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewAlreadyExists(corev1.Resource("serviceaccounts"), "default")
	})
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		a.(k8stesting.CreateAction).GetObject().(*corev1.Pod).UID = "pod-uid"
		return false, nil, nil
	})
	s := FromClient(kubeapi.New(cs), "fake")
	ctx := context.Background()
	got, err := s.Bind(ctx, satoken.Subject{Namespace: "gauntlet-s10", ServiceAccount: "default", ServiceAccountUID: "mine",
		Annotations: map[string]string{"role": "r"}, PodName: "pod", PodUID: "mine-pod"})
	if err != nil {
		t.Fatal(err)
	}
	if got.ServiceAccountUID != "controller-uid" || got.PodUID != "pod-uid" {
		t.Fatalf("bound %+v", got)
	}
	sa, err := cs.CoreV1().ServiceAccounts(got.Namespace).Get(ctx, "default", metav1.GetOptions{})
	if err != nil || sa.Annotations["role"] != "r" {
		t.Fatalf("adopted service account %v, %v: want the annotations set", sa, err)
	}
}
