package meshkube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/internal/meshtranslate"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// TestRealAPIServer drives the driver against a real kube-apiserver (the
// one hack/k8s/with-apiserver.sh starts: no scheduler, controller manager
// or kubelet; `make test-k8s-meshdriver`). Deploy and DeployClient write
// their objects and then report, within the convergence bound, that
// nothing becomes ready, saying why; an exec goes through the real
// pods/exec endpoint and fails the way it must for an unscheduled pod;
// policies go through gauntlet's GEP-3779 CRDs (internal/meshtranslate),
// the server accepting valid ones and rejecting invalid ones itself;
// Cleanup leaves no namespace and no policy object.
func TestRealAPIServer(t *testing.T) {
	kubeconfig := os.Getenv("GAUNTLET_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("GAUNTLET_KUBECONFIG is not set: run `make test-k8s-meshdriver` (hack/k8s/with-apiserver.sh)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	dc := dynamic.NewForConfigOrDie(cfg)
	cs := kubernetes.NewForConfigOrDie(cfg)
	suffix := make([]byte, 3)
	rand.Read(suffix)
	prefix := "h4-" + hex.EncodeToString(suffix) + "-"
	const bound = 3 * time.Second
	opts := Options{Kubeconfig: kubeconfig, ReadyBound: bound, PollInterval: 200 * time.Millisecond,
		NamespacePrefix: prefix, FinalizeNamespaces: true, CleanupWait: 30 * time.Second, ExecOverhead: 10 * time.Second}

	t.Run("no-policy-api", func(t *testing.T) {
		_, err := New(ctx, cfg, opts)
		if err == nil || !strings.Contains(err.Error(), "no supported policy API") || !strings.Contains(err.Error(), meshtranslate.GEPGroup) {
			t.Fatalf("New with no policy CRD installed: %v", err)
		}
		o := opts
		o.API = meshtranslate.Istio
		if _, err := New(ctx, cfg, o); err == nil || !strings.Contains(err.Error(), "security.istio.io") {
			t.Fatalf("New with --mesh-api istio and no Istio CRD: %v", err)
		}
	})

	installCRDs(ctx, t, dc, meshtranslate.GEPCRDs(meshtranslate.ExtendedCRDs))

	start := time.Now()
	d, err := New(ctx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("connected and detected %s in %s: %s", d.Flavor(), time.Since(start).Round(time.Millisecond), d.Name())
	if d.Flavor() != meshtranslate.GEP3779 {
		t.Fatalf("flavor %s, want gep3779 (the only one installed)", d.Flavor())
	}
	cleaned := false
	t.Cleanup(func() {
		if !cleaned {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			d.Cleanup(ctx)
		}
	})

	w := mp.Workload{Namespace: prefix + "ma01", Name: "server", ServiceAccount: "server",
		Labels: map[string]string{"app": "server", "gauntlet.dev/check": "ma01"}, Ports: mp.StandardPorts()}
	cli := mp.Identity{Namespace: prefix + "cli", ServiceAccount: "allowed"}

	t.Run("deploy", func(t *testing.T) {
		start := time.Now()
		err := d.Deploy(ctx, w)
		el := time.Since(start)
		t.Logf("Deploy: %v (after %s)", err, el.Round(time.Millisecond))
		if err == nil {
			t.Fatal("Deploy converged on an API server without controllers or nodes")
		}
		for _, want := range []string{"not converged within 3s", "no pod was created", "kube-controller-manager"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Deploy error lacks %q", want)
			}
		}
		if el > bound+5*time.Second {
			t.Errorf("Deploy took %s with a %s bound", el, bound)
		}
		dep, err := cs.AppsV1().Deployments(w.Namespace).Get(ctx, "server", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if dep.Spec.Template.Spec.ServiceAccountName != "server" || dep.Spec.Template.Labels["app"] != "server" ||
			dep.Spec.Template.Spec.Containers[0].Image != DefaultEchoImage {
			t.Errorf("deployment as stored: %+v", dep.Spec.Template)
		}
		svc, err := cs.CoreV1().Services(w.Namespace).Get(ctx, "server", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == "None" || len(svc.Spec.Ports) != 3 {
			t.Errorf("service as stored: %+v", svc.Spec)
		}
		head, err := cs.CoreV1().Services(w.Namespace).Get(ctx, "server"+headlessSuffix, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if head.Spec.ClusterIP != "None" || !head.Spec.PublishNotReadyAddresses {
			t.Errorf("headless service as stored: %+v", head.Spec)
		}
		if _, err := cs.CoreV1().ServiceAccounts(w.Namespace).Get(ctx, "server", metav1.GetOptions{}); err != nil {
			t.Error(err)
		}
		// Idempotent: the same objects again (server-side apply), same verdict.
		if err := d.Deploy(ctx, w); err == nil {
			t.Error("second Deploy converged")
		}
	})

	t.Run("deploy-client", func(t *testing.T) {
		for _, id := range []mp.Identity{cli, {}} {
			err := d.DeployClient(ctx, id)
			t.Logf("DeployClient %s: %v", id, err)
			if err == nil || !strings.Contains(err.Error(), "not scheduled") {
				t.Errorf("DeployClient %s: %v, want a not-scheduled convergence error", id, err)
			}
		}
		p, err := cs.CoreV1().Pods(cli.Namespace).Get(ctx, "client-allowed", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.ServiceAccountName != "allowed" {
			t.Errorf("client pod runs as %q", p.Spec.ServiceAccountName)
		}
		out, err := cs.CoreV1().Pods(prefix+outsideMeshNamespace).Get(ctx, "client-no-identity", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if out.Annotations[istioSidecarInject] != "false" || out.Annotations[linkerdInjectAnnot] != "disabled" {
			t.Errorf("outside-mesh client annotations %v", out.Annotations)
		}
	})

	t.Run("exec-through-the-api-server", func(t *testing.T) {
		// The real pods/exec endpoint (WebSocket, SPDY fallback): the
		// server refuses it, for the pod has no node; Do says so, fast.
		start := time.Now()
		_, err := d.Do(ctx, mp.Request{From: cli, To: w.Ref(), Protocol: mp.HTTP, Port: mp.HTTPPort, Nonce: "n1", Timeout: time.Second})
		t.Logf("Do: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
		if err == nil || !strings.Contains(err.Error(), "exec mesh-echo request in "+cli.Namespace+"/client-allowed") {
			t.Fatalf("Do against an unscheduled client pod: %v", err)
		}
		if el := time.Since(start); el > 15*time.Second {
			t.Errorf("Do took %s", el)
		}
		if _, err := d.Probe(ctx, w.Ref()); err == nil || !strings.Contains(err.Error(), "no running pod") {
			t.Errorf("Probe with no running server pod: %v", err)
		}
	})

	gepGVR := schema.GroupVersionResource{Group: meshtranslate.GEPGroup, Version: meshtranslate.GEPVersion, Resource: "authorizationpolicies"}
	clusterGVR := gepGVR
	clusterGVR.Resource = "clusterauthorizationpolicies"
	valid := mp.Policy{Name: "allow-one", Namespace: w.Namespace, Action: mp.Allow, EnforcementLevel: mp.Network,
		TargetRefs: []mp.TargetRef{mp.PodSelector(map[string]string{"app": "server"})},
		Rules:      []mp.Rule{{Sources: []mp.Source{mp.SA(cli.Namespace, "allowed")}, Ports: []int{mp.HTTPPort}}}}

	t.Run("apply-status-delete", func(t *testing.T) {
		if err := d.Apply(ctx, valid); err != nil {
			t.Fatalf("a valid policy: %v", err)
		}
		got, err := dc.Resource(gepGVR).Namespace(w.Namespace).Get(ctx, valid.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if lvl, _, _ := unstructured.NestedString(got.Object, "spec", "enforcementLevel"); lvl != "Network" {
			t.Errorf("stored policy: %v", got.Object["spec"])
		}
		// Re-apply: idempotent.
		if err := d.Apply(ctx, valid); err != nil {
			t.Fatalf("re-apply: %v", err)
		}
		st, err := d.Status(ctx, valid.Ref())
		if err != nil || st.Reported {
			t.Fatalf("status with no controller: %+v, %v; want not reported", st, err)
		}
		// A mesh's controller writes the GEP's PolicyStatus.
		status := map[string]any{"status": map[string]any{"ancestors": []any{map[string]any{
			"controllerName": "example.com/mesh",
			"conditions": []any{map[string]any{"type": "Accepted", "status": "True", "reason": "Accepted",
				"message": "enforced", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}},
		}}}}
		b, _ := json.Marshal(status)
		if _, err := dc.Resource(gepGVR).Namespace(w.Namespace).Patch(ctx, valid.Name, types.MergePatchType, b, metav1.PatchOptions{}, "status"); err != nil {
			t.Fatal(err)
		}
		st, err = d.Status(ctx, valid.Ref())
		if err != nil || !st.Reported || !st.Accepted || st.Reason != "Accepted" {
			t.Fatalf("status after the controller wrote Accepted: %+v, %v", st, err)
		}
		deny := valid
		deny.Name, deny.Action = "deny-one", mp.Deny
		if err := d.Apply(ctx, deny); err != nil {
			t.Errorf("DENY on the extended CRD: %v", err)
		}
		if err := d.Delete(ctx, valid.Ref()); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.Resource(gepGVR).Namespace(w.Namespace).Get(ctx, valid.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("after Delete: %v, want NotFound", err)
		}
		if err := d.Delete(ctx, valid.Ref()); err != nil {
			t.Errorf("second Delete: %v", err)
		}
		if _, err := d.Status(ctx, valid.Ref()); err == nil {
			t.Error("Status of a deleted policy succeeded")
		}
	})

	t.Run("server-rejects", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			edit func(p *mp.Policy)
			msg  string
		}{
			{"two-pod-targets", func(p *mp.Policy) {
				p.TargetRefs = append(p.TargetRefs, mp.PodSelector(map[string]string{"app": "other"}))
			}, meshtranslate.MsgPodRefAlone},
			{"spiffe-without-scheme", func(p *mp.Policy) {
				p.Rules = []mp.Rule{{Sources: []mp.Source{mp.SPIFFE("cluster.local/ns/x/sa/y")}}}
			}, "spiffe"},
			{"missing-enforcement-level", func(p *mp.Policy) { p.EnforcementLevel = "" }, "enforcementLevel"},
		} {
			p := valid
			p.Name = tc.name
			tc.edit(&p)
			err := d.Apply(ctx, p)
			rej, ok := mp.IsRejected(err)
			if !ok {
				t.Errorf("%s: %v, want a *RejectedError", tc.name, err)
				continue
			}
			t.Logf("%s: %s", tc.name, rej.Reason)
			if !strings.Contains(rej.Reason, tc.msg) {
				t.Errorf("%s: reason %q lacks %q", tc.name, rej.Reason, tc.msg)
			}
			if _, err := dc.Resource(gepGVR).Namespace(w.Namespace).Get(ctx, p.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("%s: a rejected policy left an object: %v", tc.name, err)
			}
		}
	})

	cluster := mp.Policy{Name: prefix + "admin-deny", Scope: mp.ClusterScope, Action: mp.Deny, EnforcementLevel: mp.Network,
		TargetRefs: []mp.TargetRef{mp.PodSelector(map[string]string{"gauntlet.dev/check": "mx28"})},
		Rules:      []mp.Rule{{Sources: []mp.Source{mp.SA(cli.Namespace, "denied")}}}}
	t.Run("cluster-scope", func(t *testing.T) {
		if err := d.Apply(ctx, cluster); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.Resource(clusterGVR).Get(ctx, cluster.Name, metav1.GetOptions{}); err != nil {
			t.Fatalf("cluster policy not stored: %v", err)
		}
		// Left applied: Cleanup must delete it (it lives in no namespace).
	})

	t.Run("cleanup", func(t *testing.T) {
		nss := d.Namespaces()
		if len(nss) != 3 {
			t.Errorf("driver namespaces %v, want 3 (ma01, cli, outside-mesh)", nss)
		}
		start := time.Now()
		err := d.Cleanup(ctx)
		cleaned = true
		t.Logf("Cleanup: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range nss {
			if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("namespace %s after Cleanup: %v", ns, err)
			}
		}
		all, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: DriverLabel + "=meshkube"})
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range all.Items {
			if strings.HasPrefix(ns.Name, prefix) {
				t.Errorf("namespace %s left (%s)", ns.Name, ns.Status.Phase)
			}
		}
		if _, err := dc.Resource(clusterGVR).Get(ctx, cluster.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("cluster policy after Cleanup: %v", err)
		}
	})
}

// installCRDs creates CRDs, waits until they are served, and deletes them
// when the test ends.
func installCRDs(ctx context.Context, t *testing.T, dc dynamic.Interface, crds []*unstructured.Unstructured) {
	t.Helper()
	for _, crd := range crds {
		if _, err := dc.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("install CRD %s: %v", crd.GetName(), err)
		}
		name := crd.GetName()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := dc.Resource(crdGVR).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete CRD %s: %v", name, err)
			}
		})
		err := await(ctx, "CRD "+name, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
			got, err := dc.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, c := range conds {
				if m, _ := c.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
					return true, "", nil
				}
			}
			return false, "not established", nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
