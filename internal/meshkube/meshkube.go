// Package meshkube is the meshauthz suite's Kubernetes driver: a
// meshpolicy.Driver for a vendor's cluster running a mesh (Istio, Linkerd,
// or anything that implements gauntlet's GEP-3779 CRD).
//
// What it does, per Driver method:
//
//   - Deploy: the workload's namespace (labelled for sidecar injection),
//     ServiceAccount, a Deployment running the echo server
//     (`gauntlet mesh-echo serve`, internal/meshecho, from Options.EchoImage),
//     a Service with the standard Service ports (80/90/70 -> 8080/9090/7070)
//     and a headless Service "<name>-pods" on the container ports, which is
//     what requests to a container port dial (a pod-IP destination a mesh
//     knows belongs to a workload, so Istio still originates mTLS to it);
//     then waits for the Deployment to be available on 3 consecutive
//     observations within Options.ReadyBound (Gateway API's style).
//   - DeployClient: a pod per identity running as its ServiceAccount
//     (`mesh-echo idle`); the zero identity is a pod outside the mesh in the
//     driver's own namespace "<prefix>outside-mesh", opted out of injection
//     (label and annotation sidecar.istio.io/inject: "false", annotation
//     linkerd.io/inject: disabled, namespace label istio-injection: disabled).
//   - Do/Open: exec (Executor; remotecommand over WebSocket, SPDY fallback)
//     of `mesh-echo request|open` in the client pod under a deadline, which
//     classifies failures with meshpolicy.Classify; then exec of
//     `mesh-echo saw NONCE` in the server's echo container, which reads the
//     server's records from its filesystem: asking never crosses the mesh.
//   - Probe: the kubelet's own readiness probe (GET /healthz on 8080,
//     every second, through whatever path the mesh gives probes): the echo
//     server counts /healthz hits (only the kubelet asks it), and Probe
//     reports whether a new one arrived within Options.ProbeWait.
//   - Apply/Delete/Status: internal/meshtranslate objects for the flavor
//     (GEP-3779 CRD, Istio or Linkerd), server-side applied with the dynamic
//     client. Only the API server judges a policy: Invalid (422), BadRequest
//     and admission denials become *meshpolicy.RejectedError.
//   - Cleanup: every policy object, then every namespace the driver created
//     (and waits for them to go, bounded).
package meshkube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/internal/meshtranslate"
)

// Defaults.
const (
	// DefaultEchoImage is the image `go run ./hack/images --out DIR
	// --mesh-echo` builds (the gauntlet binary as /gauntlet).
	DefaultEchoImage        = "localhost/gauntlet/mesh-echo:dev"
	DefaultConvergenceBound = 30 * time.Second
	DefaultReadyBound       = 2 * time.Minute
	DefaultPollInterval     = time.Second
	// DefaultExecOverhead is added to a request's timeout to bound its
	// exec (API server round trip, stream set-up, process start).
	DefaultExecOverhead = 20 * time.Second
	DefaultCleanupWait  = 75 * time.Second
	// Threshold is how many consecutive observations make convergence.
	Threshold = 3
	// EchoBinary is the gauntlet binary's path in the echo image.
	EchoBinary = "/gauntlet"
	// FieldManager names gauntlet's server-side applies.
	FieldManager = "gauntlet"
)

// Options configure the driver.
type Options struct {
	// Kubeconfig is only reported in Name.
	Kubeconfig  string
	TrustDomain string // default cluster.local
	// ConvergenceBound is the mesh's policy propagation bound
	// (ConvergenceBound(); default 30 s).
	ConvergenceBound time.Duration
	// ReadyBound bounds a fixture pod becoming available (3 consecutive
	// observations, like convergence); longer by default (2 min) because a
	// fresh cluster pulls the mesh's sidecar image for the first pods.
	ReadyBound time.Duration
	// PollInterval between convergence observations (default 1 s).
	PollInterval time.Duration
	EchoImage    string
	// API is the policy flavor; "" detects it (GEP-3779 CRD first, then
	// Istio, then Linkerd: the first whose kinds the server serves).
	API meshtranslate.Flavor
	// RootNamespace is Istio's root namespace (cluster-scope policies).
	RootNamespace string
	// NamespacePrefix names the driver's own namespace (outside-mesh
	// client): "<prefix>outside-mesh".
	NamespacePrefix string
	// NamespaceLabels are added to every in-mesh fixture namespace (on top
	// of istio-injection=enabled and the linkerd.io/inject annotation),
	// e.g. istio.io/dataplane-mode=ambient.
	NamespaceLabels map[string]string
	// ExecOverhead bounds an exec beyond the request's own timeout.
	ExecOverhead time.Duration
	// CleanupWait bounds the wait for deleted namespaces to disappear.
	CleanupWait time.Duration
	// ProbeWait bounds Probe's wait for the kubelet's next readiness
	// probe (period 1 s); default 4 s.
	ProbeWait time.Duration
	// FinalizeNamespaces: after deleting a namespace's objects and the
	// namespace, remove its "kubernetes" finalizer. Only for API servers
	// without a namespace controller (hack/k8s); never on a real cluster,
	// where it would orphan objects other controllers made.
	FinalizeNamespaces bool
}

func (o *Options) defaults() {
	if o.TrustDomain == "" {
		o.TrustDomain = meshtranslate.DefaultTrustDomain
	}
	if o.ConvergenceBound <= 0 {
		o.ConvergenceBound = DefaultConvergenceBound
	}
	if o.ReadyBound <= 0 {
		o.ReadyBound = DefaultReadyBound
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.EchoImage == "" {
		o.EchoImage = DefaultEchoImage
	}
	if o.RootNamespace == "" {
		o.RootNamespace = meshtranslate.DefaultRootNamespace
	}
	if o.ExecOverhead <= 0 {
		o.ExecOverhead = DefaultExecOverhead
	}
	if o.CleanupWait <= 0 {
		o.CleanupWait = DefaultCleanupWait
	}
	if o.ProbeWait <= 0 {
		o.ProbeWait = 4 * time.Second
	}
}

// Driver is a meshpolicy.Driver for a Kubernetes cluster.
type Driver struct {
	o      Options
	host   string
	cs     kubernetes.Interface
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	exec   Executor
	flavor meshtranslate.Flavor

	nsMu sync.Mutex
	nsOK map[string]*nsState // namespaces ensured (created or adopted)

	mu        sync.Mutex
	workloads map[mp.WorkloadRef]mp.Workload
	clients   map[mp.Identity]podRef
	owned     map[objKey]map[mp.PolicyRef]bool // policy objects -> the policies whose translation holds them
	byPolicy  map[mp.PolicyRef][]objKey
	objects   map[objKey]objInfo
}

var _ mp.Driver = (*Driver)(nil)

type nsState struct {
	once sync.Once
	err  error
}

type podRef struct{ Namespace, Name string }

// Clients are the API clients a driver uses; New builds them from a
// rest.Config, tests pass fakes.
type Clients struct {
	Kube      kubernetes.Interface
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	// Mapper maps policy kinds to resources; nil: from Discovery.
	Mapper meta.RESTMapper
	Exec   Executor
	// Host is reported in Name.
	Host string
}

// ConnectTimeout bounds New's first contact with the API server.
const ConnectTimeout = 10 * time.Second

// New connects to the cluster cfg names (checking that it answers within
// ConnectTimeout) and picks the policy flavor.
func New(ctx context.Context, cfg *rest.Config, o Options) (*Driver, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	cfg.UserAgent = "gauntlet-meshkube"
	// client-go's default (5 QPS, burst 10) would throttle a fixture of
	// ~40 workloads and clients polled every second; the API server's own
	// priority and fairness still protects the cluster.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
	defer cancel()
	if err := cs.Discovery().RESTClient().Get().AbsPath("/version").Do(cctx).Error(); err != nil {
		return nil, fmt.Errorf("API server %s does not answer: %v", cfg.Host, oneLine(err.Error()))
	}
	return NewForClients(ctx, Clients{Kube: cs, Dynamic: dyn, Discovery: cs.Discovery(),
		Exec: NewPodExecutor(cfg, cs), Host: cfg.Host}, o)
}

// NewForClients builds a driver on existing clients.
func NewForClients(ctx context.Context, c Clients, o Options) (*Driver, error) {
	o.defaults()
	d := &Driver{o: o, host: c.Host, cs: c.Kube, dyn: c.Dynamic, mapper: c.Mapper, exec: c.Exec,
		nsOK: map[string]*nsState{}, workloads: map[mp.WorkloadRef]mp.Workload{}, clients: map[mp.Identity]podRef{},
		owned: map[objKey]map[mp.PolicyRef]bool{}, byPolicy: map[mp.PolicyRef][]objKey{}, objects: map[objKey]objInfo{}}
	if d.mapper == nil {
		if c.Discovery == nil {
			return nil, errors.New("meshkube: no discovery client and no REST mapper")
		}
		d.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Discovery))
	}
	f, err := d.pickFlavor(o.API)
	if err != nil {
		return nil, err
	}
	d.flavor = f
	return d, nil
}

// Flavor is the policy API the driver writes.
func (d *Driver) Flavor() meshtranslate.Flavor { return d.flavor }

// Name implements Driver.
func (d *Driver) Name() string {
	s := fmt.Sprintf("Kubernetes mesh at %s (policy API %s", d.host, d.flavor)
	if d.o.Kubeconfig != "" {
		s += ", kubeconfig " + d.o.Kubeconfig
	}
	return s + ")"
}

// TrustDomain implements Driver.
func (d *Driver) TrustDomain() string { return d.o.TrustDomain }

// ConvergenceBound implements Driver.
func (d *Driver) ConvergenceBound() time.Duration { return d.o.ConvergenceBound }

// probePolicy is what flavor detection translates: the kinds it yields are
// the kinds the flavor needs.
var probePolicy = mp.Policy{Name: "detect", Namespace: "detect", Action: mp.Allow, EnforcementLevel: mp.Network,
	TargetRefs: []mp.TargetRef{mp.PodSelector(map[string]string{"app": "detect"})},
	Rules:      []mp.Rule{{Sources: []mp.Source{mp.SA("detect", "detect")}}}}

// pickFlavor returns want if the server serves its kinds, or the first
// flavor it serves when want is "".
func (d *Driver) pickFlavor(want meshtranslate.Flavor) (meshtranslate.Flavor, error) {
	cands := meshtranslate.Flavors()
	if want != "" {
		cands = []meshtranslate.Flavor{want}
	}
	var missing []string
	for _, f := range cands {
		objs, err := meshtranslate.Translate(probePolicy, f, meshtranslate.Options{TrustDomain: d.o.TrustDomain,
			Workloads: []mp.Workload{{Namespace: "detect", Name: "detect", Labels: map[string]string{"app": "detect"}, Ports: mp.StandardPorts()}}})
		if err != nil {
			return "", fmt.Errorf("flavor %s: %w", f, err)
		}
		var lack []string
		for _, o := range objs {
			gvk := o.GroupVersionKind()
			if _, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
				lack = append(lack, gvk.Kind+"."+gvk.GroupVersion().String())
			}
		}
		if len(lack) == 0 {
			return f, nil
		}
		missing = append(missing, fmt.Sprintf("%s (%s)", f, strings.Join(dedup(lack), ", ")))
	}
	if want != "" {
		return "", fmt.Errorf("--mesh-api %s: the cluster does not serve %s: install the mesh's CRDs (or gauntlet's GEP-3779 CRD) or name another API", want, strings.Join(missing, "; "))
	}
	return "", fmt.Errorf("no supported policy API is installed in the cluster; looked for %s: install one, or name it with --mesh-api", strings.Join(missing, "; "))
}

func dedup(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
