package mesh

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gauntlet-conformance/gauntlet/faults"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// workload is a pod of the reference mesh: its application and its proxy.
type workload struct {
	m            *Mesh
	ref          mp.WorkloadRef
	sa           string
	labels       map[string]string // current (guarded by m.mu)
	deployLabels map[string]string // at deploy time (MeshLabelsCached)
	ports        []mp.Port
	app          *app
	tls          *tls.Config

	addrs     map[portKey]string // logical port -> proxy listener
	appAddrs  map[mp.Protocol]string
	listeners []net.Listener
	probe     *http.Server
	probeL    net.Listener
	wg        sync.WaitGroup
}

type portKey struct {
	port    int
	service bool
}

func (m *Mesh) startWorkload(spec mp.Workload) (*workload, error) {
	if spec.ServiceAccount == "" {
		return nil, fmt.Errorf("workload %s has no service account", spec.Ref())
	}
	cfg, err := m.ca.ServerTLS(spec.Namespace, spec.ServiceAccount, "h2", "http/1.1")
	if err != nil {
		return nil, err
	}
	a, err := startApp(spec.Ref().String())
	if err != nil {
		return nil, err
	}
	w := &workload{m: m, ref: spec.Ref(), sa: spec.ServiceAccount, labels: maps.Clone(spec.Labels),
		deployLabels: maps.Clone(spec.Labels), ports: spec.Ports, app: a, tls: cfg,
		addrs: map[portKey]string{},
		appAddrs: map[mp.Protocol]string{mp.HTTP: a.httpL.Addr().String(), mp.TCP: a.tcpL.Addr().String(),
			mp.GRPC: a.grpcL.Addr().String()}}
	fail := func(err error) (*workload, error) { w.close(); return nil, err }
	for _, p := range spec.Ports {
		if _, ok := w.appAddrs[p.Protocol]; !ok {
			return fail(fmt.Errorf("port %s: unknown protocol %q", p.Name, p.Protocol))
		}
		for _, k := range []portKey{{p.Port, false}, {p.ServicePort, true}} {
			if k.port == 0 {
				continue
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fail(err)
			}
			w.listeners = append(w.listeners, l)
			w.addrs[k] = l.Addr().String()
			dialled := 0
			if k.service {
				dialled = k.port
			}
			w.wg.Add(1)
			go func(p mp.Port, dialled int) {
				defer w.wg.Done()
				w.serve(l, p, dialled)
			}(p, dialled)
		}
	}
	// The probe port: the kubelet's probes are rewritten to it (as Istio's
	// agent does) and forwarded to the application's /healthz, exempt from
	// policy: probes come from the node, which has no mesh identity.
	if w.probeL, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return fail(err)
	}
	w.probe = &http.Server{Handler: http.HandlerFunc(w.serveProbe), ReadHeaderTimeout: 5 * time.Second}
	w.wg.Add(1)
	go func() { defer w.wg.Done(); w.probe.Serve(w.probeL) }()
	return w, nil
}

func (w *workload) close() {
	for _, l := range w.listeners {
		l.Close()
	}
	if w.probe != nil {
		w.probe.Close()
	}
	w.wg.Wait()
	w.app.close()
}

func (w *workload) serve(l net.Listener, p mp.Port, dialled int) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.handle(c, p, dialled)
		}()
	}
}

// peekConn is a conn whose first bytes were peeked.
type peekConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// handle authenticates a connection (mTLS when it starts with a TLS
// handshake, otherwise a client outside the mesh), decides, and then
// forwards or denies in the way the port's protocol expects.
func (w *workload) handle(raw net.Conn, p mp.Port, dialled int) {
	m := w.m
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(raw)
	first, err := br.Peek(1)
	if err != nil {
		raw.Close()
		return
	}
	var c net.Conn = &peekConn{Conn: raw, r: br}
	pr := peer{none: true}
	if first[0] == 0x16 { // TLS handshake record
		tc := tls.Server(c, w.tls)
		if err := tc.Handshake(); err != nil {
			raw.Close()
			return
		}
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			id, err := x509svid.IDFromCert(certs[0])
			if err != nil {
				raw.Close()
				return
			}
			pr = peerFromID(id)
		}
		c = tc
	}
	raw.SetDeadline(time.Time{})
	m.mu.RLock()
	allow, _ := m.decide(w, pr, p.Port, dialled)
	m.mu.RUnlock()
	if !allow {
		w.deny(c, raw, p)
		return
	}
	w.forward(c, p, pr, dialled)
}

const denyBody = "RBAC: access denied\n"

func reset(raw net.Conn) {
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	raw.Close()
}

func (w *workload) deny(c, raw net.Conn, p mp.Port) {
	m := w.m
	switch p.Protocol {
	case mp.HTTP:
		if m.has(faults.MeshHTTPDenyReset) {
			reset(raw)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		if m.has(faults.MeshDenyAfterForward) {
			w.forwardHTTP(req)
		}
		fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(denyBody), denyBody)
	case mp.GRPC:
		if m.has(faults.MeshGRPCDenyUnavailable) {
			raw.Close()
			return
		}
		m.denyL.push(c)
	default:
		if m.has(faults.MeshTCPDenyData) {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "denied by policy\n")
			c.Close()
			return
		}
		reset(raw)
	}
}

// forwardHTTP sends a request on to the application (the fault
// MeshDenyAfterForward: authorization evaluated after the upstream call).
func (w *workload) forwardHTTP(req *http.Request) {
	req.RequestURI = ""
	req.URL.Scheme, req.URL.Host = "http", w.appAddrs[mp.HTTP]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := http.DefaultTransport.RoundTrip(req.WithContext(ctx))
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// tracked is an open proxied connection.
type tracked struct {
	w        *workload
	peer     peer
	port     int
	dialled  int
	down, up net.Conn
	stalled  atomic.Bool
	done     chan struct{}
	once     sync.Once
}

func (t *tracked) cut() {
	t.once.Do(func() {
		close(t.done)
		t.down.Close()
		t.up.Close()
	})
}

func (t *tracked) pipe(dst, src net.Conn) {
	defer t.cut()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if t.stalled.Load() {
				<-t.done // neither forwarded nor closed (MeshStallOnPolicyChange)
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (w *workload) forward(c net.Conn, p mp.Port, pr peer, dialled int) {
	up, err := net.DialTimeout("tcp", w.appAddrs[p.Protocol], 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	t := &tracked{w: w, peer: pr, port: p.Port, dialled: dialled, down: c, up: up, done: make(chan struct{})}
	m := w.m
	m.cmu.Lock()
	m.conns[t] = true
	m.cmu.Unlock()
	defer func() {
		m.cmu.Lock()
		delete(m.conns, t)
		m.cmu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); t.pipe(up, c) }()
	go func() { defer wg.Done(); t.pipe(c, up) }()
	wg.Wait()
}

func (w *workload) serveProbe(rw http.ResponseWriter, r *http.Request) {
	m := w.m
	if m.has(faults.MeshProbesEnforced) {
		m.mu.RLock()
		allow, _ := m.decide(w, peer{none: true}, mp.HTTPPort, 0)
		m.mu.RUnlock()
		if !allow {
			http.Error(rw, strings.TrimSpace(denyBody), http.StatusForbidden)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.appAddrs[mp.HTTP]+"/healthz", nil)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header.Set(NonceHeader, r.Header.Get(NonceHeader))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	rw.WriteHeader(resp.StatusCode)
	io.Copy(rw, resp.Body)
}
