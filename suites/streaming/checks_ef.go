package streaming

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/exitstatus"
	"github.com/gauntlet-conformance/gauntlet/internal/spdyconn"
	"github.com/gauntlet-conformance/gauntlet/internal/wsframe"
)

var _ = register(
	Check{ID: "E1", Name: "v5: stdin then [255,0]: EOF reaches the process, output and status arrive, close 1000", Labels: []string{"websocket", "v5", "stdin"},
		Features: []Feature{FeatureV5}, Faults: []faults.Fault{faults.IgnoreStdinEOF}, Run: checkE1},
	Check{ID: "E3", Name: "v5: exit 0 carries a Success status on channel 3", Labels: []string{"websocket", "v5"},
		Features: []Feature{FeatureV5}, Faults: []faults.Fault{faults.WSDropStatus}, Run: checkE3},
	Check{ID: "E4", Name: "v5: all output precedes the status", Labels: []string{"websocket", "v5"},
		Features: []Feature{FeatureV5}, Faults: []faults.Fault{faults.TruncateOutput}, Run: checkE4},
	Check{ID: "E5", Name: "v5: a resize with lowercase keys is applied", Labels: []string{"websocket", "v5", "tty"},
		Features: []Feature{FeatureV5}, Faults: []faults.Fault{faults.IgnoreResize}, Run: checkE5},

	Check{ID: "F1", Name: "SPDY: an error+data pair echoes bytes and the error stream stays empty", Labels: []string{"spdy", "portforward"},
		Faults: []faults.Fault{faults.PortIgnored}, Run: checkF1},
	Check{ID: "F2", Name: "a closed port: error text on the error stream, the connection stays usable", Labels: []string{"spdy", "portforward"},
		Faults: []faults.Fault{faults.PFSilentRefuse}, Run: checkF2},
	Check{ID: "F4", Name: "a missing/0/65536/non-numeric port header: stream refused, connection alive", Labels: []string{"spdy", "portforward", "robustness"},
		Faults: []faults.Fault{faults.CrashOnBadStream}, Run: checkF4},
	Check{ID: "F5", Name: "a missing or unknown streamType: stream refused, connection alive", Labels: []string{"spdy", "portforward", "robustness"},
		Faults: []faults.Fault{faults.CrashOnBadStream}, Run: checkF5},
	Check{ID: "F6", Name: "only the error stream of a pair: 'timed out waiting for streams' after the creation timeout", Labels: []string{"spdy", "portforward"}, Slow: true,
		Faults: []faults.Fault{faults.LongCreationTimeout}, Timeout: 90 * time.Second, Run: checkF6},
	Check{ID: "F7", Name: "a duplicate data stream for one requestID is rejected without a crash", Labels: []string{"spdy", "portforward", "robustness"},
		Faults: []faults.Fault{faults.CrashOnBadStream}, Run: checkF7},
	Check{ID: "F8", Name: "a port not listed in the PortForwardRequest is refused", Labels: []string{"spdy", "portforward", "security"},
		Faults: []faults.Fault{faults.PFAnyPort}, Run: checkF8},
	Check{ID: "F9", Name: "WebSocket: channels 0..3 for two ports, each starting with the little-endian port", Labels: []string{"websocket", "portforward"},
		Faults: []faults.Fault{faults.WSBadPortPrefix}, Run: checkF9},
	Check{ID: "F11", Name: "SPDY/3.1+portforward.k8s.io tunnelling is refused with 403 by a runtime", Labels: []string{"websocket", "portforward", "handshake"},
		Faults: []faults.Fault{faults.HandshakeAs500}, Run: checkF11},
	Check{ID: "F12", Name: "a request reset by the server does not disturb other forwarded connections", Labels: []string{"spdy", "portforward"},
		Faults: []faults.Fault{faults.PFResetKillsConn}, Run: checkF12},
	Check{ID: "F13", Name: "port forward into a host-network sandbox works", Labels: []string{"spdy", "portforward", "hostnetwork"},
		Features: []Feature{FeatureHostNetwork}, Faults: []faults.Fault{faults.HostNetPF}, Run: checkF13},
)

func checkE1(ctx context.Context, e *Env) error {
	s, err := catWS(ctx, e, ProtoV5, false)
	if err != nil {
		return err
	}
	defer s.Conn.Close()
	if err := s.Send(wsframe.Stdin, []byte("abc")); err != nil {
		return err
	}
	if err := s.SendRaw(websocket.BinaryMessage, wsframe.CloseSignal(wsframe.Stdin)); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Wait(wctx); err != nil {
		return Failf("after [255,0]: %w", err)
	}
	var errs []error
	if got := string(s.Channel(wsframe.Stdout)); got != "abc" {
		errs = append(errs, Failf("stdout %q, want \"abc\"", got))
	}
	if res, err := exitstatus.DecodeV4(s.Channel(wsframe.Error)); err != nil || !res.Success {
		errs = append(errs, Failf("channel 3 carried %q, want Success", trunc(s.Channel(wsframe.Error))))
	}
	if c := s.CloseCode(); c != websocket.CloseNormalClosure {
		errs = append(errs, Failf("close code %d, want 1000", c))
	}
	return errors.Join(errs...)
}

func checkE3(ctx context.Context, e *Env) error {
	st, err := wsStatus(ctx, e, ProtoV5, "true")
	if err != nil {
		return err
	}
	if res, err := exitstatus.DecodeV4(st); err != nil || !res.Success {
		return Failf("channel 3 carried %q, want {\"status\":\"Success\"}", trunc(st))
	}
	return nil
}

func checkE4(ctx context.Context, e *Env) error {
	s, err := e.ExecWS(ctx, Out(Sh("for i in 1 2 3 4 5 6 7 8; do echo line$i; done; exit 4")...), ProtoV5)
	if err != nil {
		return err
	}
	if err := s.Wait(ctx); err != nil {
		return err
	}
	var want strings.Builder
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&want, "line%d\n", i)
	}
	if got := string(s.Channel(wsframe.Stdout)); got != want.String() {
		return Failf("stdout %q, want %q", got, want.String())
	}
	seenStatus := false
	for _, f := range s.Frames() {
		if f.Channel == wsframe.Error && len(f.Payload) > 0 {
			seenStatus = true
		} else if seenStatus && f.Channel == wsframe.Stdout && len(f.Payload) > 0 {
			return Failf("stdout %q arrived after the status", f.Payload)
		}
	}
	if !seenStatus {
		return Failf("no status on channel 3")
	}
	return nil
}

func checkE5(ctx context.Context, e *Env) error {
	s, err := e.ExecWS(ctx, ExecSpec{Cmd: []string{"stty", "size"}, Stdout: true, TTY: true}, ProtoV5)
	if err != nil {
		return err
	}
	if err := s.Send(wsframe.Resize, []byte(`{"width":100,"height":30}`)); err != nil {
		return err
	}
	if err := s.Wait(ctx); err != nil {
		return err
	}
	if got := strings.TrimSpace(stripNUL(s.Channel(wsframe.Stdout))); got != "30 100" {
		return Failf("stty size printed %q after a lowercase resize to 100x30", got)
	}
	return nil
}

func port(p int32) string { return strconv.Itoa(int(p)) }

func checkF1(ctx context.Context, e *Env) error {
	pf, err := e.PortForwardSPDY(ctx, "", EchoPort)
	if err != nil {
		return err
	}
	defer pf.Close()
	res, err := pf.Exchange(ctx, "1", port(EchoPort), []byte("gauntlet-echo\n"), true)
	if err != nil {
		return err
	}
	if string(res.Data) != "gauntlet-echo\n" || len(res.Error) != 0 {
		return Failf("echo through port %d returned data %q and error %q", EchoPort, trunc(res.Data), trunc(res.Error))
	}
	return nil
}

func checkF2(ctx context.Context, e *Env) error {
	pf, err := e.PortForwardSPDY(ctx, "", EchoPort, ClosedPort)
	if err != nil {
		return err
	}
	defer pf.Close()
	res, err := pf.Exchange(ctx, "1", port(ClosedPort), []byte("x"), true)
	if err != nil {
		return err
	}
	if len(res.Error) == 0 || len(res.Data) != 0 {
		return Failf("closed port %d: error stream %q, data %q; want an error and no data", ClosedPort, trunc(res.Error), trunc(res.Data))
	}
	note(ctx, "F2 error text", string(res.Error))
	res, err = pf.Exchange(ctx, "2", port(EchoPort), []byte("after\n"), true)
	if err != nil {
		return fmt.Errorf("the connection is unusable after a refused port: %w", err)
	}
	if string(res.Data) != "after\n" {
		return Failf("after a refused port, echo returned %q (error %q)", res.Data, res.Error)
	}
	return nil
}

// refused reports whether a stream with the given headers is refused or reset
// (the server must not serve it), waiting up to d.
func refused(pf *PFConn, h http.Header, d time.Duration) bool {
	s, err := pf.Conn.OpenStream(h, d)
	if err != nil {
		return true
	}
	s.Close()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		_, err := s.Read(buf)
		done <- err
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		s.Reset()
		return false
	}
}

func checkBadHeaders(ctx context.Context, e *Env, variants map[string]http.Header) error {
	pf, err := e.PortForwardSPDY(ctx, "", EchoPort)
	if err != nil {
		return err
	}
	defer pf.Close()
	for name, h := range variants {
		refused(pf, h, 2*time.Second) // what matters is that the server survives it
		_ = name
	}
	res, err := pf.Exchange(ctx, "ok", port(EchoPort), []byte("alive\n"), true)
	if err != nil {
		return Failf("the connection did not survive malformed stream headers: %w", err)
	}
	if string(res.Data) != "alive\n" {
		return Failf("after malformed stream headers, echo returned %q (error %q)", res.Data, res.Error)
	}
	return healthy(ctx, e)
}

func pfHeader(streamType, p, rid string) http.Header {
	h := http.Header{}
	if streamType != "" {
		h.Set(spdyconn.HeaderStreamType, streamType)
	}
	if p != "" {
		h.Set(spdyconn.HeaderPort, p)
	}
	h.Set(spdyconn.HeaderRequestID, rid)
	return h
}

func checkF4(ctx context.Context, e *Env) error {
	return checkBadHeaders(ctx, e, map[string]http.Header{
		"missing": pfHeader(spdyconn.StreamError, "", "m"),
		"0":       pfHeader(spdyconn.StreamError, "0", "z"),
		"65536":   pfHeader(spdyconn.StreamError, "65536", "o"),
		"x":       pfHeader(spdyconn.StreamError, "x", "x"),
	})
}

func checkF5(ctx context.Context, e *Env) error {
	return checkBadHeaders(ctx, e, map[string]http.Header{
		"missing": pfHeader("", port(EchoPort), "m"),
		"unknown": pfHeader("gauntlet-bogus", port(EchoPort), "u"),
	})
}

func checkF6(ctx context.Context, e *Env) error {
	pf, err := e.PortForwardSPDY(ctx, "", EchoPort)
	if err != nil {
		return err
	}
	defer pf.Close()
	errS, err := pf.Conn.OpenStream(pfHeader(spdyconn.StreamError, port(EchoPort), "lonely"), streamStep)
	if err != nil {
		return err
	}
	errS.Close()
	var buf lockedBuffer
	done := make(chan struct{})
	go func() { buf.fill(errS, nil); close(done) }()
	limit := e.pairingBound()
	select {
	case <-done:
	case <-time.After(limit):
		return Failf("no answer for a lone error stream %s after it was opened (creation timeout %s)", limit, e.Cfg.StreamCreationTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	if !strings.Contains(string(buf.Bytes()), "timed out waiting for streams") {
		return Failf("the lone error stream ended with %q, want \"timed out waiting for streams\"", trunc(buf.Bytes()))
	}
	return healthy(ctx, e)
}

func checkF7(ctx context.Context, e *Env) error {
	pf, err := e.PortForwardSPDY(ctx, "", EchoPort)
	if err != nil {
		return err
	}
	defer pf.Close()
	errS, dataS, err := pf.Pair("dup", port(EchoPort))
	if err != nil {
		return err
	}
	defer errS.Reset()
	defer dataS.Reset()
	refused(pf, pfHeader(spdyconn.StreamData, port(EchoPort), "dup"), 2*time.Second)
	res, err := pf.Exchange(ctx, "after-dup", port(EchoPort), []byte("alive\n"), true)
	if err != nil {
		return Failf("connection unusable after a duplicate data stream: %w", err)
	}
	if string(res.Data) != "alive\n" {
		return Failf("after a duplicate data stream, echo returned %q", res.Data)
	}
	return healthy(ctx, e)
}

func checkF8(ctx context.Context, e *Env) error {
	pf, err := e.PortForwardSPDY(ctx, "", EchoPort)
	if err != nil {
		return err
	}
	defer pf.Close()
	res, err := pf.Exchange(ctx, "unlisted", port(HTTPPort), []byte("GET / HTTP/1.0\r\n\r\n"), true)
	if err != nil {
		return err
	}
	if len(res.Data) > 0 {
		return Failf("port %d, not in the PortForwardRequest's ports [%d], was forwarded: got %q", HTTPPort, EchoPort, trunc(res.Data))
	}
	if len(res.Error) == 0 {
		return Failf("port %d, not in the request, got neither data nor an error", HTTPPort)
	}
	return nil
}

func checkF9(ctx context.Context, e *Env) error {
	u, err := e.PortForwardURL(ctx, "", EchoPort, HTTPPort)
	if err != nil {
		return err
	}
	s, resp, err := DialWS(ctx, u, []string{WSV4Binary}, nil)
	if err != nil {
		return wsHandshakeError(resp, err)
	}
	defer s.Conn.Close()
	want := map[byte]uint16{0: uint16(EchoPort), 1: uint16(EchoPort), 2: uint16(HTTPPort), 3: uint16(HTTPPort)}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.WaitFor(wctx, "a port prefix on channels 0..3", func(s *WSSession) bool {
		seen := map[byte]bool{}
		for _, f := range s.Frames() {
			seen[f.Channel] = true
		}
		return len(seen) >= 4
	}); err != nil {
		return err
	}
	first := map[byte][]byte{}
	for _, f := range s.Frames() {
		if _, ok := first[f.Channel]; !ok {
			first[f.Channel] = f.Payload
		}
	}
	var errs []error
	for ch, p := range want {
		got, err := func() (uint16, error) { v, _, err := wsframe.DecodePortPrefix(first[ch]); return v, err }()
		if err != nil || got != p {
			errs = append(errs, Failf("channel %d starts with %x, want port %d little-endian", ch, first[ch], p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := s.Send(0, []byte("ws-echo\n")); err != nil {
		return err
	}
	return s.WaitFor(wctx, "the echo on channel 0", func(s *WSSession) bool {
		data := s.Channel(0)
		return len(data) > 2 && strings.Contains(string(data[2:]), "ws-echo")
	})
}

func checkF11(ctx context.Context, e *Env) error {
	u, err := e.PortForwardURL(ctx, "", EchoPort)
	if err != nil {
		return err
	}
	s, resp, err := DialWS(ctx, u, []string{"SPDY/3.1+portforward.k8s.io"}, nil)
	if err == nil {
		s.Conn.Close()
		note(ctx, "F11", "SPDY/3.1+portforward.k8s.io upgraded: the target tunnels port-forward")
		return nil
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		return Failf("SPDY/3.1+portforward.k8s.io: %v, want 403 (or an upgrade from a tunnelling target)", wsHandshakeError(resp, err))
	}
	note(ctx, "F11", "SPDY/3.1+portforward.k8s.io refused with 403")
	return nil
}

func checkF12(ctx context.Context, e *Env) error {
	pf, err := e.PortForwardSPDY(ctx, "", EchoPort, ClosedPort)
	if err != nil {
		return err
	}
	defer pf.Close()
	errS, dataS, err := pf.Pair("long", port(EchoPort))
	if err != nil {
		return err
	}
	var data lockedBuffer
	go data.fill(dataS, nil)
	defer errS.Reset()
	if _, err := dataS.Write([]byte("first\n")); err != nil {
		return err
	}
	if _, err := pf.Exchange(ctx, "reset", port(ClosedPort), []byte("x"), true); err != nil {
		return Failf("the connection broke while one request on it was refused: %w", err)
	}
	if _, err := dataS.Write([]byte("second\n")); err != nil {
		return Failf("the other forwarded connection broke when one request was reset: %w", err)
	}
	dataS.Close()
	deadline := time.Now().Add(5 * time.Second)
	for string(data.Bytes()) != "first\nsecond\n" {
		if time.Now().After(deadline) {
			return Failf("the other forwarded connection returned %q, want \"first\\nsecond\\n\"", data.Bytes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func checkF13(ctx context.Context, e *Env) error {
	fx, err := e.HostFixture(ctx)
	if err != nil {
		return err
	}
	pf, err := e.PortForwardSPDY(ctx, fx.SandboxID, HostEchoPort)
	if err != nil {
		return err
	}
	defer pf.Close()
	res, err := pf.Exchange(ctx, "1", port(HostEchoPort), []byte("host\n"), true)
	if err != nil {
		return err
	}
	if string(res.Data) != "host\n" {
		return Failf("host-network echo returned %q (error %q)", res.Data, res.Error)
	}
	return nil
}

var _ = url.Parse
