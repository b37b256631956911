package meshtranslate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/gauntlet-conformance/gauntlet/internal/kubeapi"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// Environment of TestRealAPIServer (make test-k8s-meshapi sets both).
const (
	envKubeconfig = "GAUNTLET_KUBECONFIG"
	// envIstioCRDs is the path of istio.io/api's
	// kubernetes/customresourcedefinitions.gen.yaml in the Go module cache
	// (upstream YAML is read where it lies, never committed).
	envIstioCRDs = "GAUNTLET_ISTIO_CRDS"
	// envLinkerdCRDs, optional, is a file with Linkerd's policy CRDs
	// (e.g. `linkerd install --crds` output, where Linkerd is at hand).
	envLinkerdCRDs = "GAUNTLET_LINKERD_CRDS"
)

// linkerdBlocked is why the Linkerd half runs on golden files only (unless
// GAUNTLET_LINKERD_CRDS names a file).
const linkerdBlocked = envLinkerdCRDs + " is not set; blocked in CI: no offline source of Linkerd's CRDs — the Go module proxy answers 403 for github.com/linkerd/linkerd2, " +
	"npm has no package with them (@kubernetes-models/linkerd, linkerd-crds, linkerd2: 404) and Debian packages no linkerd; " +
	"the Linkerd translations are golden-tested only"

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// resources maps the kinds Translate writes to their resources.
var resources = map[schema.GroupKind]string{
	{Group: GEPGroup, Kind: GEPKind}:                 "authorizationpolicies",
	{Group: GEPGroup, Kind: GEPClusterKind}:          "clusterauthorizationpolicies",
	{Group: "security.istio.io", Kind: IstioKind}:    "authorizationpolicies",
	{Group: LinkerdGroup, Kind: LinkerdServer}:       "servers",
	{Group: LinkerdGroup, Kind: LinkerdAuthzPolicy}:  "authorizationpolicies",
	{Group: LinkerdGroup, Kind: LinkerdMeshTLSAuthn}: "meshtlsauthentications",
	{Group: LinkerdGroup, Kind: LinkerdNetworkAuthn}: "networkauthentications",
}

// extraInvalid are GEP-invalid policies beyond MX29's, one per CEL rule of
// the CRD that MX29 does not reach (message: the rule's).
func extraInvalid() []policyCase {
	base := func(name string) mp.Policy {
		return nsPolicy("extra", name, mp.Allow, app("server"), from(mp.SA("cli", "allowed")))
	}
	return []policyCase{
		{name: "pod-ref-with-name", gepReject: MsgPodRefShape, p: edit(base("pod-ref-with-name"), func(p *mp.Policy) { p.TargetRefs[0].Name = "server-0" })},
		{name: "service-ref-without-name", gepReject: MsgNamedRef, istioReject: "spec.targetRefs[0].name: Required value", p: edit(base("service-ref-without-name"), func(p *mp.Policy) {
			p.TargetRefs = []mp.TargetRef{{Kind: "Service"}}
		})},
		{name: "sa-source-with-spiffe", gepReject: MsgSAOnly, p: edit(base("sa-source-with-spiffe"), func(p *mp.Policy) {
			s := mp.SA("cli", "allowed")
			s.SPIFFE = "spiffe://" + testTD + "/ns/cli/sa/allowed"
			p.Rules = []mp.Rule{from(s)}
		})},
		{name: "spiffe-source-without-id", gepReject: MsgSPIFFEOnly, p: edit(base("spiffe-source-without-id"), func(p *mp.Policy) {
			p.Rules = []mp.Rule{from(mp.Source{Type: mp.SPIFFESource})}
		})},
		{name: "bad-sa-name", gepReject: MsgSAName, p: edit(base("bad-sa-name"), func(p *mp.Policy) { p.Rules = []mp.Rule{from(mp.SA("cli", "Not_A_Name"))} })},
		{name: "port-zero", gepReject: "should be greater than or equal to 1", p: edit(base("port-zero"), func(p *mp.Policy) { p.Rules[0].Ports = []int{0} })},
		{name: "no-targets", gepReject: "spec.targetRefs: Invalid value", p: edit(base("no-targets"), func(p *mp.Policy) { p.TargetRefs = nil })},
		{name: "cluster-sa-without-namespace", gepReject: MsgClusterSANS, extended: true, coreReject: msgNoClusterKind,
			p: clusterPolicy("extra-cluster-sa", mp.Allow, mp.PodSelector(nil), mp.SA("", "allowed"))},
	}
}

// TestRealAPIServer installs gauntlet's GEP-3779 CRDs and Istio's real
// AuthorizationPolicy CRD into a real kube-apiserver (make
// test-k8s-meshapi) and has the server judge every translation with a
// server-side dry-run create: each valid policy accepted, each MX29 invalid
// one rejected by the server itself with the CRD's message, DENY and the
// cluster kind rejected by the core-only bundle and accepted by the
// extended one.
func TestRealAPIServer(t *testing.T) {
	kubeconfig := os.Getenv(envKubeconfig)
	if kubeconfig == "" {
		t.Skip(envKubeconfig + " is not set: run `make test-k8s-meshapi` (a real API server, then this test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	kc, err := kubeapi.Connect(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 30 * time.Second
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := kc.CreateNamespace(ctx, "gauntlet-meshapi-")
	if err != nil {
		t.Fatal(err)
	}
	var installed []string
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, name := range installed {
			if err := dc.Resource(crdGVR).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete CRD %s: %v", name, err)
			}
		}
		if err := kc.Cleanup(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	install := func(t *testing.T, crds []*unstructured.Unstructured) {
		t.Helper()
		for _, crd := range crds {
			start := time.Now()
			if err := applyCRD(ctx, dc, crd); err != nil {
				t.Fatal(err)
			}
			if !contains(installed, crd.GetName()) {
				installed = append(installed, crd.GetName())
			}
			t.Logf("CRD %s established after %s", crd.GetName(), time.Since(start).Round(time.Millisecond))
		}
	}
	o := testOptions()
	o.RootNamespace = ns // Istio's cluster-scope policies: into the test namespace
	cases := append(policyCases(), extraInvalid()...)
	// judge dry-run creates every object of a translation and checks the
	// server's verdict: wantErr empty means accepted.
	judge := func(t *testing.T, c policyCase, f Flavor, wantErr string) {
		t.Helper()
		objs, err := Translate(c.p, f, o)
		if err != nil {
			t.Fatalf("translate: %v", err)
		}
		for _, obj := range objs {
			err := dryRunCreate(ctx, dc, obj, ns)
			switch {
			case wantErr == "" && err != nil:
				t.Errorf("%s %s: the API server rejected a valid policy: %v", obj.GetKind(), obj.GetName(), err)
			case wantErr != "" && err == nil:
				t.Errorf("%s %s: the API server accepted it, want a rejection containing %q", obj.GetKind(), obj.GetName(), wantErr)
			case wantErr != "" && !strings.Contains(err.Error(), wantErr):
				t.Errorf("%s %s: rejected with %q, want a message containing %q", obj.GetKind(), obj.GetName(), err, wantErr)
			case wantErr != "":
				t.Logf("rejected by the server: %v", err)
			}
		}
	}

	t.Run("gep3779-core", func(t *testing.T) {
		install(t, GEPCRDs(CoreCRDs))
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				want := c.gepReject
				if c.extended {
					want = c.coreReject
				}
				judge(t, c, GEP3779, want)
			})
		}
	})
	t.Run("gep3779-extended", func(t *testing.T) {
		install(t, GEPCRDs(ExtendedCRDs))
		// The server swaps a CRD's schema shortly after the update is
		// established: wait until DENY passes (bounded) before judging.
		deny := nsPolicy("x", "deny-probe", mp.Deny, app("server"), from(mp.SA("cli", "allowed")))
		objs, _ := Translate(deny, GEP3779, o)
		start := time.Now()
		var last error
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			last = dryRunCreate(ctx, dc, objs[0], ns)
			return last == nil, nil
		}); err != nil {
			t.Fatalf("the extended CRD still rejects DENY after 30 s: %v", last)
		}
		t.Logf("extended schema served after %s", time.Since(start).Round(time.Millisecond))
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) { judge(t, c, GEP3779, c.gepReject) })
		}
	})
	t.Run("istio", func(t *testing.T) {
		path := os.Getenv(envIstioCRDs)
		if path == "" {
			t.Fatalf("%s is not set: the path of istio.io/api@v1.32.0's kubernetes/customresourcedefinitions.gen.yaml "+
				"(make test-k8s-meshapi resolves it with go mod download in hack/meshapi)", envIstioCRDs)
		}
		crds, err := crdsOfKind(path, "security.istio.io", IstioKind)
		if err != nil {
			t.Fatal(err)
		}
		install(t, crds)
		accepted := 0
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if _, err := Translate(c.p, Istio, o); err != nil {
					if _, ok := IsUnsupported(err); !ok {
						t.Fatal(err)
					}
					t.Skipf("not expressible in Istio: %v", err)
				}
				if c.istioReject == "" {
					accepted++
				}
				judge(t, c, Istio, c.istioReject)
			})
		}
		t.Logf("Istio's CRD accepted %d translations", accepted)
	})
	t.Run("linkerd", func(t *testing.T) {
		path := os.Getenv(envLinkerdCRDs)
		if path == "" {
			t.Skip(linkerdBlocked)
		}
		var crds []*unstructured.Unstructured
		for _, kind := range []string{LinkerdServer, LinkerdAuthzPolicy, LinkerdMeshTLSAuthn, LinkerdNetworkAuthn} {
			c, err := crdsOfKind(path, LinkerdGroup, kind)
			if err != nil {
				t.Fatal(err)
			}
			crds = append(crds, c...)
		}
		install(t, crds)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if _, err := Translate(c.p, Linkerd, o); err != nil {
					if _, ok := IsUnsupported(err); !ok {
						t.Fatal(err)
					}
					t.Skipf("not expressible in Linkerd: %v", err)
				}
				// Linkerd's CRDs validate shape only (identities moved to
				// its admission webhook, which no API server here runs).
				judge(t, c, Linkerd, "")
			})
		}
	})
}

// dryRunCreate creates obj with dryRun=All (in namespace ns when it is
// namespaced): validated and admitted by the server, never stored.
func dryRunCreate(ctx context.Context, dc dynamic.Interface, obj *unstructured.Unstructured, ns string) error {
	gvk := obj.GroupVersionKind()
	res, ok := resources[gvk.GroupKind()]
	if !ok {
		return fmt.Errorf("no resource known for %s", gvk)
	}
	gvr := gvk.GroupVersion().WithResource(res)
	obj = obj.DeepCopy()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opts := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}
	if obj.GetNamespace() == "" && gvk.Kind == GEPClusterKind {
		_, err := dc.Resource(gvr).Create(ctx, obj, opts)
		return err
	}
	obj.SetNamespace(ns)
	_, err := dc.Resource(gvr).Namespace(ns).Create(ctx, obj, opts)
	return err
}

// applyCRD creates or updates a CRD and waits until it is Established.
func applyCRD(ctx context.Context, dc dynamic.Interface, crd *unstructured.Unstructured) error {
	c := dc.Resource(crdGVR)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := c.Create(cctx, crd, metav1.CreateOptions{FieldValidation: "Strict"})
	if apierrors.IsAlreadyExists(err) {
		var cur *unstructured.Unstructured
		if cur, err = c.Get(cctx, crd.GetName(), metav1.GetOptions{}); err == nil {
			upd := crd.DeepCopy()
			upd.SetResourceVersion(cur.GetResourceVersion())
			_, err = c.Update(cctx, upd, metav1.UpdateOptions{FieldValidation: "Strict"})
		}
	}
	if err != nil {
		return fmt.Errorf("install CRD %s: %w", crd.GetName(), err)
	}
	var last *unstructured.Unstructured
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := c.Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = got
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		status := "no status"
		if last != nil {
			s, _, _ := unstructured.NestedFieldNoCopy(last.Object, "status")
			status = fmt.Sprint(s)
		}
		return fmt.Errorf("CRD %s not Established within 30 s: %v (%s)", crd.GetName(), err, status)
	}
	return nil
}

// crdsOfKind reads a multi-document CRD file and returns the CRDs of
// group/kind.
func crdsOfKind(path, group, kind string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		u := &unstructured.Unstructured{Object: m}
		if m == nil || u.GetKind() != "CustomResourceDefinition" {
			continue
		}
		g, _, _ := unstructured.NestedString(m, "spec", "group")
		k, _, _ := unstructured.NestedString(m, "spec", "names", "kind")
		if g == group && k == kind {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, errors.New(path + ": no CRD of " + kind + "." + group)
	}
	return out, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
