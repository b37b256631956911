package streaming

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/critarget"
	"github.com/gauntlet-conformance/gauntlet/internal/spdyconn"
)

var _ = register(
	Check{ID: "G1", Name: "the stream server listens on loopback", Labels: []string{"security"},
		Faults: []faults.Fault{faults.ListenAll}, Run: checkG1},
	Check{ID: "G6", Name: "AuthorizeStream: a denied stream gets 403 before any side effect and burns the token", Labels: []string{"security", "authorize-stream"},
		Features: []Feature{FeatureAuthorizeStream},
		Faults:   []faults.Fault{faults.AuthzAfterStart, faults.AuthzDenyAs401, faults.AuthzKeepsToken, faults.AuthzNoBody}, Run: checkG6},
	Check{ID: "G7", Name: "without an AuthorizeStream hook, streams behave as before", Labels: []string{"security", "authorize-stream"},
		Features: []Feature{FeatureNoAuthorize}, Faults: []faults.Fault{faults.AuthzWithoutHook}, Run: checkG7},
)

func checkG1(ctx context.Context, e *Env) error {
	pu, release, err := spareExecURL(ctx, e)
	if err != nil {
		return err
	}
	defer release()
	host := pu.Hostname()
	note(ctx, "G1 stream host", host)
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return Failf("the stream URL names %s: the stream server is reachable off-host; bind it to 127.0.0.1 (containerd stream_server_address, CRI-O stream_address)", host)
	}
	return nil
}

// denyMarker and denyPort are the AuthorizeStream contract (docs/authorize-stream.md).
const denyMarker = critarget.DenyMarker

func checkG6(ctx context.Context, e *Env) error {
	marker := "sleep 31337"
	spec := Out(Sh(marker + "; : " + denyMarker)...)
	u, err := e.ExecURL(ctx, spec)
	if err != nil {
		return err
	}
	he, err := expectStatus(ctx, u, http.StatusForbidden, e.spdyOptions())
	if err != nil {
		return fmt.Errorf("denied exec: %w", err)
	}
	var errs []error
	body := strings.TrimSpace(he.Body)
	switch {
	case body == "" || body == http.StatusText(http.StatusForbidden):
		errs = append(errs, Failf("the 403 body %q does not carry the hook's error", body))
	case strings.Contains(body, "unable to negotiate protocol") || len(he.Header.Values(spdyconn.HeaderAcceptedProtocols)) > 0:
		errs = append(errs, Failf("the denial looks like a protocol refusal (B3): body %q, accepted versions %v", body, he.Header.Values(spdyconn.HeaderAcceptedProtocols)))
	}
	note(ctx, "G6 denial", body)
	if line, err := findProc(ctx, e, marker); err != nil {
		return err
	} else if line != "" {
		killProc(ctx, e, line)
		errs = append(errs, Failf("the denied command ran: %q", strings.TrimSpace(line)))
	}
	if _, err := expectStatus(ctx, u, http.StatusNotFound, e.spdyOptions()); err != nil {
		errs = append(errs, fmt.Errorf("the denied token was not burnt: %w", err))
	}
	pu, err := e.PortForwardURL(ctx, "", critarget.DenyPort)
	if err != nil {
		return err
	}
	if _, err := expectStatus(ctx, pu, http.StatusForbidden, spdyconn.Options{}, ProtoPF); err != nil {
		errs = append(errs, fmt.Errorf("port-forward to denied port %d: %w", critarget.DenyPort, err))
	}
	if err := healthy(ctx, e); err != nil {
		errs = append(errs, fmt.Errorf("an allowed exec after denials: %w", err))
	}
	return errors.Join(errs...)
}

func checkG7(ctx context.Context, e *Env) error {
	r, err := e.RunSPDY(ctx, Out(Sh("echo allowed; : "+denyMarker)...), nil)
	if err != nil {
		return Failf("an exec the deny contract names, with no hook configured: %w", err)
	}
	if string(r.Stdout) != "allowed\n" {
		return Failf("with no hook, the exec printed %q", r.Stdout)
	}
	pu, err := e.PortForwardURL(ctx, "", critarget.DenyPort)
	if err != nil {
		return err
	}
	c, err := spdyconn.Dial(ctx, pu, []string{ProtoPF}, e.spdyOptions())
	if err != nil {
		return Failf("with no hook, port-forward to port %d was refused: %w", critarget.DenyPort, err)
	}
	c.Close()
	return nil
}
