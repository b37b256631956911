package meshtranslate

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml")

const testTD = "cluster.local"

// policyCase is one policy the meshauthz checks apply (suites/meshauthz
// checks_core.go and checks_ext.go, fixture namespaces without a prefix).
type policyCase struct {
	name string
	p    mp.Policy
	// gepReject is a substring of the API server's message when gauntlet's
	// GEP-3779 CRD must reject the policy (MX29); empty: accepted.
	gepReject string
	// extended: valid only with the extended CRD (DENY, cluster scope);
	// the core-only CRD must reject it with coreReject.
	extended   bool
	coreReject string
	// istioReject: Istio's own CRD must reject the Istio translation.
	istioReject string
}

// Helpers shaped like the suite's (suites/meshauthz/oracle.go).
func nsPolicy(ns, name string, a mp.Action, target mp.TargetRef, rules ...mp.Rule) mp.Policy {
	return mp.Policy{Name: name, Namespace: ns, TargetRefs: []mp.TargetRef{target}, Action: a, Rules: rules, EnforcementLevel: mp.Network}
}

func clusterPolicy(name string, a mp.Action, target mp.TargetRef, src mp.Source) mp.Policy {
	return mp.Policy{Name: name, Scope: mp.ClusterScope, TargetRefs: []mp.TargetRef{target}, Action: a,
		Rules: []mp.Rule{{Sources: []mp.Source{src}}}, EnforcementLevel: mp.Network}
}

func app(name string) mp.TargetRef { return mp.PodSelector(map[string]string{"app": name}) }

func from(srcs ...mp.Source) mp.Rule {
	if len(srcs) == 0 {
		return mp.Rule{}
	}
	return mp.Rule{Sources: srcs}
}

func withPorts(r mp.Rule, ports ...int) mp.Rule { r.Ports = ports; return r }

func edit(p mp.Policy, f func(*mp.Policy)) mp.Policy { f(&p); return p }

// Messages of gauntlet's CRD (hack/meshapi/crds) and of the API server.
const (
	msgSelectorNotPod = MsgSelectorNotPod
	msgSPIFFE         = MsgSPIFFE
	msgPodAlone       = MsgPodRefAlone
	msgRequired       = "spec.enforcementLevel: Required value"
	msgDenyCore       = `spec.action: Unsupported value: "DENY"`
	msgNoClusterKind  = "could not find the requested resource"
)

// policyCases is every distinct policy the MA/MX checks apply; checks that
// apply the same shape as another are named in the comment.
func policyCases() []policyCase {
	allowOne := func(ns string) mp.Policy {
		return nsPolicy(ns, "allow-one", mp.Allow, app("server"), from(mp.SA("cli", "allowed")))
	}
	mx29 := func(name string) mp.Policy {
		return nsPolicy("mx29", name, mp.Allow, app("server"), from(mp.SA("cli", "allowed")))
	}
	return []policyCase{
		// MA02; same shape: MA03, MA05, MA08, MA16, MA18, MA19, MA20, MA23, MX24, MX25, MX26, MX30.
		{name: "ma02-allow-one", p: allowOne("ma02")},
		{name: "ma04-all-pods", p: nsPolicy("ma04", "all-pods", mp.Allow, mp.PodSelector(nil), from(mp.SA("cli", "allowed")))}, // and MA21
		{name: "ma06-sa-policy-namespace", p: nsPolicy("ma06", "allow-one", mp.Allow, app("server"), from(mp.SA("", "allowed")))},
		{name: "ma07-sa-wildcard", p: nsPolicy("ma07", "allow-one", mp.Allow, app("server"), from(mp.SA("cli", "*")))},
		{name: "ma09-spiffe", p: nsPolicy("ma09", "allow-one", mp.Allow, app("server"), from(mp.SPIFFE("spiffe://"+testTD+"/ns/cli/sa/allowed")))},
		{name: "ma10-two-rules", p: nsPolicy("ma10", "two-rules", mp.Allow, app("server"), from(mp.SA("cli", "allowed")), from(mp.SA("other", "allowed")))},
		{name: "ma11-source-and-port", p: nsPolicy("ma11", "source-and-port", mp.Allow, app("server"), withPorts(from(mp.SA("cli", "allowed")), mp.HTTPPort))},
		// A port no workload serves (the check's unservedPort).
		{name: "ma11-source-and-other-port", p: nsPolicy("ma11", "source-and-other-port", mp.Allow, app("other-port"), withPorts(from(mp.SA("cli", "allowed")), 6060))},
		{name: "ma14-container-port", p: nsPolicy("ma14", "container-port", mp.Allow, app("server"), withPorts(from(mp.SA("cli", "allowed")), mp.HTTPPort))},
		{name: "ma12-empty-sources", p: nsPolicy("ma12", "empty-sources", mp.Allow, app("empty"), mp.Rule{Sources: []mp.Source{}})},
		{name: "ma12-omitted-sources", p: nsPolicy("ma12", "omitted-sources", mp.Allow, app("omitted"), mp.Rule{})},
		{name: "ma13-allow-nothing", p: nsPolicy("ma13", "allow-nothing", mp.Allow, app("server"))},
		{name: "ma21-namespace-wide", p: nsPolicy("ma21", "namespace-wide", mp.Allow, mp.PodSelector(nil), from(mp.SA("cli", "allowed")))},
		{name: "ma15-allow-cli", p: nsPolicy("ma15", "allow-cli", mp.Allow, app("server"), from(mp.SA("cli", "allowed")))},
		{name: "ma15-allow-other", p: nsPolicy("ma15", "allow-other", mp.Allow, app("server"), from(mp.SA("other", "allowed")))},
		{name: "ma17-edited", p: nsPolicy("ma17", "edited", mp.Allow, app("server"), from(mp.SA("other", "allowed")))},
		{name: "mx27-allow", p: nsPolicy("mx27", "allow", mp.Allow, app("server"), from(mp.SA("cli", "allowed"), mp.SA("other", "allowed")))},
		{name: "mx27-deny", p: nsPolicy("mx27", "deny", mp.Deny, app("server"), from(mp.SA("cli", "allowed"))), extended: true, coreReject: msgDenyCore},
		{name: "mx28-allow-a", p: nsPolicy("mx28", "allow-a", mp.Allow, app("a"), from(mp.SA("cli", "allowed")))},
		{name: "mx28-cluster-deny-a", p: clusterPolicy("mx28-deny-a", mp.Deny,
			mp.PodSelector(map[string]string{"gauntlet.dev/check": "mx28", "app": "a"}), mp.SA("cli", "allowed")), extended: true, coreReject: msgNoClusterKind},
		{name: "mx28-cluster-allow-b", p: clusterPolicy("mx28-allow-b", mp.Allow,
			mp.PodSelector(map[string]string{"gauntlet.dev/check": "mx28", "app": "b"}), mp.SA("other", "allowed")), extended: true, coreReject: msgNoClusterKind},
		{name: "mx28-deny-b", p: nsPolicy("mx28", "deny-b", mp.Deny, app("b"), from(mp.SA("other", "allowed"))), extended: true, coreReject: msgDenyCore},
		// MX29: the valid policy and each invalid one, edited as the check does.
		{name: "mx29-valid", p: mx29("valid")},
		{name: "mx29-selector-on-service", gepReject: msgSelectorNotPod, istioReject: "only one of targetRefs or selector can be set", p: edit(mx29("selector-on-service"), func(p *mp.Policy) {
			p.TargetRefs = []mp.TargetRef{{Kind: "Service", Name: "server", Selector: &mp.Selector{MatchLabels: map[string]string{"app": "server"}}}}
		})},
		{name: "mx29-spiffe-without-scheme", gepReject: msgSPIFFE, p: edit(mx29("spiffe-without-scheme"), func(p *mp.Policy) {
			p.Rules = []mp.Rule{from(mp.SPIFFE(testTD + "/ns/cli/sa/allowed"))}
		})},
		{name: "mx29-two-pod-targets", gepReject: msgPodAlone, p: edit(mx29("two-pod-targets"), func(p *mp.Policy) {
			p.TargetRefs = []mp.TargetRef{app("server"), app("other")}
		})},
		{name: "mx29-missing-enforcement-level", gepReject: msgRequired, p: edit(mx29("missing-enforcement-level"), func(p *mp.Policy) {
			p.EnforcementLevel = ""
		})},
		{name: "mx29-deny-on-core-only", extended: true, coreReject: msgDenyCore, p: edit(mx29("deny-on-core-only"), func(p *mp.Policy) {
			p.Action = mp.Deny
		})},
	}
}

// testOptions: the suite's fixture workloads of the namespaces above (the
// standard echo ports, labels app=<name> and gauntlet.dev/check).
func testOptions() Options {
	var ws []mp.Workload
	for _, w := range []struct{ ns, name string }{
		{"ma02", "server"}, {"ma04", "a"}, {"ma04", "b"}, {"ma06", "server"}, {"ma07", "server"}, {"ma09", "server"},
		{"ma10", "server"}, {"ma11", "server"}, {"ma11", "other-port"}, {"ma14", "server"}, {"ma21", "server"}, {"ma12", "empty"}, {"ma12", "omitted"}, {"ma13", "server"},
		{"ma15", "server"}, {"ma17", "server"}, {"mx27", "server"}, {"mx28", "a"}, {"mx28", "b"}, {"mx29", "server"},
	} {
		ws = append(ws, mp.Workload{Namespace: w.ns, Name: w.name, ServiceAccount: w.name,
			Labels: map[string]string{"app": w.name, "gauntlet.dev/check": w.ns}, Ports: mp.StandardPorts()})
	}
	return Options{TrustDomain: testTD, Workloads: ws}
}

// render is the golden form of a translation: the objects as YAML
// documents, or the error.
func render(objs []*unstructured.Unstructured, err error) ([]byte, error) {
	if err != nil {
		return yaml.Marshal(map[string]string{"error": err.Error()})
	}
	var b bytes.Buffer
	for i, o := range objs {
		if i > 0 {
			b.WriteString("---\n")
		}
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

func TestGolden(t *testing.T) {
	t.Parallel()
	o := testOptions()
	for _, c := range policyCases() {
		for _, f := range Flavors() {
			t.Run(c.name+"/"+string(f), func(t *testing.T) {
				t.Parallel()
				got, err := render(Translate(c.p, f, o))
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join("testdata", c.name+"."+string(f)+".golden.yaml")
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./internal/meshtranslate -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the translation of %s (-update rewrites it):\n--- got\n%s--- want\n%s", path, c.p, got, want)
				}
			})
		}
	}
}

// TestGoldenFilesAreCases keeps testdata to the table: a removed case must
// not leave a stale golden file behind.
func TestGoldenFilesAreCases(t *testing.T) {
	t.Parallel()
	want := map[string]bool{}
	for _, c := range policyCases() {
		for _, f := range Flavors() {
			want[c.name+"."+string(f)+".golden.yaml"] = true
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.golden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !want[filepath.Base(f)] {
			t.Errorf("%s belongs to no case of policyCases", f)
		}
	}
}

// TestTranslateSemantics pins the decisions the golden files encode, so
// that an -update cannot quietly change them.
func TestTranslateSemantics(t *testing.T) {
	t.Parallel()
	o := testOptions()
	byName := map[string]mp.Policy{}
	for _, c := range policyCases() {
		byName[c.name] = c.p
	}
	one := func(t *testing.T, name string, f Flavor) map[string]any {
		t.Helper()
		objs, err := Translate(byName[name], f, o)
		if err != nil || len(objs) != 1 {
			t.Fatalf("%s/%s: %d objects, %v", name, f, len(objs), err)
		}
		return objs[0].Object
	}
	field := func(obj map[string]any, path ...string) any {
		v, _, _ := unstructured.NestedFieldNoCopy(obj, path...)
		return v
	}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"gep keeps sources: [] apart from omitted sources", func(t *testing.T) {
			empty := field(one(t, "ma12-empty-sources", GEP3779), "spec", "rules").([]any)[0].(map[string]any)
			if s, ok := empty["sources"]; !ok || len(s.([]any)) != 0 {
				t.Errorf("sources: [] became %#v", empty)
			}
			omitted := field(one(t, "ma12-omitted-sources", GEP3779), "spec", "rules").([]any)[0].(map[string]any)
			if _, ok := omitted["sources"]; ok {
				t.Errorf("omitted sources became %#v", omitted)
			}
		}},
		{"gep empty pod selector is selector: {}", func(t *testing.T) {
			ref := field(one(t, "ma04-all-pods", GEP3779), "spec", "targetRefs").([]any)[0].(map[string]any)
			if sel, ok := ref["selector"].(map[string]any); !ok || len(sel) != 0 {
				t.Errorf("targetRef %#v, want selector: {}", ref)
			}
		}},
		{"gep cluster scope is a cluster-scoped kind", func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: one(t, "mx28-cluster-deny-a", GEP3779)}
			if obj.GetKind() != GEPClusterKind || obj.GetNamespace() != "" {
				t.Errorf("got %s in namespace %q", obj.GetKind(), obj.GetNamespace())
			}
		}},
		{"istio empty sources rule is dropped, leaving allow-nothing", func(t *testing.T) {
			if r := field(one(t, "ma12-empty-sources", Istio), "spec", "rules"); r != nil {
				t.Errorf("rules = %#v, want none", r)
			}
			if r := field(one(t, "ma12-omitted-sources", Istio), "spec", "rules").([]any); len(r) != 1 || len(r[0].(map[string]any)) != 0 {
				t.Errorf("omitted sources: rules = %#v, want [{}]", r)
			}
		}},
		{"istio principals and wildcard", func(t *testing.T) {
			got := field(one(t, "ma07-sa-wildcard", Istio), "spec", "rules").([]any)[0]
			want := map[string]any{"from": []any{map[string]any{"source": map[string]any{"principals": []any{testTD + "/ns/cli/sa/*"}}}}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rule %#v, want %#v", got, want)
			}
			got = field(one(t, "ma06-sa-policy-namespace", Istio), "spec", "rules").([]any)[0]
			want = map[string]any{"from": []any{map[string]any{"source": map[string]any{"principals": []any{testTD + "/ns/ma06/sa/allowed"}}}}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rule %#v, want %#v", got, want)
			}
		}},
		{"istio cluster scope lives in the root namespace", func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: one(t, "mx28-cluster-deny-a", Istio)}
			if obj.GetNamespace() != DefaultRootNamespace || field(obj.Object, "spec", "action") != "DENY" {
				t.Errorf("got %v", obj.Object)
			}
		}},
		{"istio service ref with selector sets both (Istio's CRD rejects that)", func(t *testing.T) {
			spec := field(one(t, "mx29-selector-on-service", Istio), "spec").(map[string]any)
			if spec["selector"] == nil || spec["targetRefs"] == nil {
				t.Errorf("spec %#v, want selector and targetRefs", spec)
			}
		}},
		{"linkerd policies on the same pods share their Servers", func(t *testing.T) {
			servers := func(name string) []string {
				objs, err := Translate(byName[name], Linkerd, o)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, obj := range objs {
					if obj.GetKind() == LinkerdServer {
						if obj.GetLabels()[SharedLabel] != "true" || obj.GetLabels()[PolicyLabel] != "" {
							t.Errorf("server %s labels %v", obj.GetName(), obj.GetLabels())
						}
						out = append(out, obj.GetName())
					}
				}
				return out
			}
			a, b := servers("ma15-allow-cli"), servers("ma15-allow-other")
			if len(a) != 3 || !reflect.DeepEqual(a, b) {
				t.Errorf("servers %v and %v, want the same three", a, b)
			}
		}},
		{"linkerd port rule authorizes only that port's Server", func(t *testing.T) {
			objs, err := Translate(byName["ma11-source-and-port"], Linkerd, o)
			if err != nil {
				t.Fatal(err)
			}
			var aps []string
			for _, obj := range objs {
				if obj.GetKind() == LinkerdAuthzPolicy {
					name, _, _ := unstructured.NestedString(obj.Object, "spec", "targetRef", "name")
					aps = append(aps, name)
				}
			}
			if len(aps) != 1 || !strings.HasSuffix(aps[0], fmt.Sprintf("-%d", mp.HTTPPort)) {
				t.Errorf("authorization policies target %v, want the %d Server only", aps, mp.HTTPPort)
			}
		}},
		{"linkerd spiffe of the kubernetes shape is the DNS identity", func(t *testing.T) {
			if got := linkerdIdentity(mp.SPIFFE("spiffe://"+testTD+"/ns/cli/sa/allowed"), "x", testTD); got != "allowed.cli.serviceaccount.identity.linkerd."+testTD {
				t.Errorf("got %q", got)
			}
			for _, id := range []string{"spiffe://other.td/ns/cli/sa/allowed", "spiffe://" + testTD + "/workload/x", testTD + "/ns/cli/sa/allowed"} {
				if got := linkerdIdentity(mp.SPIFFE(id), "x", testTD); got != id {
					t.Errorf("%q became %q, want it unchanged", id, got)
				}
			}
		}},
		{"unsupported constructs are UnsupportedError", func(t *testing.T) {
			for _, c := range []struct {
				name string
				f    Flavor
				what string
			}{
				{"mx27-deny", Linkerd, "action DENY"},
				{"mx28-cluster-allow-b", Linkerd, "cluster scope"},
				{"mx29-selector-on-service", Linkerd, "Service"},
				{"mx29-two-pod-targets", Istio, "2 Pod targetRefs"},
			} {
				_, err := Translate(byName[c.name], c.f, o)
				u, ok := IsUnsupported(err)
				if !ok || u.Flavor != c.f || !strings.Contains(u.What, c.what) {
					t.Errorf("%s/%s: %v, want an UnsupportedError about %q", c.name, c.f, err, c.what)
				}
				if _, rejected := mp.IsRejected(err); rejected {
					t.Errorf("%s/%s: an unsupported construct must not look like an API rejection", c.name, c.f)
				}
			}
		}},
		{"every object is labelled managed-by gauntlet", func(t *testing.T) {
			for _, c := range policyCases() {
				for _, f := range Flavors() {
					objs, _ := Translate(c.p, f, o)
					for _, obj := range objs {
						if obj.GetLabels()[ManagedByLabel] != "gauntlet" {
							t.Errorf("%s/%s: %s %s lacks %s", c.name, f, obj.GetKind(), obj.GetName(), ManagedByLabel)
						}
					}
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t)
		})
	}
}

// TestCasesCoverChecks derives the policy names the checks apply from
// their source and requires a case for each, so that a new policy shape in
// a check cannot go untranslated.
func TestCasesCoverChecks(t *testing.T) {
	t.Parallel()
	have := map[string]bool{}
	for _, c := range policyCases() {
		have[c.p.Name] = true
	}
	patterns := []struct {
		re     *regexp.Regexp
		name   func(m []string) string
		inFile string
	}{
		{regexp.MustCompile(`e\.policy\("[a-z0-9-]+", "([a-z0-9-]+)"`), func(m []string) string { return m[1] }, ""},
		{regexp.MustCompile(`allowOnly\(ctx, ps, "[a-z0-9-]+"`), func([]string) string { return "allow-one" }, ""},
		{regexp.MustCompile(`cluster\("([a-z0-9-]+)"`), func(m []string) string { return "mx28-" + m[1] }, ""},
		{regexp.MustCompile(`base\("(valid)"\)`), func(m []string) string { return m[1] }, "checks_ext.go"},
		{regexp.MustCompile(`(?m)^\s*\{"([a-z0-9-]+)", "[^"]*", func\(p \*mp\.Policy\)`), func(m []string) string { return m[1] }, "checks_ext.go"},
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "suites", "meshauthz", "checks_*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no check sources (%v)", err)
	}
	found := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range patterns {
			if p.inFile != "" && filepath.Base(f) != p.inFile {
				continue
			}
			for _, m := range p.re.FindAllStringSubmatch(string(src), -1) {
				found++
				if name := p.name(m); !have[name] {
					t.Errorf("%s applies policy %q (%s): policyCases has no case for it", filepath.Base(f), name, m[0])
				}
			}
		}
	}
	t.Logf("%d policy applications found in the checks", found)
	if found < 30 {
		t.Errorf("only %d policy applications found in the checks: have the helpers been renamed?", found)
	}
}

func TestParseFlavor(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in      string
		want    Flavor
		wantErr bool
	}{{"istio", Istio, false}, {"GEP3779", GEP3779, false}, {"Linkerd", Linkerd, false}, {"cilium", "", true}, {"", "", true}} {
		got, err := ParseFlavor(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseFlavor(%q) = %q, %v", tt.in, got, err)
		}
	}
	if _, err := Translate(mp.Policy{}, "cilium", Options{}); err == nil {
		t.Error("Translate with an unknown flavor: no error")
	}
}

func TestPolicyLabelValue(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 64)
	for _, tt := range []struct{ name, want string }{{"allow-one", "allow-one"}, {long, "h-" + shortHash(long, 16)}} {
		if got := PolicyLabelValue(mp.PolicyRef{Name: tt.name}); got != tt.want {
			t.Errorf("PolicyLabelValue(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// crdDir holds the rendered CRDs (generated from GEPCRDs).
var crdDir = filepath.Join("..", "..", "hack", "meshapi", "crds")

const crdHeader = "# Generated from internal/meshtranslate/crd.go by\n" +
	"#   go test ./internal/meshtranslate -run TestCRDFiles -update\n" +
	"# Do not edit: change crd.go and regenerate.\n"

// CRDFile is the path of a bundle's rendered CRDs, relative to this package.
func crdFile(b CRDBundle) string { return filepath.Join(crdDir, "gep3779-"+string(b)+".yaml") }

func TestCRDFiles(t *testing.T) {
	t.Parallel()
	for _, b := range []CRDBundle{CoreCRDs, ExtendedCRDs} {
		got, err := render(GEPCRDs(b), nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append([]byte(crdHeader+"---\n"), got...)
		if *update {
			if err := os.MkdirAll(crdDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(crdFile(b), got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(crdFile(b))
		if err != nil {
			t.Fatalf("%v (run go test ./internal/meshtranslate -run TestCRDFiles -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what GEPCRDs(%s) renders: run go test ./internal/meshtranslate -run TestCRDFiles -update", crdFile(b), b)
		}
	}
}

// TestCRDBundlesDiffer: the core bundle is the extended one minus DENY and
// the cluster kind, nothing else.
func TestCRDBundlesDiffer(t *testing.T) {
	t.Parallel()
	core, ext := GEPCRDs(CoreCRDs), GEPCRDs(ExtendedCRDs)
	if len(core) != 1 || len(ext) != 2 || ext[1].Object["spec"].(obj)["scope"] != "Cluster" {
		t.Fatalf("core has %d CRDs, extended %d", len(core), len(ext))
	}
	spec := func(u *unstructured.Unstructured) map[string]any {
		s, _, _ := unstructured.NestedMap(u.Object, "spec", "versions")
		_ = s
		v := u.Object["spec"].(obj)["versions"].([]any)[0].(obj)["schema"].(obj)["openAPIV3Schema"].(obj)["properties"].(obj)["spec"].(obj)
		return v
	}
	cs, es := spec(core[0]), spec(ext[0])
	ca := cs["properties"].(obj)["action"].(obj)
	ea := es["properties"].(obj)["action"].(obj)
	if !reflect.DeepEqual(ca["enum"], []any{"ALLOW"}) || !reflect.DeepEqual(ea["enum"], []any{"ALLOW", "DENY"}) {
		t.Errorf("action enums: core %v, extended %v", ca["enum"], ea["enum"])
	}
	strip := func(m obj) obj {
		c := runtimeDeepCopy(m)
		delete(c["properties"].(obj), "action")
		return c
	}
	if !reflect.DeepEqual(strip(cs), strip(es)) {
		t.Error("core and extended AuthorizationPolicy specs differ beyond action")
	}
}

func runtimeDeepCopy(m obj) obj {
	return (&unstructured.Unstructured{Object: m}).DeepCopy().Object
}
