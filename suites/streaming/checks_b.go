package streaming

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/spdyconn"
)

var _ = register(
	Check{ID: "B1", Name: "offering v5..v1 negotiates the best served version and echoes it", Labels: []string{"spdy", "handshake"},
		Faults: []faults.Fault{faults.SPDYDowngrade}, Run: checkB1},
	Check{ID: "B2", Name: "each of v1..v4 offered alone is accepted and echoed", Labels: []string{"spdy", "handshake"},
		Faults: []faults.Fault{faults.SPDYNoV2}, Run: checkB2},
	Check{ID: "B3", Name: "only unknown versions: 403 listing the accepted versions", Labels: []string{"spdy", "handshake"},
		Faults: []faults.Fault{faults.HandshakeAs500}, Run: checkB3},
	Check{ID: "B4", Name: "no X-Stream-Protocol-Version header: 400", Labels: []string{"spdy", "handshake"},
		Faults: []faults.Fault{faults.SPDYDefaultVersion, faults.HandshakeAs500}, Run: checkB4},
	Check{ID: "B5", Name: "a wrong Upgrade or missing Connection: Upgrade header: 400", Labels: []string{"spdy", "handshake"},
		Faults: []faults.Fault{faults.LenientUpgrade}, Run: checkB5},
	Check{ID: "B6", Name: "port forward accepts portforward.k8s.io and refuses anything else with 403", Labels: []string{"spdy", "handshake", "portforward"},
		Faults: []faults.Fault{faults.HandshakeAs500}, Run: checkB6},
)

var servedSPDY = []string{ProtoV4, ProtoV3, ProtoV2, ProtoV1}

// upgradeAndClose dials, records the echoed protocol and closes.
func upgradeAndClose(ctx context.Context, e *Env, protocols []string) (string, error) {
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return "", err
	}
	c, err := spdyconn.Dial(ctx, u, protocols, e.spdyOptions())
	if err != nil {
		return "", fmt.Errorf("offering %v: %w", protocols, err)
	}
	defer c.Close()
	return c.Protocol, nil
}

func checkB1(ctx context.Context, e *Env) error {
	got, err := upgradeAndClose(ctx, e, []string{ProtoV5, ProtoV4, ProtoV3, ProtoV2, ProtoV1})
	if err != nil {
		return err
	}
	note(ctx, "B1 negotiated", got)
	if got != ProtoV4 {
		return Failf("offering v5,v4,v3,v2,v1 negotiated %q, want %s (the best SPDY version runtimes serve)", got, ProtoV4)
	}
	return nil
}

func checkB2(ctx context.Context, e *Env) error {
	var errs []error
	for _, p := range servedSPDY {
		got, err := upgradeAndClose(ctx, e, []string{p})
		if err != nil {
			errs = append(errs, Failf("%s is not served: %w", p, err))
			continue
		}
		if got != p {
			errs = append(errs, Failf("offering only %s echoed %q", p, got))
		}
	}
	return errors.Join(errs...)
}

func checkB3(ctx context.Context, e *Env) error {
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	he, err := expectStatus(ctx, u, http.StatusForbidden, spdyconn.Options{}, "v9.channel.k8s.io", "gauntlet.example")
	if err != nil {
		return err
	}
	accepted := he.Header.Values(spdyconn.HeaderAcceptedProtocols)
	var errs []error
	for _, p := range servedSPDY {
		if !slices.Contains(accepted, p) {
			errs = append(errs, Failf("403 lists accepted versions %v: %s missing (one header per version expected)", accepted, p))
		}
	}
	if !strings.Contains(he.Body, "unable to negotiate protocol") {
		errs = append(errs, Failf("403 body %q does not say \"unable to negotiate protocol\"", strings.TrimSpace(he.Body)))
	}
	return errors.Join(errs...)
}

func checkB4(ctx context.Context, e *Env) error {
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	o := spdyconn.Options{NoDefaults: true, Header: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}}}
	_, err = expectStatus(ctx, u, http.StatusBadRequest, o)
	return err
}

func checkB5(ctx context.Context, e *Env) error {
	cases := []struct {
		name string
		h    http.Header
	}{
		{"Upgrade: h2c", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"h2c"}, spdyconn.HeaderProtocolVersion: {ProtoV4}}},
		{"no Connection: Upgrade", http.Header{"Upgrade": {"SPDY/3.1"}, spdyconn.HeaderProtocolVersion: {ProtoV4}}},
	}
	var errs []error
	for _, c := range cases {
		u, err := e.ExecURL(ctx, Out("true"))
		if err != nil {
			return err
		}
		if _, err := expectStatus(ctx, u, http.StatusBadRequest, spdyconn.Options{NoDefaults: true, Header: c.h}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

func checkB6(ctx context.Context, e *Env) error {
	u, err := e.PortForwardURL(ctx, "", EchoPort)
	if err != nil {
		return err
	}
	c, err := spdyconn.Dial(ctx, u, []string{ProtoPF}, e.spdyOptions())
	if err != nil {
		return fmt.Errorf("portforward.k8s.io: %w", err)
	}
	got := c.Protocol
	c.Close()
	if got != ProtoPF {
		return Failf("port forward echoed %q, want %s", got, ProtoPF)
	}
	u, err = e.PortForwardURL(ctx, "", EchoPort)
	if err != nil {
		return err
	}
	_, err = expectStatus(ctx, u, http.StatusForbidden, spdyconn.Options{}, ProtoV4)
	return err
}
