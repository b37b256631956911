package kubeapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
)

// jwt builds an unsigned compact token around a payload; DecodeClaims never
// looks at the header or the signature.
func jwt(t *testing.T, payload any) string {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","kid":"k"}`)) + "." + enc(b) + ".c2ln"
}

func TestDecodeClaims(t *testing.T) {
	t.Parallel()
	podBound := map[string]any{
		"iss": "https://kubernetes.default.svc.cluster.local", "sub": "system:serviceaccount:ns1:sa1",
		"aud": []string{"gauntlet-registry", "other"}, "jti": "id-1", "iat": 1000, "nbf": 1000, "exp": 1600,
		"kubernetes.io": map[string]any{
			"namespace":      "ns1",
			"pod":            map[string]string{"name": "p1", "uid": "pod-uid"},
			"serviceaccount": map[string]string{"name": "sa1", "uid": "sa-uid"},
			"node":           map[string]string{"name": "n1", "uid": "node-uid"},
			"warnafter":      1200,
		},
	}
	tests := []struct {
		name    string
		token   string
		want    Claims
		wantErr string
	}{
		{
			name:  "pod-bound token",
			token: jwt(t, podBound),
			want: Claims{
				Issuer: "https://kubernetes.default.svc.cluster.local", Subject: "system:serviceaccount:ns1:sa1",
				Audience: []string{"gauntlet-registry", "other"}, ID: "id-1",
				IssuedAt: time.Unix(1000, 0).UTC(), NotBefore: time.Unix(1000, 0).UTC(), Expiry: time.Unix(1600, 0).UTC(),
				Namespace: "ns1", ServiceAccountName: "sa1", ServiceAccountUID: "sa-uid", PodName: "p1", PodUID: "pod-uid",
				NodeName: "n1", NodeUID: "node-uid", WarnAfter: time.Unix(1200, 0).UTC(),
			},
		},
		{
			name:  "aud as a single string, no private claim",
			token: jwt(t, map[string]any{"sub": "x", "aud": "one"}),
			want:  Claims{Subject: "x", Audience: []string{"one"}},
		},
		{name: "two parts", token: "a.b", wantErr: "3"},
		{name: "payload not base64url", token: "a.!!!.c", wantErr: "base64url"},
		{name: "payload not JSON", token: "a." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".c", wantErr: "payload"},
		{name: "aud a number", token: jwt(t, map[string]any{"aud": 7}), wantErr: "aud"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeClaims(tt.token)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodeClaims error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
				t.Fatalf("DecodeClaims =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

// uidOnCreate makes the fake clientset assign a fresh UID to every created
// object, as the API server does.
func uidOnCreate(cs *fake.Clientset) {
	var n atomic.Int64
	cs.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "" {
			return false, nil, nil
		}
		obj := a.(k8stesting.CreateAction).GetObject().(metav1.Object)
		obj.SetUID(types.UID(fmt.Sprintf("uid-%d", n.Add(1))))
		return false, nil, nil
	})
}

func TestPodToken(t *testing.T) {
	t.Parallel()
	pod := TokenRequest{Namespace: "ns", ServiceAccount: "sa", PodName: "p", PodUID: "pu"}
	withAud := pod
	withAud.Audiences, withAud.ExpirationSeconds = []string{"gauntlet-registry"}, 600
	noUID := pod
	noUID.PodUID = ""
	tests := []struct {
		name      string
		req       TokenRequest
		serverErr error
		want      authenticationv1.TokenRequestSpec
		wantErr   string
	}{
		{
			name: "audience and expiry",
			req:  withAud,
			want: authenticationv1.TokenRequestSpec{Audiences: []string{"gauntlet-registry"}, ExpirationSeconds: ptr(int64(600)),
				BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "p", UID: "pu"}},
		},
		{
			name: "server defaults",
			req:  pod,
			want: authenticationv1.TokenRequestSpec{
				BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "p", UID: "pu"}},
		},
		{name: "no pod UID", req: noUID, wantErr: "pod UID"},
		{name: "server refuses", req: pod, serverErr: apierrors.NewForbidden(schema.GroupResource{Resource: "serviceaccounts"}, "sa", errors.New("no")), wantErr: "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cs := fake.NewClientset()
			var got *authenticationv1.TokenRequest
			var gotNS, gotSA string
			exp := time.Unix(5000, 0)
			cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() != "token" {
					return false, nil, nil
				}
				if tt.serverErr != nil {
					return true, nil, tt.serverErr
				}
				ca := a.(k8stesting.CreateActionImpl)
				got = ca.GetObject().(*authenticationv1.TokenRequest).DeepCopy()
				gotNS, gotSA = ca.GetNamespace(), ca.Name
				resp := got.DeepCopy()
				resp.Status = authenticationv1.TokenRequestStatus{Token: "tok", ExpirationTimestamp: metav1.NewTime(exp)}
				return true, resp, nil
			})
			tok, err := New(cs).PodToken(context.Background(), tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("PodToken error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.Token != "tok" || !tok.Expiration.Equal(exp) {
				t.Fatalf("PodToken = %+v", tok)
			}
			if gotNS != tt.req.Namespace || gotSA != tt.req.ServiceAccount {
				t.Fatalf("request went to %s/%s, want %s/%s", gotNS, gotSA, tt.req.Namespace, tt.req.ServiceAccount)
			}
			if !reflect.DeepEqual(got.Spec, tt.want) {
				t.Fatalf("request spec = %+v, want %+v", got.Spec, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestReviewToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    authenticationv1.TokenReviewStatus
		serverErr error
		want      Review
		wantErr   bool
	}{
		{
			name: "authenticated",
			status: authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"gauntlet-registry"},
				User: authenticationv1.UserInfo{Username: "system:serviceaccount:ns:sa", UID: "u", Groups: []string{"g"},
					Extra: map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"p"}}}},
			want: Review{Authenticated: true, Username: "system:serviceaccount:ns:sa", UID: "u", Groups: []string{"g"},
				Audiences: []string{"gauntlet-registry"}, Extra: map[string][]string{"authentication.kubernetes.io/pod-name": {"p"}}},
		},
		{
			name:   "rejected is not an error",
			status: authenticationv1.TokenReviewStatus{Error: "token audiences are invalid"},
			want:   Review{Error: "token audiences are invalid"},
		},
		{name: "server error", serverErr: errors.New("boom"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cs := fake.NewClientset()
			var asked *authenticationv1.TokenReview
			cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if tt.serverErr != nil {
					return true, nil, tt.serverErr
				}
				asked = a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
				resp := asked.DeepCopy()
				resp.Status = tt.status
				return true, resp, nil
			})
			got, err := New(cs).ReviewToken(context.Background(), "tok", []string{"gauntlet-registry"})
			if tt.wantErr {
				if err == nil {
					t.Fatal("ReviewToken: no error from a failing server")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if asked.Spec.Token != "tok" || !slices.Equal(asked.Spec.Audiences, []string{"gauntlet-registry"}) {
				t.Fatalf("review asked %+v", asked.Spec)
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
				t.Fatalf("ReviewToken = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNamespaceLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs := fake.NewClientset()
	uidOnCreate(cs)
	// The first name clashes: CreateNamespace must pick another.
	clashes := 1
	cs.PrependReactor("create", "namespaces", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if clashes > 0 {
			clashes--
			return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "namespaces"}, "x")
		}
		return false, nil, nil
	})
	c := New(cs)
	var names []string
	for range 2 {
		ns, err := c.CreateNamespace(ctx, "gauntlet-test-")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ns, "gauntlet-test-") || len(ns) != len("gauntlet-test-")+8 {
			t.Fatalf("namespace name %q: want gauntlet-test- and 8 hex digits", ns)
		}
		names = append(names, ns)
	}
	if names[0] == names[1] || !slices.Equal(c.Namespaces(), names) {
		t.Fatalf("created %v, tracked %v", names, c.Namespaces())
	}
	if _, err := c.CreateServiceAccount(ctx, names[0], "sa", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreatePod(ctx, names[0], "p", "sa"); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if left := c.Namespaces(); len(left) != 0 {
		t.Fatalf("still tracked after Cleanup: %v", left)
	}
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, _ := cs.CoreV1().Pods(names[0]).List(ctx, metav1.ListOptions{})
	sas, _ := cs.CoreV1().ServiceAccounts(names[0]).List(ctx, metav1.ListOptions{})
	if len(list.Items)+len(pods.Items)+len(sas.Items) != 0 {
		t.Fatalf("left after Cleanup: %d namespaces, %d pods, %d service accounts", len(list.Items), len(pods.Items), len(sas.Items))
	}
}

func TestCreatePod(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset()
	uidOnCreate(cs)
	pod, err := New(cs).CreatePod(context.Background(), "ns", "p", "sa")
	if err != nil {
		t.Fatal(err)
	}
	// Bound tokens need the pod's UID and its service account.
	if pod.UID == "" || pod.Spec.ServiceAccountName != "sa" || pod.Spec.NodeName != "" ||
		len(pod.Spec.Containers) != 1 || pod.Spec.Containers[0].Image != PlaceholderImage {
		t.Fatalf("pod %+v", pod)
	}
}

func TestRecreateServiceAccount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		sameUID bool
		missing bool
		wantErr string
	}{
		{name: "new UID, same annotations"},
		{name: "UID unchanged is an error", sameUID: true, wantErr: "old UID"},
		{name: "absent service account", missing: true, wantErr: "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cs := fake.NewClientset()
			if tt.sameUID {
				cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
					a.(k8stesting.CreateAction).GetObject().(*corev1.ServiceAccount).UID = "same"
					return false, nil, nil
				})
			} else {
				uidOnCreate(cs)
			}
			c := New(cs)
			ann := map[string]string{"eks.amazonaws.com/ecr-role-arn": "arn:aws:iam::1:role/r"}
			var old *corev1.ServiceAccount
			if !tt.missing {
				var err error
				if old, err = c.CreateServiceAccount(ctx, "ns", "sa", ann); err != nil {
					t.Fatal(err)
				}
			}
			sa, err := c.RecreateServiceAccount(ctx, "ns", "sa")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("RecreateServiceAccount error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sa.UID == old.UID || sa.UID == "" || sa.Annotations["eks.amazonaws.com/ecr-role-arn"] != ann["eks.amazonaws.com/ecr-role-arn"] {
				t.Fatalf("recreated %+v from %+v", sa.ObjectMeta, old.ObjectMeta)
			}
		})
	}
}

func TestCallDeadline(t *testing.T) {
	t.Parallel()
	soon, cancelSoon := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelSoon()
	tests := []struct {
		name    string
		ctx     context.Context
		timeout time.Duration
		max     time.Duration
	}{
		{name: "default", ctx: context.Background(), max: DefaultCallTimeout},
		{name: "CallTimeout", ctx: context.Background(), timeout: time.Second, max: time.Second},
		{name: "caller's shorter deadline", ctx: soon, timeout: time.Minute, max: 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(fake.NewClientset())
			c.CallTimeout = tt.timeout
			ctx, cancel := c.call(tt.ctx)
			defer cancel()
			dl, ok := ctx.Deadline()
			if left := time.Until(dl); !ok || left > tt.max || left < tt.max-time.Second {
				t.Fatalf("deadline in %v (set %v), want about %v", left, ok, tt.max)
			}
		})
	}
}

// TestHungServer: against a server that accepts requests and never answers,
// every call ends at CallTimeout instead of hanging the test.
func TestHungServer(t *testing.T) {
	t.Parallel()
	// The server notices a client hang-up only once it has read the body;
	// stop releases the handlers so that srv.Close, which waits for them,
	// returns.
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	c := New(cs)
	c.CallTimeout = 200 * time.Millisecond
	ctx := context.Background()
	calls := []struct {
		name string
		call func() error
	}{
		{"CreateNamespace", func() error { _, err := c.CreateNamespace(ctx, ""); return err }},
		{"CreateServiceAccount", func() error { _, err := c.CreateServiceAccount(ctx, "ns", "sa", nil); return err }},
		{"CreatePod", func() error { _, err := c.CreatePod(ctx, "ns", "p", "sa"); return err }},
		{"PodToken", func() error {
			_, err := c.PodToken(ctx, TokenRequest{Namespace: "ns", ServiceAccount: "sa", PodName: "p", PodUID: "u"})
			return err
		}},
		{"ReviewToken", func() error { _, err := c.ReviewToken(ctx, "t", nil); return err }},
		{"DeleteNamespace", func() error { return c.DeleteNamespace(ctx, "ns") }},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			err := tc.call()
			if err == nil || time.Since(start) > 5*time.Second {
				t.Fatalf("%s against a hung server: err %v after %v, want an error within a few CallTimeouts", tc.name, err, time.Since(start))
			}
		})
	}
}

func TestConnect(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/version" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"major":"1","minor":"37","gitVersion":"v1.37.2"}`)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	write := func(name, server string) string {
		p := filepath.Join(dir, name)
		kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: " + server +
			"\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n"
		if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A port nothing listens on: a closed listener's.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	tests := []struct {
		name       string
		kubeconfig string
		wantErr    string
	}{
		{name: "answers", kubeconfig: write("ok", srv.URL)},
		{name: "no file", kubeconfig: filepath.Join(dir, "missing"), wantErr: "missing"},
		{name: "empty path", kubeconfig: "", wantErr: "empty"},
		{name: "nothing listening", kubeconfig: write("closed", closed), wantErr: "does not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Connect(tt.kubeconfig)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Connect error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.Clientset() == nil {
				t.Fatalf("Connect = %v, %v", c, err)
			}
		})
	}
}
