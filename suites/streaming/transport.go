package streaming

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/moby/spdystream"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/gauntlet-conformance/gauntlet/internal/exitstatus"
	"github.com/gauntlet-conformance/gauntlet/internal/spdyconn"
	"github.com/gauntlet-conformance/gauntlet/internal/termsize"
	"github.com/gauntlet-conformance/gauntlet/internal/wsframe"
)

// Remote command protocol versions.
const (
	ProtoV5 = "v5.channel.k8s.io"
	ProtoV4 = "v4.channel.k8s.io"
	ProtoV3 = "v3.channel.k8s.io"
	ProtoV2 = "v2.channel.k8s.io"
	ProtoV1 = "channel.k8s.io"
	ProtoPF = "portforward.k8s.io"

	WSBase64   = "base64.channel.k8s.io"
	WSV4Binary = "v4.channel.k8s.io"
	WSV4Base64 = "v4.base64.channel.k8s.io"
)

// streamStep bounds one network step inside a check.
const streamStep = 10 * time.Second

// Sh wraps a script as `sh -c SCRIPT`.
func Sh(script string) []string { return []string{"sh", "-c", script} }

// ExecSpec is an Exec request; ContainerID defaults to the fixture container.
type ExecSpec struct {
	ContainerID string
	Cmd         []string
	Stdin       bool
	Stdout      bool
	Stderr      bool
	TTY         bool
}

// Out is the common spec: stdout + stderr, no stdin, no tty.
func Out(cmd ...string) ExecSpec { return ExecSpec{Cmd: cmd, Stdout: true, Stderr: true} }

func (e *Env) execRequest(ctx context.Context, s ExecSpec) (*runtimeapi.ExecRequest, error) {
	if s.ContainerID == "" {
		fx, err := e.Fixture(ctx)
		if err != nil {
			return nil, err
		}
		s.ContainerID = fx.ContainerID
	}
	return &runtimeapi.ExecRequest{ContainerId: s.ContainerID, Cmd: s.Cmd, Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr, Tty: s.TTY}, nil
}

// ExecURL asks the runtime for an exec URL.
func (e *Env) ExecURL(ctx context.Context, s ExecSpec) (string, error) {
	req, err := e.execRequest(ctx, s)
	if err != nil {
		return "", err
	}
	cctx, cancel := context.WithTimeout(ctx, streamStep)
	defer cancel()
	resp, err := e.Client.Runtime.Exec(cctx, req)
	if err != nil {
		return "", fmt.Errorf("Exec(%v): %w", s.Cmd, err)
	}
	return resp.Url, nil
}

// AttachURL asks the runtime for an attach URL.
func (e *Env) AttachURL(ctx context.Context, req *runtimeapi.AttachRequest) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, streamStep)
	defer cancel()
	resp, err := e.Client.Runtime.Attach(cctx, req)
	if err != nil {
		return "", fmt.Errorf("Attach(%s): %w", req.ContainerId, err)
	}
	return resp.Url, nil
}

// PortForwardURL asks the runtime for a port-forward URL.
func (e *Env) PortForwardURL(ctx context.Context, sandboxID string, ports ...int32) (string, error) {
	if sandboxID == "" {
		fx, err := e.Fixture(ctx)
		if err != nil {
			return "", err
		}
		sandboxID = fx.SandboxID
	}
	cctx, cancel := context.WithTimeout(ctx, streamStep)
	defer cancel()
	resp, err := e.Client.Runtime.PortForward(cctx, &runtimeapi.PortForwardRequest{PodSandboxId: sandboxID, Port: ports})
	if err != nil {
		return "", fmt.Errorf("PortForward(%v): %w", ports, err)
	}
	return resp.Url, nil
}

// ---- SPDY remote command ----

// SPDYSession is an exec/attach over SPDY with its streams.
type SPDYSession struct {
	Conn     *spdyconn.Conn
	Protocol string
	Stdin    *spdystream.Stream
	Resize   *spdystream.Stream

	wg                     sync.WaitGroup
	stdout, stderr, status lockedBuffer
	stdoutSeen             chan struct{}
	started                time.Time
}

// maxCollect bounds what the harness keeps of one stream (and of one
// WebSocket session): C15's 64 MiB, the most a check needs. A runtime that
// sends more, or never ends a stream, fails the session with errCollectLimit
// instead of exhausting the harness's memory (selfdefense_test.go).
const maxCollect = 64 << 20

var errCollectLimit = fmt.Errorf("the runtime sent more than %d MiB on one stream; the harness stopped reading", maxCollect>>20)

// lockedBuffer collects a stream's bytes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	err error
}

func (b *lockedBuffer) fill(r io.Reader, onData func()) {
	p := make([]byte, 32<<10)
	for {
		n, err := r.Read(p)
		if n > 0 {
			b.mu.Lock()
			over := b.buf.Len()+n > maxCollect
			if over {
				b.err = errCollectLimit
			} else {
				b.buf.Write(p[:n])
			}
			b.mu.Unlock()
			if over {
				// End the flood at the connection: a spdystream stream's
				// deadline is its connection's, and the expired read ends
				// every stream of the session. The reset releases the frame
				// worker spdystream would otherwise block on this unread
				// stream (wedging the whole connection).
				if d, ok := r.(interface{ SetDeadline(time.Time) error }); ok {
					d.SetDeadline(time.Now())
				}
				if rs, ok := r.(interface{ Reset() error }); ok {
					rs.Reset()
				}
				return
			}
			if onData != nil {
				onData()
			}
		}
		if err != nil {
			if err != io.EOF {
				b.mu.Lock()
				b.err = err
				b.mu.Unlock()
			}
			return
		}
	}
}

func (b *lockedBuffer) overflowed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err == errCollectLimit
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// StartSPDY upgrades url, creates the remotecommand streams kubectl creates
// (error first, then stdin/stdout/stderr, resize for v3+ with a tty) and
// starts collecting output.
func (e *Env) StartSPDY(ctx context.Context, url string, protocols []string, stdin, stdout, stderr, tty bool) (*SPDYSession, error) {
	c, err := spdyconn.Dial(ctx, url, protocols, e.spdyOptions())
	if err != nil {
		return nil, err
	}
	s := &SPDYSession{Conn: c, Protocol: c.Protocol, stdoutSeen: make(chan struct{}), started: time.Now()}
	open := func(typ string) (*spdystream.Stream, error) {
		h := http.Header{}
		h.Set(spdyconn.HeaderStreamType, typ)
		return c.OpenStream(h, streamStep)
	}
	errS, err := open(spdyconn.StreamError)
	if err != nil {
		c.Close()
		return nil, err
	}
	// The client never writes on the error stream.
	errS.Close()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.status.fill(errS, nil) }()
	if stdin {
		if s.Stdin, err = open(spdyconn.StreamStdin); err != nil {
			c.Close()
			return nil, err
		}
	}
	var once sync.Once
	if stdout {
		o, err := open(spdyconn.StreamStdout)
		if err != nil {
			c.Close()
			return nil, err
		}
		o.Close()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.stdout.fill(o, func() { once.Do(func() { close(s.stdoutSeen) }) })
		}()
	}
	if stderr {
		o, err := open(spdyconn.StreamStderr)
		if err != nil {
			c.Close()
			return nil, err
		}
		o.Close()
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.stderr.fill(o, nil) }()
	}
	if tty && s.Protocol != ProtoV1 && s.Protocol != ProtoV2 {
		if s.Resize, err = open(spdyconn.StreamResize); err != nil {
			c.Close()
			return nil, err
		}
	}
	return s, nil
}

// ExecSPDY gets an exec URL for spec and starts a SPDY session.
func (e *Env) ExecSPDY(ctx context.Context, spec ExecSpec, protocols ...string) (*SPDYSession, error) {
	if len(protocols) == 0 {
		protocols = []string{ProtoV4}
	}
	url, err := e.ExecURL(ctx, spec)
	if err != nil {
		return nil, err
	}
	return e.StartSPDY(ctx, url, protocols, spec.Stdin, spec.Stdout, spec.Stderr, spec.TTY)
}

// SendResize writes one resize message.
func (s *SPDYSession) SendResize(w, h uint16) error {
	if s.Resize == nil {
		return fmt.Errorf("no resize stream (protocol %s)", s.Protocol)
	}
	_, err := s.Resize.Write(termsize.Encode(w, h))
	return err
}

// Stdout returns what arrived on stdout so far.
func (s *SPDYSession) Stdout() []byte { return s.stdout.Bytes() }

// ExecResult is what a finished session produced.
type ExecResult struct {
	Protocol string
	Stdout   []byte
	Stderr   []byte
	Status   []byte // raw error stream / channel 3 content
	Elapsed  time.Duration
}

// Wait waits until every output stream has ended (the server closes them when
// the process exits). On ctx expiry it fails with what arrived so far.
func (s *SPDYSession) Wait(ctx context.Context) (*ExecResult, error) {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("session did not end within the deadline (stdout so far %q, stderr %q, status %q)",
			trunc(s.stdout.Bytes()), trunc(s.stderr.Bytes()), trunc(s.status.Bytes()))
	}
	s.Conn.Close()
	<-done
	for _, b := range []*lockedBuffer{&s.stdout, &s.stderr, &s.status} {
		if b.overflowed() && err == nil {
			err = errCollectLimit
		}
	}
	return &ExecResult{Protocol: s.Protocol, Stdout: s.stdout.Bytes(), Stderr: s.stderr.Bytes(), Status: s.status.Bytes(), Elapsed: time.Since(s.started)}, err
}

// RunSPDY runs spec to completion with stdin (closed after writing when closeStdin).
func (e *Env) RunSPDY(ctx context.Context, spec ExecSpec, stdin []byte, protocols ...string) (*ExecResult, error) {
	s, err := e.ExecSPDY(ctx, spec, protocols...)
	if err != nil {
		return nil, err
	}
	if s.Stdin != nil {
		if len(stdin) > 0 {
			if _, err := s.Stdin.Write(stdin); err != nil {
				s.Conn.Close()
				return nil, fmt.Errorf("write stdin: %w", err)
			}
		}
		s.Stdin.Close()
	}
	return s.Wait(ctx)
}

// ExitCode decodes a v4/v5 status: 0 for Success, the ExitCode cause otherwise.
func (r *ExecResult) ExitCode() (int, error) {
	if len(r.Status) == 0 {
		return -1, fmt.Errorf("empty status: the runtime closed the error stream without a Status (kubernetes#137404)")
	}
	res, err := exitstatus.DecodeV4(r.Status)
	if err != nil {
		return -1, fmt.Errorf("status %q: %w", trunc(r.Status), err)
	}
	if res.Success {
		return 0, nil
	}
	if res.Reason != "NonZeroExitCode" {
		return -1, fmt.Errorf("status is a Failure with reason %q, not NonZeroExitCode: %q", res.Reason, trunc(r.Status))
	}
	return res.ExitCode, nil
}

func trunc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…(" + strconv.Itoa(len(b)) + " bytes)"
	}
	return string(b)
}

// ---- WebSocket ----

// WSSession is an exec/attach/port-forward over WebSocket, collecting frames.
type WSSession struct {
	Conn     *websocket.Conn
	Response *http.Response
	Protocol string
	proto    wsframe.Protocol

	mu        sync.Mutex
	frames    []wsframe.Frame
	raw       []rawMessage
	readErr   error
	got       int // bytes received (maxCollect)
	closeCode int
	done      chan struct{}
	wmu       sync.Mutex
}

type rawMessage struct {
	typ  int
	data []byte
}

// WSURL turns a stream URL into a ws:// one.
func WSURL(u string) string {
	if strings.HasPrefix(u, "https://") {
		return "wss://" + strings.TrimPrefix(u, "https://")
	}
	return "ws://" + strings.TrimPrefix(u, "http://")
}

// DialWS upgrades url to WebSocket offering subprotocols. A non-101 answer is
// returned as (nil, resp, err) with resp's body readable.
func DialWS(ctx context.Context, url string, subprotocols []string, hdr http.Header) (*WSSession, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: streamStep, Subprotocols: subprotocols}
	var hl *headLimitConn
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		hl = newHeadLimitConn(c) // gorilla reads the 101 head unbounded
		return hl, nil
	}
	conn, resp, err := d.DialContext(ctx, WSURL(url), hdr)
	if hl != nil {
		hl.lift()
	}
	if err != nil {
		return nil, resp, err
	}
	// gorilla refuses a message over the limit from its frame header, before
	// buffering it (a hostile runtime can claim 2^63-1 bytes).
	conn.SetReadLimit(wsframe.DefaultMaxMessage)
	s := &WSSession{Conn: conn, Response: resp, Protocol: conn.Subprotocol(), done: make(chan struct{})}
	s.proto, _ = wsframe.ParseProtocol(s.Protocol)
	conn.SetCloseHandler(func(code int, text string) error {
		s.mu.Lock()
		s.closeCode = code
		s.mu.Unlock()
		return nil
	})
	go func() {
		select {
		case <-ctx.Done():
			conn.Close()
		case <-s.done:
		}
	}()
	go s.readLoop()
	return s, resp, nil
}

func (s *WSSession) readLoop() {
	defer close(s.done)
	for {
		typ, msg, err := s.Conn.ReadMessage()
		if err != nil {
			s.mu.Lock()
			s.readErr = err
			if ce, ok := err.(*websocket.CloseError); ok {
				s.closeCode = ce.Code
			}
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		if s.got += len(msg); s.got > maxCollect {
			s.readErr = errCollectLimit
			s.mu.Unlock()
			s.Conn.Close()
			return
		}
		s.raw = append(s.raw, rawMessage{typ, msg})
		if f, err := wsframe.Decode(typ, msg, s.proto); err == nil {
			s.frames = append(s.frames, f)
		}
		s.mu.Unlock()
	}
}

// Send writes one channel frame in the negotiated encoding.
func (s *WSSession) Send(ch byte, payload []byte) error {
	typ, msg, err := wsframe.Encode(wsframe.Frame{Channel: ch, Payload: payload}, s.proto)
	if err != nil {
		return err
	}
	return s.SendRaw(typ, msg)
}

// SendRaw writes one message as is.
func (s *WSSession) SendRaw(typ int, msg []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.Conn.SetWriteDeadline(time.Now().Add(streamStep))
	return s.Conn.WriteMessage(typ, msg)
}

// Frames returns the decoded frames received so far.
func (s *WSSession) Frames() []wsframe.Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wsframe.Frame(nil), s.frames...)
}

// Raw returns the raw messages received so far.
func (s *WSSession) Raw() []rawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rawMessage(nil), s.raw...)
}

// Channel concatenates the payloads received on ch.
func (s *WSSession) Channel(ch byte) []byte {
	var b []byte
	for _, f := range s.Frames() {
		if f.Channel == ch {
			b = append(b, f.Payload...)
		}
	}
	return b
}

// Closed is closed when the connection has ended.
func (s *WSSession) Closed() <-chan struct{} { return s.done }

// CloseCode is the close code the server sent (0 when none).
func (s *WSSession) CloseCode() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeCode
}

// Wait waits for the server to close the connection.
func (s *WSSession) Wait(ctx context.Context) error {
	select {
	case <-s.done:
		return s.brokenErr()
	case <-ctx.Done():
		s.Conn.Close()
		<-s.done
		return fmt.Errorf("WebSocket session did not end within the deadline (stdout so far %q, status %q)", trunc(s.Channel(1)), trunc(s.Channel(3)))
	}
}

// brokenErr is why the harness stopped reading when it was not the server's
// close: its own limits, or a frame gorilla could not parse.
func (s *WSSession) brokenErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, closed := s.readErr.(*websocket.CloseError); closed || s.readErr == nil {
		return nil
	}
	if s.readErr == errCollectLimit || strings.HasPrefix(s.readErr.Error(), "websocket: ") {
		return fmt.Errorf("the WebSocket stream broke: %w", s.readErr)
	}
	return nil
}

// WaitFor waits until cond holds on the frames received, or the connection
// ends, or ctx expires.
func (s *WSSession) WaitFor(ctx context.Context, what string, cond func(*WSSession) bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if cond(s) {
			return nil
		}
		select {
		case <-s.done:
			if cond(s) {
				return nil
			}
			return Failf("connection ended before %s (stdout %q, status %q, close code %d)", what, trunc(s.Channel(1)), trunc(s.Channel(3)), s.CloseCode())
		case <-ctx.Done():
			return Failf("timed out waiting for %s (stdout %q, status %q)", what, trunc(s.Channel(1)), trunc(s.Channel(3)))
		case <-t.C:
		}
	}
}

// ExecWS gets an exec URL and upgrades it to WebSocket.
func (e *Env) ExecWS(ctx context.Context, spec ExecSpec, subprotocols ...string) (*WSSession, error) {
	url, err := e.ExecURL(ctx, spec)
	if err != nil {
		return nil, err
	}
	s, resp, err := DialWS(ctx, url, subprotocols, nil)
	if err != nil {
		return nil, wsHandshakeError(resp, err)
	}
	return s, nil
}

// wsHandshakeError describes a failed WebSocket upgrade including the answer.
func wsHandshakeError(resp *http.Response, err error) error {
	if resp == nil {
		return fmt.Errorf("websocket dial: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Errorf("websocket upgrade answered %d %q: %w", resp.StatusCode, strings.TrimSpace(string(body)), err)
}

// ---- SPDY port forward ----

// PFConn is a SPDY port-forward connection.
type PFConn struct {
	Conn *spdyconn.Conn
}

// PortForwardSPDY gets a port-forward URL for the ports and upgrades it.
func (e *Env) PortForwardSPDY(ctx context.Context, sandboxID string, ports ...int32) (*PFConn, error) {
	url, err := e.PortForwardURL(ctx, sandboxID, ports...)
	if err != nil {
		return nil, err
	}
	c, err := spdyconn.Dial(ctx, url, []string{ProtoPF}, e.spdyOptions())
	if err != nil {
		return nil, err
	}
	return &PFConn{Conn: c}, nil
}

// Close closes the connection.
func (p *PFConn) Close() { p.Conn.Close() }

// Pair opens the error and data streams for one requestID.
func (p *PFConn) Pair(requestID, port string) (errS, dataS *spdystream.Stream, err error) {
	h := http.Header{}
	h.Set(spdyconn.HeaderStreamType, spdyconn.StreamError)
	h.Set(spdyconn.HeaderPort, port)
	h.Set(spdyconn.HeaderRequestID, requestID)
	if errS, err = p.Conn.OpenStream(h, streamStep); err != nil {
		return nil, nil, err
	}
	errS.Close()
	h = h.Clone()
	h.Set(spdyconn.HeaderStreamType, spdyconn.StreamData)
	if dataS, err = p.Conn.OpenStream(h, streamStep); err != nil {
		return errS, nil, err
	}
	return errS, dataS, nil
}

// PFResult is one forwarded exchange.
type PFResult struct {
	Data  []byte // what came back on the data stream
	Error []byte // what came back on the error stream
	// DataReset: the server reset the data stream before accepting it.
	DataReset bool
}

// Exchange sends payload on a new pair (optionally half-closing) and collects
// both streams until they end or ctx expires. Each stream is read from the
// moment it exists, as kubectl does: spdystream delivers a stream's data on
// one of a few shared frame workers, so an unread stream would stall the
// replies to every other stream on the connection.
func (p *PFConn) Exchange(ctx context.Context, requestID string, port string, payload []byte, halfClose bool) (*PFResult, error) {
	h := http.Header{}
	h.Set(spdyconn.HeaderStreamType, spdyconn.StreamError)
	h.Set(spdyconn.HeaderPort, port)
	h.Set(spdyconn.HeaderRequestID, requestID)
	errS, err := p.Conn.OpenStream(h, streamStep)
	if err != nil {
		return nil, err
	}
	var data, errBuf lockedBuffer
	errDone, dataDone := make(chan struct{}), make(chan struct{})
	go func() { errBuf.fill(errS, nil); close(errDone) }()
	errS.Close()
	h = h.Clone()
	h.Set(spdyconn.HeaderStreamType, spdyconn.StreamData)
	dataS, err := p.Conn.OpenStream(h, streamStep)
	if err != nil {
		// The server may reset the data stream before answering it (a
		// refused port): that is an answer; collect what the error stream says.
		select {
		case <-errDone:
		case <-ctx.Done():
			errS.Reset()
			<-errDone
		}
		return &PFResult{Error: errBuf.Bytes(), DataReset: true}, nil
	}
	go func() { data.fill(dataS, nil); close(dataDone) }()
	if len(payload) > 0 {
		if _, err := dataS.Write(payload); err != nil {
			dataS.Reset()
			errS.Reset()
			return nil, fmt.Errorf("write data stream: %w", err)
		}
	}
	if halfClose {
		dataS.Close()
	}
	done := make(chan struct{})
	go func() { <-errDone; <-dataDone; close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		dataS.Reset()
		errS.Reset()
		<-done
		return &PFResult{Data: data.Bytes(), Error: errBuf.Bytes()}, fmt.Errorf("port-forward request %s did not finish within the deadline (data %q, error %q)", requestID, trunc(data.Bytes()), trunc(errBuf.Bytes()))
	}
	return &PFResult{Data: data.Bytes(), Error: errBuf.Bytes()}, nil
}

// waitListening retries an echo through port-forward until the fixture's
// listener answers.
func waitListening(ctx context.Context, e *Env, f *Fixture, port int32) error {
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for i := 0; time.Now().Before(deadline); i++ {
		err := func() error {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			pf, err := e.PortForwardSPDY(cctx, f.SandboxID, port)
			if err != nil {
				return err
			}
			defer pf.Close()
			res, err := pf.Exchange(cctx, "0", strconv.Itoa(int(port)), []byte("ping\n"), true)
			if err != nil {
				return err
			}
			if string(res.Data) != "ping\n" {
				return fmt.Errorf("echo answered %q, error stream %q", res.Data, res.Error)
			}
			return nil
		}()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("port %d never answered through port-forward: %w", port, last)
}
