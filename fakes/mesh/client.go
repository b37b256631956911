package mesh

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gauntlet-conformance/gauntlet/internal/meshecho"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DefaultRequestTimeout bounds a request whose Request.Timeout is zero.
const DefaultRequestTimeout = 3 * time.Second

// route is where a request goes.
type route struct {
	w    *workload
	port mp.Port
	addr string
}

func (m *Mesh) resolve(to mp.WorkloadRef, port int, viaService bool) (route, error) {
	m.mu.RLock()
	w, ok := m.workloads[to]
	m.mu.RUnlock()
	if !ok {
		return route{}, fmt.Errorf("no workload %s", to)
	}
	for _, p := range w.ports {
		if (!viaService && p.Port == port) || (viaService && p.ServicePort == port) {
			return route{w: w, port: p, addr: w.addrs[portKey{port, viaService}]}, nil
		}
	}
	return route{}, fmt.Errorf("workload %s has no %s port %d", to, map[bool]string{false: "container", true: "Service"}[viaService], port)
}

// dialer connects as the client identity: mTLS with its SVID, or plaintext
// for the no-identity client.
func (m *Mesh) dialer(from mp.Identity, rt route, nextProtos ...string) (func(ctx context.Context) (net.Conn, error), *tls.Config, error) {
	var cfg *tls.Config
	if !from.None() {
		server, err := m.ca.ID(rt.w.ref.Namespace, rt.w.sa)
		if err != nil {
			return nil, nil, err
		}
		if cfg, err = m.ca.ClientTLS(from.Namespace, from.ServiceAccount, server, nextProtos...); err != nil {
			return nil, nil, err
		}
	}
	plain := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", rt.addr)
	}
	return plain, cfg, nil
}

func (m *Mesh) dialClient(ctx context.Context, from mp.Identity, rt route, nextProtos ...string) (net.Conn, error) {
	plain, cfg, err := m.dialer(from, rt, nextProtos...)
	if err != nil {
		return nil, err
	}
	c, err := plain(ctx)
	if err != nil || cfg == nil {
		return c, err
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// Do implements Driver.
func (m *Mesh) Do(ctx context.Context, r mp.Request) (mp.Outcome, error) {
	rt, err := m.resolve(r.To, r.Port, r.ViaService)
	if err != nil {
		return mp.Outcome{}, err
	}
	if rt.port.Protocol != r.Protocol {
		return mp.Outcome{}, fmt.Errorf("%s port %d speaks %s, not %s", r.To, r.Port, rt.port.Protocol, r.Protocol)
	}
	if r.Nonce == "" {
		r.Nonce = newNonce()
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var out mp.Outcome
	switch r.Protocol {
	case mp.HTTP:
		out, err = m.doHTTP(ctx, r, rt)
	case mp.TCP:
		out, err = m.doTCP(ctx, r, rt)
	case mp.GRPC:
		out, err = m.doGRPC(ctx, r, rt)
	default:
		return out, fmt.Errorf("unknown protocol %q", r.Protocol)
	}
	out.Elapsed = time.Since(start)
	out.ServerSaw = rt.w.app.saw(r.Nonce)
	return out, err
}

func failed(out *mp.Outcome, err error) {
	out.Err, out.Detail = mp.Classify(err), err.Error()
}

func (m *Mesh) doHTTP(ctx context.Context, r mp.Request, rt route) (mp.Outcome, error) {
	var out mp.Outcome
	tr := &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return m.dialClient(ctx, r.From, rt, "http/1.1")
		}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s.%s:%d/", r.To.Name, r.To.Namespace, r.Port), nil)
	if err != nil {
		return out, err
	}
	req.Header.Set(NonceHeader, r.Nonce)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		failed(&out, err)
		return out, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	out.HTTPStatus, out.Body = resp.StatusCode, string(b)
	if err != nil {
		failed(&out, err)
	}
	return out, nil
}

func (m *Mesh) doTCP(ctx context.Context, r mp.Request, rt route) (mp.Outcome, error) {
	var out mp.Outcome
	c, err := m.dialClient(ctx, r.From, rt)
	if err != nil {
		failed(&out, err)
		return out, nil
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, r.Nonce+"\n"); err != nil {
		failed(&out, err)
		return out, nil
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	out.Data = line
	if err != nil {
		failed(&out, err)
	}
	return out, nil
}

func (m *Mesh) doGRPC(ctx context.Context, r mp.Request, rt route) (mp.Outcome, error) {
	var out mp.Outcome
	plain, cfg, err := m.dialer(r.From, rt)
	if err != nil {
		return out, err
	}
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg)
	}
	return meshecho.GRPCCall(ctx, "passthrough:///"+rt.addr, r.Nonce, grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return plain(ctx) }))
}

// Probe implements Driver: the kubelet's GET /healthz, through the probe
// port the mesh rewrites probes to.
func (m *Mesh) Probe(ctx context.Context, ref mp.WorkloadRef) (mp.Outcome, error) {
	if !m.serves(mp.HTTP) {
		return mp.Outcome{}, fmt.Errorf("this reference mesh serves no HTTP: no HTTP probe of %s", ref)
	}
	m.mu.RLock()
	w, ok := m.workloads[ref]
	m.mu.RUnlock()
	if !ok {
		return mp.Outcome{}, fmt.Errorf("no workload %s", ref)
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	nonce := newNonce()
	var out mp.Outcome
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.probeL.Addr().String()+"/healthz", nil)
	if err != nil {
		return out, err
	}
	req.Header.Set(NonceHeader, nonce)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		failed(&out, err)
	} else {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		out.HTTPStatus, out.Body = resp.StatusCode, string(b)
	}
	out.Elapsed = time.Since(start)
	out.ServerSaw = w.app.saw(nonce)
	return out, nil
}

// Open implements Driver.
func (m *Mesh) Open(ctx context.Context, r mp.Request) (mp.Conn, error) {
	rt, err := m.resolve(r.To, r.Port, r.ViaService)
	if err != nil {
		return nil, err
	}
	if rt.port.Protocol != mp.TCP {
		return nil, fmt.Errorf("Open needs a TCP port; %s:%d is %s", r.To, r.Port, rt.port.Protocol)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := m.dialClient(dctx, r.From, rt)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, r: bufio.NewReader(c)}, nil
}

type conn struct {
	c net.Conn
	r *bufio.Reader
}

func (c *conn) Echo(ctx context.Context, line string) (string, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(DefaultRequestTimeout)
	}
	c.c.SetDeadline(dl)
	if _, err := io.WriteString(c.c, line+"\n"); err != nil {
		return "", err
	}
	got, err := c.r.ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}

func (c *conn) Close() error { return c.c.Close() }

func newNonce() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
