// Package mesh is Gauntlet's reference east-west authorization mesh: an
// in-process CA issuing SPIFFE X.509 SVIDs, and for every workload real echo
// servers (HTTP, TCP, gRPC) on loopback behind a per-workload mTLS proxy
// that enforces the neutral policy model (internal/meshpolicy) with a
// configurable precedence. It implements meshpolicy.Driver, and every fault
// of faults.Mesh, so the meshauthz suite can prove each check fails when the
// behaviour it tests is broken. It converges instantly.
package mesh

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gauntlet-conformance/gauntlet/faults"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/internal/spiffeca"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options configure the reference mesh.
type Options struct {
	TrustDomain string
	// Deny and ClusterScope install the extensions (DENY action, cluster
	// scope); without them the policy API rejects such policies.
	Deny         bool
	ClusterScope bool
	// Precedence is the evaluation order of policy classes.
	Precedence []Class
	// ConvergenceBound is what the mesh promises (it converges instantly;
	// the bound only limits how long a faulted check waits).
	ConvergenceBound time.Duration
	// Faults active from the start (see faults.Mesh; all are also armable).
	Faults []faults.Fault
	// Protocols the mesh serves (nil: HTTP, TCP and GRPC); a workload
	// asking for a port of another protocol is refused. It lets tests run
	// the suite against a target like a proxyless-gRPC mesh.
	Protocols []mp.Protocol
}

// DefaultOptions: every extension installed, default precedence.
func DefaultOptions() Options {
	return Options{TrustDomain: "cluster.local", Deny: true, ClusterScope: true,
		Precedence: DefaultPrecedence, ConvergenceBound: 500 * time.Millisecond}
}

// Mesh is a running reference mesh.
type Mesh struct {
	opts Options
	ca   *spiffeca.CA

	fmu    sync.RWMutex
	faults faults.Set

	mu        sync.RWMutex // workloads, policies, statuses
	workloads map[mp.WorkloadRef]*workload
	policies  map[mp.PolicyRef]*stored
	statuses  map[mp.PolicyRef]mp.PolicyStatus
	seq       int64
	flap      atomic.Int64

	cmu   sync.Mutex
	conns map[*tracked]bool

	deny     *grpc.Server // answers denied gRPC calls with PERMISSION_DENIED
	denyL    *chanListener
	closed   atomic.Bool
	wg       sync.WaitGroup
	closeErr error
}

var (
	_ mp.Driver         = (*Mesh)(nil)
	_ mp.ProtocolLister = (*Mesh)(nil)
)

// Start starts a reference mesh.
func Start(o Options) (*Mesh, error) {
	d := DefaultOptions()
	if o.TrustDomain == "" {
		o.TrustDomain = d.TrustDomain
	}
	if o.Precedence == nil {
		o.Precedence = d.Precedence
	}
	if o.ConvergenceBound <= 0 {
		o.ConvergenceBound = d.ConvergenceBound
	}
	for _, f := range o.Faults {
		if !faults.Mesh.Has(f) {
			return nil, fmt.Errorf("unknown mesh fault %q", f)
		}
	}
	if o.Protocols == nil {
		o.Protocols = append([]mp.Protocol(nil), mp.AllProtocols...)
	}
	for _, p := range o.Protocols {
		if _, ok := mp.ParseProtocol(string(p)); !ok {
			return nil, fmt.Errorf("unknown protocol %q (known: HTTP, TCP, GRPC)", p)
		}
	}
	if len(o.Protocols) == 0 {
		return nil, errors.New("the reference mesh must serve at least one protocol")
	}
	c, err := spiffeca.New(o.TrustDomain, "gauntlet reference mesh")
	if err != nil {
		return nil, err
	}
	m := &Mesh{opts: o, ca: c, faults: faults.NewSet(o.Faults...),
		workloads: map[mp.WorkloadRef]*workload{}, policies: map[mp.PolicyRef]*stored{},
		statuses: map[mp.PolicyRef]mp.PolicyStatus{}, conns: map[*tracked]bool{}}
	m.deny = grpc.NewServer(grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
		return status.Error(codes.PermissionDenied, "RBAC: access denied")
	}))
	m.denyL = newChanListener()
	m.wg.Add(1)
	go func() { defer m.wg.Done(); m.deny.Serve(m.denyL) }()
	return m, nil
}

// Arm switches faults on in the running mesh.
func (m *Mesh) Arm(fs ...faults.Fault) error {
	for _, f := range fs {
		if !faults.Mesh.Has(f) {
			return fmt.Errorf("unknown mesh fault %q", f)
		}
	}
	m.fmu.Lock()
	for _, f := range fs {
		m.faults[f] = true
	}
	m.fmu.Unlock()
	return nil
}

func (m *Mesh) has(f faults.Fault) bool {
	m.fmu.RLock()
	defer m.fmu.RUnlock()
	return m.faults.Has(f)
}

// Name implements Driver.
func (m *Mesh) Name() string { return "embedded reference mesh" }

// TrustDomain implements Driver.
func (m *Mesh) TrustDomain() string { return m.ca.TrustDomain().String() }

// ConvergenceBound implements Driver.
func (m *Mesh) ConvergenceBound() time.Duration { return m.opts.ConvergenceBound }

// Protocols implements meshpolicy.ProtocolLister.
func (m *Mesh) Protocols() []mp.Protocol { return append([]mp.Protocol(nil), m.opts.Protocols...) }

func (m *Mesh) serves(p mp.Protocol) bool { return slices.Contains(m.opts.Protocols, p) }

// DeployClient implements Driver: it issues the client's SVID.
func (m *Mesh) DeployClient(ctx context.Context, id mp.Identity) error {
	if id.None() {
		return nil
	}
	_, err := m.ca.SVID(id.Namespace, id.ServiceAccount)
	return err
}

// Deploy implements Driver.
func (m *Mesh) Deploy(ctx context.Context, w mp.Workload) error {
	if m.closed.Load() {
		return errors.New("reference mesh is closed")
	}
	for _, p := range w.Ports {
		if !m.serves(p.Protocol) {
			return fmt.Errorf("deploy %s: port %s is %s; this reference mesh serves only %v", w.Ref(), p.Name, p.Protocol, m.opts.Protocols)
		}
	}
	m.mu.RLock()
	_, exists := m.workloads[w.Ref()]
	m.mu.RUnlock()
	if exists {
		return nil
	}
	wl, err := m.startWorkload(w)
	if err != nil {
		return fmt.Errorf("deploy %s: %w", w.Ref(), err)
	}
	m.mu.Lock()
	if _, exists := m.workloads[w.Ref()]; exists {
		m.mu.Unlock()
		wl.close()
		return nil
	}
	m.workloads[w.Ref()] = wl
	m.mu.Unlock()
	return nil
}

// Relabel implements Driver.
func (m *Mesh) Relabel(ctx context.Context, ref mp.WorkloadRef, labels map[string]string) error {
	m.mu.Lock()
	w, ok := m.workloads[ref]
	if ok {
		w.labels = maps.Clone(labels)
	}
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("no workload %s", ref)
	}
	m.reevaluate()
	return nil
}

// Apply implements Driver: the policy API (admission, then the control
// plane pushes the new set to every proxy at once).
func (m *Mesh) Apply(ctx context.Context, p mp.Policy) error {
	if err := m.validate(p); err != nil {
		return err
	}
	p = clonePolicy(p)
	m.mu.Lock()
	ref := p.Ref()
	if s, ok := m.policies[ref]; ok {
		s.prev, s.hasPrev, s.p = s.p, true, p
	} else {
		m.seq++
		m.policies[ref] = &stored{p: p, seq: m.seq}
	}
	if m.has(faults.MeshStatusMissing) {
		delete(m.statuses, ref)
	} else {
		m.statuses[ref] = mp.PolicyStatus{Reported: true, Accepted: true, Reason: "Accepted", Message: "policy is enforced by the reference mesh"}
	}
	m.mu.Unlock()
	m.reevaluate()
	return nil
}

// Delete implements Driver.
func (m *Mesh) Delete(ctx context.Context, ref mp.PolicyRef) error {
	if m.has(faults.MeshDeleteIgnored) {
		return nil
	}
	m.mu.Lock()
	delete(m.policies, ref)
	delete(m.statuses, ref)
	m.mu.Unlock()
	m.reevaluate()
	return nil
}

// Status implements Driver.
func (m *Mesh) Status(ctx context.Context, ref mp.PolicyRef) (mp.PolicyStatus, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.policies[ref]; !ok {
		return mp.PolicyStatus{}, fmt.Errorf("no policy %s/%s", ref.Namespace, ref.Name)
	}
	return m.statuses[ref], nil
}

// Cleanup implements Driver: every workload and policy is removed.
func (m *Mesh) Cleanup(ctx context.Context) error {
	m.mu.Lock()
	ws := m.workloads
	m.workloads = map[mp.WorkloadRef]*workload{}
	m.policies = map[mp.PolicyRef]*stored{}
	m.statuses = map[mp.PolicyRef]mp.PolicyStatus{}
	m.mu.Unlock()
	m.cmu.Lock()
	for t := range m.conns {
		t.cut()
	}
	m.cmu.Unlock()
	for _, w := range ws {
		w.close()
	}
	return nil
}

// Close stops the mesh and everything it started.
func (m *Mesh) Close() error {
	if m.closed.Swap(true) {
		return m.closeErr
	}
	m.closeErr = m.Cleanup(context.Background())
	m.deny.Stop()
	m.denyL.Close()
	m.wg.Wait()
	return m.closeErr
}

// Workloads counts the running workloads (tests: cleanup is complete).
func (m *Mesh) Workloads() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.workloads)
}

// OpenConns counts proxied connections still open (tests).
func (m *Mesh) OpenConns() int {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	return len(m.conns)
}

// reevaluate re-decides every open connection after a change: a connection
// the new policy denies is cut (MX26 records this).
func (m *Mesh) reevaluate() {
	stall := m.has(faults.MeshStallOnPolicyChange)
	m.cmu.Lock()
	open := make([]*tracked, 0, len(m.conns))
	for t := range m.conns {
		open = append(open, t)
	}
	m.cmu.Unlock()
	for _, t := range open {
		if stall {
			t.stalled.Store(true)
			continue
		}
		m.mu.RLock()
		allow, _ := m.decide(t.w, t.peer, t.port, t.dialled)
		m.mu.RUnlock()
		if !allow {
			t.cut()
		}
	}
}

func clonePolicy(p mp.Policy) mp.Policy {
	q := p
	q.TargetRefs = append([]mp.TargetRef(nil), p.TargetRefs...)
	for i, t := range q.TargetRefs {
		if t.Selector != nil {
			q.TargetRefs[i].Selector = &mp.Selector{MatchLabels: maps.Clone(t.Selector.MatchLabels)}
		}
	}
	if p.Rules != nil {
		q.Rules = make([]mp.Rule, len(p.Rules))
		for i, r := range p.Rules {
			q.Rules[i] = mp.Rule{Ports: append([]int(nil), r.Ports...)}
			if r.Sources != nil {
				q.Rules[i].Sources = append([]mp.Source{}, r.Sources...)
			}
		}
	}
	return q
}

// chanListener hands connections the proxy has already accepted (and
// authenticated) to a server that wants a net.Listener.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Close() error { l.once.Do(func() { close(l.done) }); return nil }

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
