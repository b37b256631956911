package streaming

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gauntlet-conformance/gauntlet/faults"
)

var _ = register(
	Check{ID: "E2", Name: "v5: a malformed close signal ([255], [255,0,0], [255,9]) terminates the connection, never a hang", Labels: []string{"websocket", "v5", "robustness"},
		Features: []Feature{FeatureV5}, Faults: []faults.Fault{faults.V5IgnoreBadClose}, Run: checkE2},
	Check{ID: "F3", Name: "200 concurrent port-forward requestIDs, some failing: every one is answered and the runtime survives", Labels: []string{"spdy", "portforward", "robustness"},
		Faults: []faults.Fault{faults.CrashOnManyStreams, faults.PFSilentRefuse}, Timeout: 90 * time.Second, Run: checkF3},
	Check{ID: "G2", Name: "an https stream URL presents a certificate that verifies for its host", Labels: []string{"security", "tls"},
		Features: []Feature{FeatureTLS}, Faults: []faults.Fault{faults.TLSSelfSigned, faults.TLSWrongHost}, Run: checkG2},
	Check{ID: "F10", Name: "WebSocket port forward with no ports: an immediate normal close", Labels: []string{"websocket", "portforward"},
		Faults: []faults.Fault{faults.WSPFNoPortsOpen}, Run: checkF10},
)

// checkE2 sends each malformed close signal on its own v5 session running
// cat. The catalogue calls them protocol errors: the connection must end
// (any close code but a clean 1000 would be acceptable) within a deadline.
func checkE2(ctx context.Context, e *Env) error {
	var errs []error
	for _, sig := range [][]byte{{255}, {255, 0, 0}, {255, 9}} {
		s, err := catWS(ctx, e, ProtoV5, false)
		if err != nil {
			return err
		}
		if err := s.SendRaw(websocket.BinaryMessage, sig); err != nil {
			s.Conn.Close()
			errs = append(errs, fmt.Errorf("%v: write: %w", sig, err))
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = s.Wait(wctx)
		cancel()
		code := s.CloseCode()
		s.Conn.Close()
		if err != nil {
			errs = append(errs, Failf("%v: the connection was still open 5s later (a malformed close signal must terminate it)", sig))
			continue
		}
		note(ctx, "E2 "+fmt.Sprint(sig), fmt.Sprintf("connection ended, close code %d", code))
	}
	return errors.Join(errs...)
}

// checkF3 opens 200 error+data pairs at once on one connection, every fifth
// to a closed port (containerd#11302: concurrent port-forwards crashed the CRI
// plugin). Every request must be answered within its deadline: a closed port
// with error text; an open one with the echo, or with error text or a clean
// close when the container's listener (busybox nc, accept backlog 1) cannot
// keep up, which is the fixture's limit, not the runtime's. Afterwards a fresh
// exec and a fresh port-forward must work: the runtime survived.
func checkF3(ctx context.Context, e *Env) error {
	const n, failEvery = 200, 5
	pf, err := e.PortForwardSPDY(ctx, "", EchoPort, ClosedPort)
	if err != nil {
		return err
	}
	defer pf.Close()
	type result struct {
		id  int
		res *PFResult
		err error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			p := EchoPort
			if i%failEvery == 0 {
				p = ClosedPort
			}
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			res, err := pf.Exchange(rctx, strconv.Itoa(i), port(p), []byte(fmt.Sprintf("req-%d\n", i)), true)
			results <- result{i, res, err}
		}(i)
	}
	wg.Wait()
	close(results)
	// Failures grouped by kind, with the first example of each.
	bad := map[string][]string{}
	nbad := 0
	fail := func(kind, example string) { bad[kind] = append(bad[kind], example); nbad++ }
	var echoed, refusedN, openRefused, openSilent int
	for r := range results {
		switch {
		case r.err != nil:
			fail("no answer", fmt.Sprintf("%d: %v", r.id, r.err))
		case r.id%failEvery == 0:
			if len(r.res.Error) == 0 {
				fail("closed port without error text", fmt.Sprintf("%d: data %q, data stream reset %v", r.id, trunc(r.res.Data), r.res.DataReset))
			} else {
				refusedN++
			}
		case string(r.res.Data) == fmt.Sprintf("req-%d\n", r.id):
			echoed++
		case len(r.res.Data) > 0:
			fail("wrong data", fmt.Sprintf("%d: echoed %q, want %q", r.id, trunc(r.res.Data), fmt.Sprintf("req-%d\n", r.id)))
		case len(r.res.Error) > 0:
			openRefused++
		default:
			openSilent++
		}
	}
	note(ctx, "F3", fmt.Sprintf("open port: %d echoed, %d refused with error text, %d closed without data (listener overload); closed port: %d refused with error text; %d wrong",
		echoed, openRefused, openSilent, refusedN, nbad))
	if err := e.healthy(ctx); err != nil {
		return Failf("after 200 concurrent port-forward requests the runtime is unhealthy: %v", err)
	}
	after, err := e.PortForwardSPDY(ctx, "", EchoPort)
	if err != nil {
		return Failf("after 200 concurrent port-forward requests, a new port forward failed: %v", err)
	}
	defer after.Close()
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if res, err := after.Exchange(rctx, "after", port(EchoPort), []byte("after\n"), true); err != nil || string(res.Data) != "after\n" {
		return Failf("after 200 concurrent port-forward requests, a new echo failed: %v %+v", err, res)
	}
	if nbad > 0 {
		var parts []string
		for kind, ex := range bad {
			parts = append(parts, fmt.Sprintf("%d %s (e.g. %s)", len(ex), kind, ex[0]))
		}
		sort.Strings(parts)
		return Failf("%d of %d concurrent requests went wrong: %s", nbad, n, strings.Join(parts, "; "))
	}
	if echoed == 0 {
		return Failf("none of the %d open-port requests was echoed (%d refused, %d closed silently)", n-n/failEvery, openRefused, openSilent)
	}
	return nil
}

// healthy runs a fresh exec on the fixture: the runtime still serves streams.
func (e *Env) healthy(ctx context.Context) error {
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	r, err := e.RunSPDY(hctx, Out("echo", "healthy"), nil)
	if err != nil {
		return fmt.Errorf("a fresh exec failed: %w", err)
	}
	if strings.TrimSpace(string(r.Stdout)) != "healthy" {
		return fmt.Errorf("a fresh exec printed %q, want \"healthy\"", trunc(r.Stdout))
	}
	return nil
}

// checkF10: a port-forward request without ports has nothing to forward; the
// WebSocket server must close at once with a normal closure.
func checkF10(ctx context.Context, e *Env) error {
	u, err := e.PortForwardURL(ctx, "")
	if err != nil {
		return err
	}
	s, hresp, err := DialWS(ctx, u, []string{WSV4Binary}, nil)
	if err != nil {
		return Failf("WebSocket port forward with no ports: %v, want 101 then a normal close", wsHandshakeError(hresp, err))
	}
	defer s.Conn.Close()
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := s.Wait(wctx); err != nil {
		return Failf("no ports: the connection was still open 3s after the upgrade (%d frames), want an immediate close", len(s.Frames()))
	}
	if c := s.CloseCode(); c != websocket.CloseNormalClosure {
		return Failf("no ports: close code %d, want 1000 (normal closure)", c)
	}
	return nil
}

// checkG2 verifies the stream server's certificate the way a kubelet that
// trusts the system roots (plus --stream-ca-file) would, for the URL's host.
// A failure reports what was presented, so the deviation is visible.
func checkG2(ctx context.Context, e *Env) error {
	raw, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Failf("stream URL %q does not parse: %v", raw, err)
	}
	if u.Scheme != "https" {
		return Failf("tls-streaming is declared but the stream URL is %s://", u.Scheme)
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if len(e.Cfg.StreamCA) > 0 && !roots.AppendCertsFromPEM(e.Cfg.StreamCA) {
		return fmt.Errorf("--stream-ca-file holds no PEM certificate")
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}}
	conn, verr := d.DialContext(dctx, "tcp", u.Host)
	if verr == nil {
		conn.Close()
		note(ctx, "G2", "certificate verifies for "+u.Hostname())
		return nil
	}
	// Look at what was presented, without verifying, for the report.
	insecure := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()}} //nolint:gosec // only to describe the certificate
	c, err := insecure.DialContext(dctx, "tcp", u.Host)
	if err != nil {
		return Failf("TLS handshake with %s failed: %v", u.Host, verr)
	}
	defer c.Close()
	var what string
	if certs := c.(*tls.Conn).ConnectionState().PeerCertificates; len(certs) > 0 {
		leaf := certs[0]
		what = fmt.Sprintf(" (presented subject %q, issuer %q, DNS %v, IPs %v)", leaf.Subject.CommonName, leaf.Issuer.CommonName, leaf.DNSNames, leaf.IPAddresses)
	}
	return Failf("the stream server's certificate does not verify for %s: %v%s", u.Hostname(), verr, what)
}
