// Package istiomesh is a meshauthz target whose enforcement is real: Istio's
// proxyless gRPC generator (istio.io/istio pilot/pkg/networking/grpcgen,
// what istiod serves proxyless pods: policy selection, Envoy RBAC from
// Istio's authz model, the STRICT mTLS inbound listener) builds every
// workload's listener from security.istio.io AuthorizationPolicies; a
// go-control-plane xDS server on loopback stands in for istiod's push and
// serves it to grpc-go xDS servers, which enforce the RBAC HTTP filters on
// every RPC (peer principal from the client certificate's URI SAN,
// destination port) and answer PermissionDenied.
//
// The suite's neutral policies reach it through meshtranslate's Istio
// flavor, so what is tested is the translation a user of the Kubernetes
// driver would apply, evaluated by Istio's code and enforced by grpc-go.
// It serves gRPC only: proxyless gRPC has no HTTP or TCP data path.
package istiomesh

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/gauntlet-conformance/gauntlet/internal/meshecho"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/internal/spiffeca"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	authpb "istio.io/api/security/v1beta1"
	"istio.io/istio/pilot/pkg/model"
)

// Options configure a Mesh.
type Options struct {
	// TrustDomain of workload identities (default cluster.local).
	TrustDomain string
	// RootNamespace is Istio's root namespace: its policies apply to every
	// namespace (cluster scope). Default istio-system.
	RootNamespace string
	// Dir holds the SVID files (a fresh temporary directory when empty;
	// removed by Cleanup either way).
	Dir string
}

// ConvergenceBound is what the target declares: Apply returns once every
// changed workload ACKed its new listener, so a change is enforced on new
// connections right away; the bound leaves room for a loaded CI machine.
const ConvergenceBound = 5 * time.Second

// DefaultRequestTimeout bounds a request whose Timeout is zero.
const DefaultRequestTimeout = 3 * time.Second

// ackTimeout bounds Apply's wait for the workloads' ACKs.
const ackTimeout = 10 * time.Second

// deployTimeout bounds a workload's start (xDS fetch, serving).
const deployTimeout = 30 * time.Second

// Mesh is the driver.
type Mesh struct {
	opts  Options
	dir   string
	ca    *spiffeca.CA
	cp    *controlPlane
	addrs *addrs

	mu        sync.Mutex
	workloads map[mp.WorkloadRef]*workload
	clients   map[mp.Identity]bool
	policies  map[mp.PolicyRef]storedPolicy
	seq       int
	closed    bool
}

// storedPolicy is one neutral policy as Istio objects.
type storedPolicy struct {
	seq  int
	objs []model.AuthorizationPolicy
}

var _ mp.Driver = (*Mesh)(nil)

// New starts the control plane (no workloads yet).
func New(o Options) (*Mesh, error) {
	if o.TrustDomain == "" {
		o.TrustDomain = "cluster.local"
	}
	if o.RootNamespace == "" {
		o.RootNamespace = "istio-system"
	}
	dir := o.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "gauntlet-istio-grpc-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c, err := spiffeca.New(o.TrustDomain, "gauntlet istio-grpc mesh")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cp, err := startControlPlane()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var seed [8]byte
	rand.Read(seed[:])
	return &Mesh{opts: o, dir: dir, ca: c, cp: cp, addrs: newAddrs(int64(binary.BigEndian.Uint64(seed[:]) >> 1)),
		workloads: map[mp.WorkloadRef]*workload{}, clients: map[mp.Identity]bool{}, policies: map[mp.PolicyRef]storedPolicy{}}, nil
}

// Name implements Driver.
func (m *Mesh) Name() string {
	return "Istio AuthorizationPolicy → Istio's proxyless gRPC generator → xDS → grpc-go RBAC"
}

// TrustDomain implements Driver.
func (m *Mesh) TrustDomain() string { return m.opts.TrustDomain }

// ConvergenceBound implements Driver.
func (m *Mesh) ConvergenceBound() time.Duration { return ConvergenceBound }

// Protocols is what the target serves (meshpolicy.ProtocolLister).
func (m *Mesh) Protocols() []mp.Protocol { return []mp.Protocol{mp.GRPC} }

// Deploy implements Driver: a proxyless gRPC pod serving the gRPC port of
// w (HTTP and TCP ports have no proxyless data path and are not served).
func (m *Mesh) Deploy(ctx context.Context, w mp.Workload) error {
	port := 0
	for _, p := range w.Ports {
		if p.Protocol == mp.GRPC {
			port = p.Port
		}
	}
	if port == 0 {
		return fmt.Errorf("workload %s has no gRPC port: this target serves gRPC only", w.Ref())
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("mesh is cleaned up")
	}
	if _, ok := m.workloads[w.Ref()]; ok {
		m.mu.Unlock()
		return nil
	}
	m.mu.Unlock()
	lis, ip, err := m.addrs.listen(port)
	if err != nil {
		return err
	}
	wl := &workload{ref: w.Ref(), sa: w.ServiceAccount, ports: w.Ports, ip: ip, addr: lis.Addr().String(), lis: lis,
		labels: copyLabels(w.Labels)}
	// Istio's node ID shape: sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local.
	wl.node = fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", ip, w.Name, w.Namespace, w.Namespace)
	files, err := m.ca.WriteSVID(filepath.Join(m.dir, "wl-"+w.Namespace+"-"+w.Name), w.Namespace, w.ServiceAccount)
	if err != nil {
		lis.Close()
		return err
	}
	boot, err := bootstrap(m.cp.addr(), wl.node, files)
	if err != nil {
		lis.Close()
		return err
	}
	m.mu.Lock()
	if _, ok := m.workloads[w.Ref()]; ok || m.closed {
		m.mu.Unlock()
		lis.Close()
		return nil
	}
	m.workloads[w.Ref()] = wl
	_, err = m.pushLocked(ctx, wl)
	m.mu.Unlock()
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, deployTimeout)
		err = wl.start(sctx, boot)
		cancel()
	}
	if err != nil {
		// Not deployed: a retry starts over.
		m.mu.Lock()
		delete(m.workloads, w.Ref())
		m.mu.Unlock()
		wl.stop()
		return err
	}
	return nil
}

func copyLabels(l map[string]string) map[string]string {
	out := make(map[string]string, len(l))
	for k, v := range l {
		out[k] = v
	}
	return out
}

// DeployClient implements Driver: a meshed client gets its SVID (issued
// now); the no-identity client is a plain gRPC client outside the mesh
// (no xDS bootstrap, no certificate: plaintext).
func (m *Mesh) DeployClient(ctx context.Context, id mp.Identity) error {
	if !id.None() {
		if _, err := m.ca.SVID(id.Namespace, id.ServiceAccount); err != nil {
			return err
		}
	}
	m.mu.Lock()
	m.clients[id] = true
	m.mu.Unlock()
	return nil
}

// Relabel implements Driver.
func (m *Mesh) Relabel(ctx context.Context, ref mp.WorkloadRef, labels map[string]string) error {
	m.mu.Lock()
	w, ok := m.workloads[ref]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("no workload %s", ref)
	}
	w.labels = copyLabels(labels)
	want, err := m.pushLocked(ctx, w)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	return m.waitACK(ctx, want)
}

// Apply implements Driver: the neutral policy becomes Istio
// AuthorizationPolicies (meshtranslate's Istio flavor), decoded with
// protojson into istio.io/api's security/v1beta1 type, then every
// workload's listener is rebuilt and pushed.
func (m *Mesh) Apply(ctx context.Context, p mp.Policy) error {
	objs, err := translate(p, m.opts.TrustDomain, m.opts.RootNamespace)
	if err != nil {
		return fmt.Errorf("translate %s: %w", p, err)
	}
	var aps []model.AuthorizationPolicy
	for _, o := range objs {
		ap, err := toIstio(o)
		if err != nil {
			return fmt.Errorf("policy %s: %w", p, err)
		}
		aps = append(aps, ap)
	}
	m.mu.Lock()
	m.seq++
	seq := m.seq
	if old, ok := m.policies[p.Ref()]; ok {
		seq = old.seq // an edit keeps the creation time
	}
	m.policies[p.Ref()] = storedPolicy{seq: seq, objs: aps}
	want, err := m.pushAllLocked(ctx)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	return m.waitACK(ctx, want)
}

// toIstio decodes an AuthorizationPolicy object the way istiod's config
// store does (the spec is protobuf JSON).
func toIstio(o *unstructured.Unstructured) (model.AuthorizationPolicy, error) {
	if o.GetKind() != "AuthorizationPolicy" {
		return model.AuthorizationPolicy{}, fmt.Errorf("translation produced a %s, want AuthorizationPolicy", o.GetKind())
	}
	spec, ok := o.Object["spec"]
	if !ok {
		spec = map[string]any{}
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return model.AuthorizationPolicy{}, err
	}
	s := &authpb.AuthorizationPolicy{}
	if err := protojson.Unmarshal(raw, s); err != nil {
		return model.AuthorizationPolicy{}, fmt.Errorf("spec of %s/%s is not an Istio AuthorizationPolicy: %w", o.GetNamespace(), o.GetName(), err)
	}
	return model.AuthorizationPolicy{Name: o.GetName(), Namespace: o.GetNamespace(), Annotations: o.GetAnnotations(), Spec: s}, nil
}

// Delete implements Driver.
func (m *Mesh) Delete(ctx context.Context, ref mp.PolicyRef) error {
	m.mu.Lock()
	if _, ok := m.policies[ref]; !ok {
		m.mu.Unlock()
		return nil
	}
	delete(m.policies, ref)
	want, err := m.pushAllLocked(ctx)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	return m.waitACK(ctx, want)
}

// Status implements Driver: there is no API server, hence no status.
func (m *Mesh) Status(ctx context.Context, ref mp.PolicyRef) (mp.PolicyStatus, error) {
	return mp.PolicyStatus{}, nil
}

// authzPolicies is what istiod's PushContext holds
// (model.GetAuthorizationPolicies): policies by namespace, in creation
// order, with the root namespace.
func (m *Mesh) authzPoliciesLocked() *model.AuthorizationPolicies {
	stored := make([]storedPolicy, 0, len(m.policies))
	for _, sp := range m.policies {
		stored = append(stored, sp)
	}
	sort.Slice(stored, func(i, j int) bool { return stored[i].seq < stored[j].seq })
	out := &model.AuthorizationPolicies{NamespaceToPolicies: map[string][]model.AuthorizationPolicy{}, RootNamespace: m.opts.RootNamespace}
	for _, sp := range stored {
		for _, ap := range sp.objs {
			out.NamespaceToPolicies[ap.Namespace] = append(out.NamespaceToPolicies[ap.Namespace], ap)
		}
	}
	return out
}

// pushLocked rebuilds one workload's listener; it returns the node →
// version to wait for.
func (m *Mesh) pushLocked(ctx context.Context, w *workload) (map[string]string, error) {
	return m.pushLockedWith(ctx, m.authzPoliciesLocked(), w)
}

func (m *Mesh) pushAllLocked(ctx context.Context) (map[string]string, error) {
	aps := m.authzPoliciesLocked()
	want := map[string]string{}
	for _, w := range m.workloads {
		got, err := m.pushLockedWith(ctx, aps, w)
		if err != nil {
			return nil, err
		}
		for k, v := range got {
			want[k] = v
		}
	}
	return want, nil
}

func (m *Mesh) pushLockedWith(ctx context.Context, aps *model.AuthorizationPolicies, w *workload) (map[string]string, error) {
	// Istio selects the policies (namespace, labels, root namespace) and
	// builds the listener itself (istioListener).
	l, err := istioListener(w.addr, w.ref.Namespace, w.ref.Name, w.labels, aps)
	if err != nil {
		return nil, fmt.Errorf("listener of %s: %w", w.ref, err)
	}
	v, err := m.cp.push(ctx, w.node, l)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", w.ref, err)
	}
	if v == "" {
		return nil, nil
	}
	return map[string]string{w.node: v}, nil
}

// waitACK waits (bounded) for the workloads to ACK; a workload that does
// not is left to the checks' convergence bound, but a NACK is an error.
func (m *Mesh) waitACK(ctx context.Context, want map[string]string) error {
	if len(want) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	err := m.cp.waitACK(ctx, want)
	var nack *nackError
	if errors.As(err, &nack) {
		return err
	}
	return nil
}

// Do implements Driver: one gRPC health Check carrying the nonce, over a
// new connection (so it meets the listener's current filter chain), with
// the client's SVID (mTLS, the server's SPIFFE ID verified) or, for the
// no-identity client, plaintext.
func (m *Mesh) Do(ctx context.Context, r mp.Request) (mp.Outcome, error) {
	if r.Protocol != mp.GRPC {
		return mp.Outcome{}, fmt.Errorf("this target serves gRPC only, not %s (it declares Protocols [GRPC])", r.Protocol)
	}
	m.mu.Lock()
	w, ok := m.workloads[r.To]
	known := m.clients[r.From]
	m.mu.Unlock()
	if !ok {
		return mp.Outcome{}, fmt.Errorf("no workload %s", r.To)
	}
	if !known {
		return mp.Outcome{}, fmt.Errorf("no client %s (DeployClient first)", r.From)
	}
	port := 0
	for _, p := range w.ports {
		if p.Protocol == mp.GRPC && ((!r.ViaService && p.Port == r.Port) || (r.ViaService && p.ServicePort == r.Port)) {
			port = p.Port // a Service port reaches the container port, as kube-proxy's DNAT does
		}
	}
	if port == 0 {
		return mp.Outcome{}, fmt.Errorf("workload %s has no gRPC port %d (via Service: %v)", r.To, r.Port, r.ViaService)
	}
	creds := insecure.NewCredentials()
	if !r.From.None() {
		server, err := m.ca.ID(w.ref.Namespace, w.sa)
		if err != nil {
			return mp.Outcome{}, err
		}
		cfg, err := m.ca.ClientTLS(r.From.Namespace, r.From.ServiceAccount, server)
		if err != nil {
			return mp.Outcome{}, err
		}
		creds = credentials.NewTLS(cfg)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	out, err := meshecho.GRPCCall(ctx, "passthrough:///"+net.JoinHostPort(w.ip, strconv.Itoa(port)), r.Nonce, grpc.WithTransportCredentials(creds))
	if err != nil {
		return mp.Outcome{}, err
	}
	out.Elapsed = time.Since(start)
	out.ServerSaw = w.saw(r.Nonce)
	return out, nil
}

// Probe implements Driver. A proxyless gRPC pod has no HTTP port for the
// kubelet to probe; the target serves gRPC only.
func (m *Mesh) Probe(ctx context.Context, ref mp.WorkloadRef) (mp.Outcome, error) {
	return mp.Outcome{}, errors.New("this target serves gRPC only: a proxyless gRPC pod has no HTTP probe port")
}

// Open implements Driver: there is no TCP data path.
func (m *Mesh) Open(ctx context.Context, r mp.Request) (mp.Conn, error) {
	return nil, errors.New("this target serves gRPC only: no TCP connections")
}

// Cleanup implements Driver: every workload and the control plane stop,
// the SVID files are removed.
func (m *Mesh) Cleanup(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	ws := make([]*workload, 0, len(m.workloads))
	for _, w := range m.workloads {
		ws = append(ws, w)
	}
	m.workloads = map[mp.WorkloadRef]*workload{}
	m.policies = map[mp.PolicyRef]storedPolicy{}
	m.mu.Unlock()
	err := waitClosed(ctx, func() {
		var wg sync.WaitGroup
		for _, w := range ws {
			wg.Add(1)
			go func() { defer wg.Done(); w.stop() }()
		}
		wg.Wait()
		m.cp.stop()
	})
	return errors.Join(err, os.RemoveAll(m.dir))
}

// Features are the meshauthz features this target enforces
// (meshexec.FeatureLister): SPIFFE principals, PermissionDenied, DENY
// before ALLOW, and cluster scope through Istio's root namespace. No
// API validation or status: there is no API server here.
func (m *Mesh) Features() []string {
	return []string{"AuthorizationPolicySPIFFE", "AuthorizationPolicyGRPC", "AuthorizationPolicyDeny", "AuthorizationPolicyClusterScope"}
}
