package streaming

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/exitstatus"
	"github.com/gauntlet-conformance/gauntlet/internal/spdyconn"
	"github.com/gauntlet-conformance/gauntlet/internal/termsize"
	"github.com/gauntlet-conformance/gauntlet/internal/wsframe"
)

var _ = register(
	Check{ID: "D1", Name: "each legacy subprotocol is upgraded (101) and echoed", Labels: []string{"websocket"},
		Faults: []faults.Fault{faults.WSWrongProtocol}, Run: checkD1},
	Check{ID: "D2", Name: "v5.channel.k8s.io alone: 101 where v5 is declared, otherwise 403 recorded", Labels: []string{"websocket", "v5"},
		Faults: []faults.Fault{faults.V5NotServed}, Run: checkD2},
	Check{ID: "D3", Name: "an unsupported subprotocol is refused with 403, never upgraded", Labels: []string{"websocket", "handshake"},
		Faults: []faults.Fault{faults.WSAcceptAny}, Run: checkD3},
	Check{ID: "D4", Name: "no subprotocol offered: the 101 carries no Sec-WebSocket-Protocol header", Labels: []string{"websocket", "handshake"},
		Faults: []faults.Fault{faults.WSEmptyProtocol}, Run: checkD4},
	Check{ID: "D5", Name: "the first server frame is an empty ready frame on the lowest writable channel", Labels: []string{"websocket", "v4"},
		Faults: []faults.Fault{faults.WSNoReadyFrame}, Run: checkD5},
	Check{ID: "D6", Name: "base64 variants use text frames with an ASCII channel digit and StdEncoding", Labels: []string{"websocket", "base64"},
		Faults: []faults.Fault{faults.WSRawBase64}, Run: checkD6},
	Check{ID: "D7", Name: "exit status: JSON Status on channel 3 for v4, plain text before", Labels: []string{"websocket", "v4"},
		Faults: []faults.Fault{faults.WrongExitCode, faults.WSDropStatus}, Run: checkD7},
	Check{ID: "D8", Name: "v4 ignores a [255, 0] frame: stdin keeps flowing", Labels: []string{"websocket", "v4", "stdin"},
		Faults: []faults.Fault{faults.WSCloseBeforeV5}, Run: checkD8},
	Check{ID: "D9", Name: "frames for an unknown channel are dropped and the connection stays up", Labels: []string{"websocket", "v4", "robustness"},
		Faults: []faults.Fault{faults.WSKillOnBadChannel}, Run: checkD9},
	Check{ID: "D10", Name: "a base64 frame with an invalid payload is dropped and the connection stays up", Labels: []string{"websocket", "base64", "robustness"},
		Faults: []faults.Fault{faults.WSKillOnBadChannel}, Run: checkD10},
	Check{ID: "D12", Name: "a malformed resize on channel 4 does not wedge stdin", Labels: []string{"websocket", "v4", "tty"},
		Faults: []faults.Fault{faults.WedgeOnBadResize}, Run: checkD12},
	Check{ID: "D13", Name: "POST with upgrade headers is 405/400; a wrong Sec-WebSocket-Version is 400", Labels: []string{"websocket", "handshake"},
		Faults: []faults.Fault{faults.HandshakeAs500}, Run: checkD13},
	Check{ID: "D14", Name: "a ping while idle gets a pong", Labels: []string{"websocket"},
		Faults: []faults.Fault{faults.WSNoPong}, Run: checkD14},
	Check{ID: "D15", Name: "stdin=false output in bursts arrives untruncated", Labels: []string{"websocket", "v4"},
		Faults: []faults.Fault{faults.TruncateOutput}, Run: checkD15},
)

var legacyWS = []string{ProtoV1, WSBase64, WSV4Binary, WSV4Base64}

func checkD1(ctx context.Context, e *Env) error {
	var errs []error
	for _, p := range legacyWS {
		s, err := e.ExecWS(ctx, Out("true"), p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		if s.Protocol != p {
			errs = append(errs, Failf("offered %s, the 101 echoed %q", p, s.Protocol))
		}
		errs = append(errs, s.Wait(ctx))
	}
	return errors.Join(errs...)
}

func checkD2(ctx context.Context, e *Env) error {
	s, resp, err := func() (*WSSession, *http.Response, error) {
		u, err := e.ExecURL(ctx, Out("true"))
		if err != nil {
			return nil, nil, err
		}
		return DialWS(ctx, u, []string{ProtoV5}, nil)
	}()
	if !e.Has(FeatureV5) {
		if err == nil {
			s.Conn.Close()
			return Failf("v5.channel.k8s.io was upgraded although v5 is not declared: declare it with --capabilities=v5")
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			return Failf("v5.channel.k8s.io: %v, want 403 when v5 is not served", err)
		}
		note(ctx, "D2", "v5 not served (403)")
		return nil
	}
	if err != nil {
		return Failf("v5 is declared: %w", wsHandshakeError(resp, err))
	}
	defer s.Conn.Close()
	if s.Protocol != ProtoV5 {
		return Failf("offered v5.channel.k8s.io, the 101 echoed %q", s.Protocol)
	}
	return s.Wait(ctx)
}

func checkD3(ctx context.Context, e *Env) error {
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	s, resp, err := DialWS(ctx, u, []string{"gauntlet.example.io"}, nil)
	if err == nil {
		s.Conn.Close()
		return Failf("an unsupported subprotocol was upgraded (101, echoed %q), want 403", s.Protocol)
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		return Failf("an unsupported subprotocol: %v, want 403", err)
	}
	return nil
}

func checkD4(ctx context.Context, e *Env) error {
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	s, resp, err := DialWS(ctx, u, nil, nil)
	if err != nil {
		return wsHandshakeError(resp, err)
	}
	defer s.Conn.Close()
	if v, present := resp.Header[http.CanonicalHeaderKey("Sec-WebSocket-Protocol")]; present {
		return Failf("the 101 carries Sec-WebSocket-Protocol %q although none was offered (RFC 6455 4.2.2)", v)
	}
	return s.Wait(ctx)
}

func checkD5(ctx context.Context, e *Env) error {
	s, err := e.ExecWS(ctx, Out(Sh("sleep 0.3; echo x")...), WSV4Binary)
	if err != nil {
		return err
	}
	if err := s.Wait(ctx); err != nil {
		return err
	}
	fr := s.Frames()
	if len(fr) == 0 {
		return Failf("no frames received")
	}
	if len(fr[0].Payload) != 0 || fr[0].Channel != wsframe.Stdout {
		return Failf("first frame is channel %d with %d bytes, want an empty ready frame on channel 1 (stdout)", fr[0].Channel, len(fr[0].Payload))
	}
	return nil
}

func checkD6(ctx context.Context, e *Env) error {
	var errs []error
	for _, p := range []string{WSBase64, WSV4Base64} {
		s, err := e.ExecWS(ctx, Out("printf", "hello"), p)
		if err != nil {
			return err
		}
		if err := s.Wait(ctx); err != nil {
			return err
		}
		for _, m := range s.Raw() {
			if m.typ != websocket.TextMessage {
				errs = append(errs, Failf("%s: a binary message %q", p, trunc(m.data)))
				continue
			}
			if _, err := wsframe.Decode(m.typ, m.data, wsframe.Protocol{Base64: true}); err != nil {
				errs = append(errs, Failf("%s: message %q: %v", p, trunc(m.data), err))
			}
		}
		if got := string(s.Channel(wsframe.Stdout)); got != "hello" {
			errs = append(errs, Failf("%s: stdout %q, want \"hello\"", p, got))
		}
	}
	return errors.Join(errs...)
}

func wsStatus(ctx context.Context, e *Env, proto, script string) ([]byte, error) {
	s, err := e.ExecWS(ctx, Out(Sh(script)...), proto)
	if err != nil {
		return nil, err
	}
	if err := s.Wait(ctx); err != nil {
		return nil, err
	}
	return s.Channel(wsframe.Error), nil
}

func checkD7(ctx context.Context, e *Env) error {
	var errs []error
	st, err := wsStatus(ctx, e, WSV4Binary, "exit 3")
	if err != nil {
		return err
	}
	if res, err := exitstatus.DecodeV4(st); err != nil || res.ExitCode != 3 || res.Reason != "NonZeroExitCode" {
		errs = append(errs, Failf("v4 exit 3: channel 3 carried %q, want a NonZeroExitCode Status with ExitCode 3", trunc(st)))
	}
	st, err = wsStatus(ctx, e, WSV4Binary, "true")
	if err != nil {
		return err
	}
	if res, err := exitstatus.DecodeV4(st); err != nil || !res.Success {
		errs = append(errs, Failf("v4 exit 0: channel 3 carried %q, want a Success Status", trunc(st)))
	}
	st, err = wsStatus(ctx, e, ProtoV1, "exit 3")
	if err != nil {
		return err
	}
	if msg := strings.TrimSpace(string(st)); msg == "" || strings.HasPrefix(msg, "{") || !strings.Contains(msg, "3") {
		errs = append(errs, Failf("channel.k8s.io exit 3: channel 3 carried %q, want plain text naming the code", trunc(st)))
	}
	return errors.Join(errs...)
}

// catWS starts `cat` with stdin over WebSocket.
func catWS(ctx context.Context, e *Env, proto string, tty bool) (*WSSession, error) {
	return e.ExecWS(ctx, ExecSpec{Cmd: []string{"cat"}, Stdin: true, Stdout: true, TTY: tty}, proto)
}

func waitWS(ctx context.Context, s *WSSession, want string) error {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.WaitFor(wctx, fmt.Sprintf("stdout %q", want), func(s *WSSession) bool {
		return strings.Contains(string(s.Channel(wsframe.Stdout)), want)
	})
}

func checkD8(ctx context.Context, e *Env) error {
	s, err := catWS(ctx, e, WSV4Binary, false)
	if err != nil {
		return err
	}
	defer s.Conn.Close()
	if err := s.Send(wsframe.Stdin, []byte("one-")); err != nil {
		return err
	}
	if err := s.SendRaw(websocket.BinaryMessage, []byte{255, 0}); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	if err := s.Send(wsframe.Stdin, []byte("two")); err != nil {
		return err
	}
	return waitWS(ctx, s, "one-two")
}

func checkD9(ctx context.Context, e *Env) error {
	s, err := catWS(ctx, e, WSV4Binary, false)
	if err != nil {
		return err
	}
	defer s.Conn.Close()
	for _, ch := range []byte{7, 9, wsframe.Resize} {
		if err := s.SendRaw(websocket.BinaryMessage, []byte{ch, 'j', 'u', 'n', 'k'}); err != nil {
			return err
		}
	}
	if err := s.Send(wsframe.Stdin, []byte("survived")); err != nil {
		return fmt.Errorf("connection dropped after frames for unknown channels: %w", err)
	}
	return waitWS(ctx, s, "survived")
}

func checkD10(ctx context.Context, e *Env) error {
	s, err := catWS(ctx, e, WSV4Base64, false)
	if err != nil {
		return err
	}
	defer s.Conn.Close()
	if err := s.SendRaw(websocket.TextMessage, []byte("0!!not*base64!!")); err != nil {
		return err
	}
	if err := s.Send(wsframe.Stdin, []byte("survived")); err != nil {
		return fmt.Errorf("connection dropped after an invalid base64 frame: %w", err)
	}
	return waitWS(ctx, s, "survived")
}

func checkD12(ctx context.Context, e *Env) error {
	s, err := catWS(ctx, e, WSV4Binary, true)
	if err != nil {
		return err
	}
	defer s.Conn.Close()
	if err := s.Send(wsframe.Resize, []byte(`{"Width":}`)); err != nil {
		return err
	}
	go func() {
		for i := 0; i < 200 && ctx.Err() == nil; i++ {
			if s.Send(wsframe.Resize, termsize.Encode(uint16(80+i%40), 40)) != nil {
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := s.Send(wsframe.Stdin, []byte("still-alive\r")); err != nil {
		return err
	}
	return waitWS(ctx, s, "still-alive")
}

func checkD13(ctx context.Context, e *Env) error {
	var errs []error
	wsHeaders := func(version string) http.Header {
		return http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {version},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Protocol": {WSV4Binary}}
	}
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	_, err = expectStatus(ctx, u, http.StatusMethodNotAllowed, spdyconn.Options{Method: http.MethodPost, NoDefaults: true, Header: wsHeaders("13")})
	var he *spdyconn.HandshakeError
	if err != nil && !(errors.As(err, &he) && he.Status == http.StatusBadRequest) {
		// Either 405 or 400 is acceptable for a POST upgrade.
		if !strings.Contains(err.Error(), "answered 400") {
			errs = append(errs, fmt.Errorf("POST with WebSocket upgrade headers: %w", err))
		}
	}
	u, err = e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	if _, err := expectStatus(ctx, u, http.StatusBadRequest, spdyconn.Options{Method: http.MethodGet, NoDefaults: true, Header: wsHeaders("8")}); err != nil {
		errs = append(errs, fmt.Errorf("Sec-WebSocket-Version 8: %w", err))
	}
	return errors.Join(errs...)
}

func checkD14(ctx context.Context, e *Env) error {
	s, err := catWS(ctx, e, WSV4Binary, false)
	if err != nil {
		return err
	}
	defer s.Conn.Close()
	pong := make(chan string, 1)
	s.Conn.SetPongHandler(func(data string) error {
		select {
		case pong <- data:
		default:
		}
		return nil
	})
	if err := s.Conn.WriteControl(websocket.PingMessage, []byte("gauntlet"), time.Now().Add(streamStep)); err != nil {
		return err
	}
	select {
	case data := <-pong:
		if data != "gauntlet" {
			return Failf("pong carried %q, want the ping's payload", data)
		}
		return nil
	case <-time.After(5 * time.Second):
		return Failf("no pong within 5 s of a ping")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func checkD15(ctx context.Context, e *Env) error {
	s, err := e.ExecWS(ctx, ExecSpec{Cmd: Sh("for i in 1 2 3; do echo burst$i; sleep 1; done"), Stdout: true}, WSV4Binary)
	if err != nil {
		return err
	}
	if err := s.Wait(ctx); err != nil {
		return err
	}
	if got, want := string(s.Channel(wsframe.Stdout)), "burst1\nburst2\nburst3\n"; got != want {
		return Failf("stdout %q, want %q", got, want)
	}
	return nil
}
