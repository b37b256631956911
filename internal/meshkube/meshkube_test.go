package meshkube

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/internal/testimages"
)

func appsStatus(gen int64) appsv1.DeploymentStatus {
	return appsv1.DeploymentStatus{ObservedGeneration: gen, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
}

var (
	server = mp.Workload{Namespace: "ma01", Name: "server", ServiceAccount: "server",
		Labels: map[string]string{"app": "server", "gauntlet.dev/check": "ma01"}, Ports: mp.StandardPorts()}
	allowed = mp.Identity{Namespace: "cli", ServiceAccount: "allowed"}
	denied  = mp.Identity{Namespace: "cli", ServiceAccount: "denied"}
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// deployed is a fake cluster with the server and three clients deployed.
func deployed(t *testing.T) (*fakeCluster, *Driver) {
	t.Helper()
	f := newFakeCluster(t, true)
	d := f.driver(t, Options{NamespacePrefix: "g-", ProbeWait: 500 * time.Millisecond})
	ctx := ctxT(t)
	if err := d.Deploy(ctx, server); err != nil {
		t.Fatal(err)
	}
	for _, id := range []mp.Identity{allowed, denied, {}} {
		if err := d.DeployClient(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	return f, d
}

func TestDeployCreatesTheFixture(t *testing.T) {
	f, d := deployed(t)
	ctx := ctxT(t)
	ns, err := f.cs.CoreV1().Namespaces().Get(ctx, "ma01", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Labels[CreatedByLabel] != "gauntlet" || ns.Labels[istioInjectLabel] != "enabled" || ns.Annotations[linkerdInjectAnnot] != "enabled" {
		t.Errorf("namespace labels %v annotations %v", ns.Labels, ns.Annotations)
	}
	dep, err := f.cs.AppsV1().Deployments("ma01").Get(ctx, "server", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tpl := dep.Spec.Template
	if tpl.Labels["app"] != "server" || tpl.Labels["gauntlet.dev/check"] != "ma01" || tpl.Labels[WorkloadLabel] != "server" ||
		dep.Spec.Selector.MatchLabels[WorkloadLabel] != "server" || tpl.Spec.ServiceAccountName != "server" {
		t.Errorf("deployment %+v", dep.Spec)
	}
	c := tpl.Spec.Containers[0]
	if c.Image != DefaultEchoImage || c.Command[0] != EchoBinary || strings.Join(c.Args[:2], " ") != "mesh-echo serve" ||
		c.ReadinessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Port.IntValue() != mp.HTTPPort {
		t.Errorf("echo container %+v", c)
	}
	svc, err := f.cs.CoreV1().Services("ma01").Get(ctx, "server", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int32]int{}
	for _, p := range svc.Spec.Ports {
		got[p.Port] = p.TargetPort.IntValue()
	}
	if got[80] != 8080 || got[90] != 9090 || got[70] != 7070 || len(got) != 3 {
		t.Errorf("service ports %v", got)
	}
	head, err := f.cs.CoreV1().Services("ma01").Get(ctx, "server"+headlessSuffix, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if head.Spec.ClusterIP != corev1.ClusterIPNone || len(head.Spec.Ports) != 3 || head.Spec.Ports[0].Port != 8080 {
		t.Errorf("headless service %+v", head.Spec)
	}
	// The client outside the mesh.
	out, err := f.cs.CoreV1().Pods("g-outside-mesh").Get(ctx, "client-no-identity", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Labels[istioSidecarInject] != "false" || out.Annotations[istioSidecarInject] != "false" || out.Annotations[linkerdInjectAnnot] != "disabled" {
		t.Errorf("outside-mesh client labels %v annotations %v", out.Labels, out.Annotations)
	}
	cli, err := f.cs.CoreV1().Pods("cli").Get(ctx, "client-allowed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cli.Spec.ServiceAccountName != "allowed" || cli.Annotations[linkerdInjectAnnot] != "" {
		t.Errorf("client pod %+v", cli.ObjectMeta)
	}
	if got := d.Namespaces(); strings.Join(got, " ") != "cli g-outside-mesh ma01" {
		t.Errorf("namespaces %v", got)
	}
	// Idempotent.
	if err := d.Deploy(ctx, server); err != nil {
		t.Fatal(err)
	}
	if err := d.DeployClient(ctx, allowed); err != nil {
		t.Fatal(err)
	}
}

func TestDo(t *testing.T) {
	f, d := deployed(t)
	ctx := ctxT(t)
	f.deny("cli", "client-denied", true)
	for _, tc := range []struct {
		name string
		from mp.Identity
		p    mp.Protocol
		port int
		via  bool
		ok   bool
	}{
		{"http", allowed, mp.HTTP, 8080, false, true},
		{"tcp", allowed, mp.TCP, 9090, false, true},
		{"grpc", allowed, mp.GRPC, 7070, false, true},
		{"http-service", allowed, mp.HTTP, 80, true, true},
		{"tcp-service", allowed, mp.TCP, 90, true, true},
		{"no-identity", mp.Identity{}, mp.HTTP, 8080, false, true},
		{"http-denied", denied, mp.HTTP, 8080, false, false},
		{"tcp-denied", denied, mp.TCP, 9090, false, false},
		{"grpc-denied", denied, mp.GRPC, 7070, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mp.Request{From: tc.from, To: server.Ref(), Protocol: tc.p, Port: tc.port, ViaService: tc.via,
				Nonce: "n-" + tc.name, Timeout: 2 * time.Second}
			o, err := d.Do(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if o.ServerSaw != tc.ok {
				t.Errorf("%s: %s, want server saw=%v", r, o, tc.ok)
			}
			switch {
			case tc.ok && tc.p == mp.HTTP:
				if o.HTTPStatus != 200 || !strings.Contains(o.Body, r.Nonce) {
					t.Errorf("%s: %s", r, o)
				}
			case tc.ok && tc.p == mp.TCP:
				if strings.TrimSpace(o.Data) != "echo "+r.Nonce {
					t.Errorf("%s: %s", r, o)
				}
			case tc.ok:
				if o.GRPCCode != "OK" {
					t.Errorf("%s: %s", r, o)
				}
			case tc.p == mp.GRPC:
				if o.GRPCCode != "Unavailable" {
					t.Errorf("%s: %s, want Unavailable", r, o)
				}
			default:
				if o.Err != mp.ErrRefused {
					t.Errorf("%s: %s, want refused", r, o)
				}
			}
		})
	}
	for _, bad := range []mp.Request{
		{From: allowed, To: server.Ref(), Protocol: mp.HTTP, Port: 9090, Nonce: "x"},
		{From: allowed, To: server.Ref(), Protocol: mp.HTTP, Port: 8080, ViaService: true, Nonce: "x"},
		{From: mp.Identity{Namespace: "cli", ServiceAccount: "nobody"}, To: server.Ref(), Protocol: mp.HTTP, Port: 8080, Nonce: "x"},
		{From: allowed, To: mp.WorkloadRef{Namespace: "ma01", Name: "nope"}, Protocol: mp.HTTP, Port: 8080, Nonce: "x"},
	} {
		if o, err := d.Do(ctx, bad); err == nil {
			t.Errorf("%s: %s, want a driver error", bad, o)
		}
	}
}

func TestOpen(t *testing.T) {
	f, d := deployed(t)
	ctx := ctxT(t)
	r := mp.Request{From: allowed, To: server.Ref(), Protocol: mp.TCP, Port: 9090, Nonce: "open-1", Timeout: 2 * time.Second}
	c, err := d.Open(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, l := range []string{"open-1", "line-2"} {
		ectx, cancel := context.WithTimeout(ctx, 2*time.Second)
		got, err := c.Echo(ectx, l)
		cancel()
		if err != nil || got != "echo "+l {
			t.Fatalf("Echo(%s) = %q, %v", l, got, err)
		}
	}
	if saw, err := d.saw(ctx, server.Ref(), "open-1"); err != nil || !saw {
		t.Errorf("server saw the open connection's nonce: %v, %v", saw, err)
	}
	f.cut()
	ectx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = c.Echo(ectx, "after-cut")
	cancel()
	if class := mp.Classify(err); class != mp.ErrReset && class != mp.ErrEOF {
		t.Errorf("Echo after the connection was cut: %v (class %q), want reset or EOF", err, class)
	}
	if _, err2 := c.Echo(ctx, "again"); err2 == nil {
		t.Error("Echo on a broken connection succeeded")
	}
	// A refused dial is Open's error, classified.
	f.deny("cli", "client-denied", true)
	r.From = denied
	if c, err := d.Open(ctx, r); err == nil || mp.Classify(err) != mp.ErrRefused {
		if c != nil {
			c.Close()
		}
		t.Errorf("Open from a refused client: %v (class %q), want refused", err, mp.Classify(err))
	}
	r.Protocol, r.Port = mp.HTTP, 8080
	if _, err := d.Open(ctx, r); err == nil {
		t.Error("Open on an HTTP port succeeded")
	}
}

func TestProbe(t *testing.T) {
	f, d := deployed(t)
	ctx := ctxT(t)
	o, err := d.Probe(ctx, server.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if o.HTTPStatus != http.StatusOK || !o.ServerSaw {
		t.Errorf("probe with the kubelet probing: %s", o)
	}
	f.mu.Lock()
	f.noProbe = true
	f.mu.Unlock()
	time.Sleep(100 * time.Millisecond) // a probe in flight lands before the count
	o, err = d.Probe(ctx, server.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if o.HTTPStatus != 0 || o.ServerSaw || o.Err != mp.ErrTimeout || !strings.Contains(o.Detail, "no kubelet probe") {
		t.Errorf("probe with probes blocked: %s", o)
	}
}

func TestRelabel(t *testing.T) {
	f, d := deployed(t)
	ctx := ctxT(t)
	if err := d.Relabel(ctx, server.Ref(), map[string]string{"app": "moved", "gauntlet.dev/check": "ma01"}); err != nil {
		t.Fatal(err)
	}
	p, err := f.cs.CoreV1().Pods("ma01").Get(ctx, "server-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Labels["app"] != "moved" || p.Labels[WorkloadLabel] != "server" {
		t.Errorf("labels after relabel: %v", p.Labels)
	}
	if err := d.Relabel(ctx, mp.WorkloadRef{Namespace: "ma01", Name: "nope"}, nil); err == nil {
		t.Error("relabel of an unknown workload succeeded")
	}
}

func TestConvergenceTimeoutSaysWhy(t *testing.T) {
	f := newFakeCluster(t, false) // no kubelet, no controllers
	d := f.driver(t, Options{ReadyBound: 200 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	start := time.Now()
	err := d.Deploy(ctxT(t), server)
	if err == nil {
		t.Fatal("Deploy converged with nothing running")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Deploy took %s with a 200ms bound", el)
	}
	for _, want := range []string{"ma01/server", "not converged within 200ms", "no pod was created", "kube-controller-manager"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	err = d.DeployClient(ctxT(t), allowed)
	if err == nil || !strings.Contains(err.Error(), "not scheduled") {
		t.Errorf("DeployClient with no scheduler: %v", err)
	}
}

func TestForeignNamespaceIsRefused(t *testing.T) {
	f := newFakeCluster(t, true)
	ctx := ctxT(t)
	if _, err := f.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ma01"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := f.driver(t, Options{})
	err := d.Deploy(ctx, server)
	if err == nil || !strings.Contains(err.Error(), "not created by gauntlet") {
		t.Fatalf("Deploy into a foreign namespace: %v", err)
	}
	if err := d.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cs.CoreV1().Namespaces().Get(ctx, "ma01", metav1.GetOptions{}); err != nil {
		t.Errorf("Cleanup touched a namespace it did not create: %v", err)
	}
}

func TestCleanupDeletesItsNamespaces(t *testing.T) {
	f, d := deployed(t)
	ctx := ctxT(t)
	if err := d.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	nss, err := f.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nss.Items) != 0 {
		t.Errorf("namespaces left: %d (%s)", len(nss.Items), nss.Items[0].Name)
	}
	if err := d.Cleanup(ctx); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
}

func TestRejection(t *testing.T) {
	gr := schema.GroupResource{Group: "gep3779.gauntlet.dev", Resource: "authorizationpolicies"}
	webhook := &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 403,
		Reason: metav1.StatusReasonForbidden, Message: `admission webhook "validation.istio.io" denied the request: configuration is invalid`}}
	vap := &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 403,
		Reason: metav1.StatusReasonForbidden, Message: `authorizationpolicies "x" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: no`}}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"invalid", apierrors.NewInvalid(schema.GroupKind{Group: gr.Group, Kind: "AuthorizationPolicy"}, "x",
			field.ErrorList{field.Invalid(field.NewPath("spec", "targetRefs"), "x", "at most one Pod target")}), true},
		{"bad-request", apierrors.NewBadRequest(`strict decoding error: unknown field "spec.foo"`), true},
		{"webhook", webhook, true},
		{"vap", vap, true},
		{"rbac", apierrors.NewForbidden(gr, "x", errors.New(`User "u" cannot create resource`)), false},
		{"not-found", apierrors.NewNotFound(gr, "x"), false},
		{"timeout", apierrors.NewTimeoutError("slow", 1), false},
		{"plain", errors.New("connection refused"), false},
	} {
		rej, ok := rejection(tc.err)
		if ok != tc.want {
			t.Errorf("%s: rejection = %v, want %v", tc.name, ok, tc.want)
		}
		if ok && rej.Reason == "" {
			t.Errorf("%s: empty reason", tc.name)
		}
	}
}

func TestStatusOf(t *testing.T) {
	cond := func(status, reason string) map[string]any {
		return map[string]any{"type": "Accepted", "status": status, "reason": reason, "message": "m"}
	}
	obj := func(status map[string]any) *unstructured.Unstructured {
		o := &unstructured.Unstructured{Object: map[string]any{}}
		if status != nil {
			o.Object["status"] = status
		}
		return o
	}
	for _, tc := range []struct {
		name string
		o    *unstructured.Unstructured
		want mp.PolicyStatus
	}{
		{"none", obj(nil), mp.PolicyStatus{}},
		{"conditions", obj(map[string]any{"conditions": []any{cond("True", "Accepted")}}), mp.PolicyStatus{Reported: true, Accepted: true, Reason: "Accepted", Message: "m"}},
		{"ancestors", obj(map[string]any{"ancestors": []any{
			map[string]any{"conditions": []any{cond("True", "Accepted")}},
			map[string]any{"conditions": []any{cond("False", "Invalid")}},
		}}), mp.PolicyStatus{Reported: true, Accepted: false, Reason: "Invalid", Message: "m"}},
		{"other-types", obj(map[string]any{"conditions": []any{map[string]any{"type": "Reconciled", "status": "True"}}}), mp.PolicyStatus{}},
	} {
		if got := statusOf(tc.o); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestAwaitNeedsThreeConsecutive(t *testing.T) {
	var seq = []bool{true, true, false, true, true, true}
	i := 0
	err := await(context.Background(), "x", 5*time.Second, time.Millisecond, func(context.Context) (bool, string, error) {
		ok := seq[i]
		i++
		return ok, "flapped", nil
	})
	if err != nil || i != len(seq) {
		t.Errorf("await: %v after %d observations, want success after %d", err, i, len(seq))
	}
	err = await(context.Background(), "x", 50*time.Millisecond, 10*time.Millisecond, func(context.Context) (bool, string, error) {
		return false, "nope", nil
	})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("await on a never-true observation: %v", err)
	}
}

func TestDefaultImageIsWhatHackImagesBuilds(t *testing.T) {
	if DefaultEchoImage != testimages.MeshEchoRef {
		t.Errorf("DefaultEchoImage %q, hack/images --mesh-echo builds %q", DefaultEchoImage, testimages.MeshEchoRef)
	}
}
