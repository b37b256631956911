package cri

// Hostile-peer faults (issue 4). Two families live here:
//
//   - Vulnerable modes make the reference runtime behave like a stream server
//     that does not defend itself against a hostile *client*, so the G3, G4,
//     G5 and D11 checks can be proven to fail: spdy-bomb-vulnerable,
//     spdy-oversize-held, no-header-timeout, ws-unbounded-frames.
//   - Hostile modes make the reference runtime a hostile *server*, so the
//     harness can prove it defends itself (suites/streaming/selfdefense_test.go):
//     a check against such a runtime must fail with an error within its
//     deadline, never hang, panic or exhaust the harness's memory.
//
// Both are implemented by a front listener that the stream URLs point at
// instead of the library's server. Without one of these faults there is no
// front and the reference runtime is exactly as before. In the vulnerable
// modes the front proxies byte for byte to the library's server and only
// steps in when it sees the hostile input; in the hostile modes it answers
// the stream request itself.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/spdystream"
	"github.com/moby/spdystream/spdy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// HostileFaults are the hostile-runtime modes, for the harness's self-defence tests.
func HostileFaults() []faults.Fault {
	return []faults.Fault{faults.HostileNeverAnswer, faults.HostileMute, faults.HostileGarbage, faults.HostileEndless,
		faults.HostileGiantFrame, faults.HostileHeaderBomb, faults.HostileEndlessHead, faults.HostileCRIHang}
}

var vulnerableFaults = []faults.Fault{faults.SPDYBombVulnerable, faults.SPDYOversizeHeld, faults.NoHeaderTimeout, faults.WSUnboundedFrames}

// Limits the front applies.
const (
	// libWSMaxFrame is golang.org/x/net/websocket's DefaultMaxPayloadBytes,
	// which the library's WebSocket server enforces per frame.
	libWSMaxFrame = 32 << 20
	// spdyGiantControl: no legitimate SPDY peer sends a control frame this
	// large (stream headers are a few hundred bytes).
	spdyGiantControl = 1 << 20
	// maxHead bounds a request head the front reads.
	maxHead = 1 << 20
	// maxRetained bounds what a vulnerable mode keeps per connection: enough
	// to show up in Stats.LeakedBytes, not enough to hurt the test machine.
	maxRetained = 40 << 20
	// hostileWriteCap bounds what a hostile mode writes per connection, so a
	// regression in the harness's defences shows up as measured growth
	// rather than taking the machine down.
	hostileWriteCap = 512 << 20
	// fanoutValues: a header with more values than this is a NUL bomb (real
	// stream headers carry one value each).
	fanoutValues = 1024
	// bombValueSize is the NUL header value of hostile-header-bomb: at
	// spdystream's 1 MiB field limit, so v0.5.1 accepts and fans it out.
	bombValueSize = 1 << 20
)

// fronts maps a Runtime to its front (the Runtime struct is not ours to extend).
var fronts sync.Map // *Runtime -> *front

type front struct {
	r      *Runtime
	st     *streams
	ln     net.Listener
	target string
	mode   faults.Fault // the hostile mode, "" for the vulnerable (proxy) modes
	armed  atomic.Bool

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startFront is called by Start once the stream server runs and before the
// CRI server serves: with a vulnerable or hostile fault it starts the front
// and points the stream URLs at it.
func (r *Runtime) startFront(st *streams) {
	mode := faults.Fault("")
	for _, f := range HostileFaults() {
		if r.faults.has(f) && f != faults.HostileCRIHang {
			mode = f
			break
		}
	}
	need := mode != ""
	for _, f := range vulnerableFaults {
		need = need || r.faults.has(f)
	}
	if !need && !r.faults.has(faults.HostileCRIHang) {
		return
	}
	fr := &front{r: r, st: st, mode: mode, conns: map[net.Conn]struct{}{}}
	fr.armed.Store(true) // hostile from the start, as a daemon would be
	fronts.Store(r, fr)
	if need && r.opts.TLS {
		// The front speaks plain HTTP; with https streams it would read a
		// TLS ClientHello as a broken request head. The stream faults are
		// plaintext-only (hostile-cri-hang still applies).
		r.logf("hostile front: not started: the stream faults need plaintext streams (Options.TLS is set)")
		need = false
	}
	if need {
		host, _, err := net.SplitHostPort(st.ln.Addr().String())
		if err != nil {
			host = "127.0.0.1"
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			// Without the front the fault is inert; the proofs then report
			// the check passing with the fault, which names the problem.
			r.logf("hostile front: %v", err)
		} else {
			fr.ln, fr.target = ln, st.ln.Addr().String()
			st.urlHost = ln.Addr().String()
			go fr.serve()
		}
	}
	go func() {
		<-r.stopLk
		fronts.Delete(r)
		fr.close()
	}()
}

// SetHostile arms (true, the default) or disarms the hostile faults. While
// disarmed a hostile runtime serves streams and CRI calls like the reference,
// so a test can create its fixture before the runtime turns hostile.
func (r *Runtime) SetHostile(on bool) {
	if v, ok := fronts.Load(r); ok {
		v.(*front).armed.Store(on)
	}
}

func (r *Runtime) hostileArmed(f faults.Fault) bool {
	if !r.faults.has(f) {
		return false
	}
	v, ok := fronts.Load(r)
	return ok && v.(*front).armed.Load()
}

// grpcOptions adds the hostile-cri-hang interceptor.
func (r *Runtime) grpcOptions() []grpc.ServerOption {
	if !r.faults.has(faults.HostileCRIHang) {
		return nil
	}
	return []grpc.ServerOption{grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		switch info.FullMethod {
		case "/runtime.v1.RuntimeService/Exec", "/runtime.v1.RuntimeService/Attach", "/runtime.v1.RuntimeService/PortForward":
			if r.hostileArmed(faults.HostileCRIHang) {
				// Never answer: only the caller's deadline (or our shutdown) ends the call.
				select {
				case <-ctx.Done():
					return nil, status.FromContextError(ctx.Err()).Err()
				case <-r.stopLk:
					return nil, status.Error(codes.Unavailable, "runtime stopped")
				}
			}
		}
		return handler(ctx, req)
	})}
}

func (f *front) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			c.Close()
			return
		}
		go func() {
			defer f.untrack(c)
			defer c.Close()
			f.handle(c)
		}()
	}
}

func (f *front) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *front) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

func (f *front) close() {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	if f.ln != nil {
		f.ln.Close()
	}
}

func (f *front) handle(c net.Conn) {
	mode := f.mode
	if !f.armed.Load() {
		mode = ""
	}
	if mode == faults.HostileNeverAnswer {
		// Read (so the client's writes never block) and never write.
		io.Copy(io.Discard, c) //nolint:errcheck // ends when either side closes
		return
	}
	br := bufio.NewReaderSize(c, 32<<10)
	if !f.r.faults.has(faults.NoHeaderTimeout) || mode != "" {
		c.SetReadDeadline(time.Now().Add(f.r.opts.HeaderTimeout))
	}
	head, err := readHead(br)
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return
	}
	isWS := strings.EqualFold(req.Header.Get("Upgrade"), "websocket")
	if mode != "" {
		f.hostile(mode, c, br, req, isWS)
		return
	}
	f.proxy(c, br, head, isWS)
}

// readHead reads an HTTP request head byte-exactly (up to the empty line).
func readHead(br *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		head = append(head, line...)
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		if len(head) > maxHead {
			return nil, errors.New("request head too large")
		}
		if err == nil && (string(line) == "\r\n" || string(line) == "\n") {
			return head, nil
		}
	}
}

// ---- vulnerable modes: a proxy to the library's server ----

// verdict is what an inspector decided about the client's bytes.
type verdict int

const (
	vPass  verdict = iota
	vHold          // stop forwarding, swallow and retain everything (the connection is kept)
	vCrash         // the stream server dies
)

type inspector interface {
	// feed takes client bytes and returns what to forward now.
	feed(b []byte) (out []byte, v verdict, why string)
}

func (f *front) proxy(c net.Conn, br *bufio.Reader, head []byte, isWS bool) {
	sc, err := net.DialTimeout("tcp", f.target, 5*time.Second)
	if err != nil {
		return
	}
	if !f.track(sc) {
		sc.Close()
		return
	}
	defer f.untrack(sc)
	defer sc.Close()
	sc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := sc.Write(head); err != nil {
		return
	}
	sc.SetWriteDeadline(time.Time{})

	var held atomic.Bool
	back := make(chan struct{})
	go func() {
		defer close(back)
		io.Copy(c, sc) //nolint:errcheck // either side closing ends the copy
		if !held.Load() {
			// The server closed: so does the client's connection (unless a
			// vulnerable mode pretends the server is stuck on a frame).
			c.Close()
		}
	}()

	var ins inspector
	switch {
	case isWS && f.r.faults.has(faults.WSUnboundedFrames):
		ins = &wsInspector{}
	case !isWS && (f.r.faults.has(faults.SPDYBombVulnerable) || f.r.faults.has(faults.SPDYOversizeHeld)):
		ins = newSPDYInspector(f.r.faults.has(faults.SPDYBombVulnerable), f.r.faults.has(faults.SPDYOversizeHeld))
	}
	buf := make([]byte, 32<<10)
	retained := 0
	for {
		n, rerr := br.Read(buf)
		if n > 0 {
			if held.Load() {
				retained += f.retain(buf[:n], retained)
			} else {
				out, v, why := buf[:n], vPass, ""
				if ins != nil {
					out, v, why = ins.feed(buf[:n])
				}
				if len(out) > 0 {
					sc.SetWriteDeadline(time.Now().Add(10 * time.Second))
					if _, err := sc.Write(out); err != nil {
						return
					}
				}
				switch v {
				case vCrash:
					f.st.crash(why)
					return
				case vHold:
					f.r.logf("fault: connection held: %s", why)
					held.Store(true)
					retained += f.retain(buf[:n], retained)
				}
			}
		}
		if rerr != nil {
			if held.Load() {
				return
			}
			if cw, ok := sc.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			<-back
			return
		}
	}
}

// retain keeps client bytes the way a server buffering an oversized frame
// would, visible in Stats.LeakedBytes; it returns how much it kept.
func (f *front) retain(b []byte, already int) int {
	n := min(len(b), maxRetained-already)
	if n <= 0 {
		return 0
	}
	f.r.leakMu.Lock()
	f.r.leaked = append(f.r.leaked, append([]byte(nil), b[:n]...))
	f.r.leakMu.Unlock()
	return n
}

// wsInspector follows the client's (masked) WebSocket frames. A frame over
// the library's limit is where the vulnerable server (fault
// ws-unbounded-frames) starts reading a frame into memory: from its header
// on nothing reaches the library, so nothing closes the connection.
type wsInspector struct {
	hdr  []byte
	pass uint64 // payload bytes of the current frame still to forward
}

func (w *wsInspector) feed(b []byte) ([]byte, verdict, string) {
	var out []byte
	for len(b) > 0 {
		if w.pass > 0 {
			n := min(w.pass, uint64(len(b)))
			out, b, w.pass = append(out, b[:n]...), b[n:], w.pass-n
			continue
		}
		w.hdr = append(w.hdr, b[0])
		b = b[1:]
		length, ok := wsHeader(w.hdr)
		if !ok {
			continue
		}
		if length > libWSMaxFrame {
			return out, vHold, fmt.Sprintf("a %d-byte WebSocket frame is buffered", length)
		}
		out, w.hdr, w.pass = append(out, w.hdr...), nil, length
	}
	return out, vPass, ""
}

// wsHeader parses a complete frame header's payload length.
func wsHeader(h []byte) (length uint64, ok bool) {
	if len(h) < 2 {
		return 0, false
	}
	size := 2
	length = uint64(h[1] & 0x7f)
	switch length {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if h[1]&0x80 != 0 {
		size += 4
	}
	if len(h) < size {
		return 0, false
	}
	switch h[1] & 0x7f {
	case 126:
		length = uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		length = binary.BigEndian.Uint64(h[2:])
	}
	return length, true
}

// spdyInspector follows the client's SPDY frames. With vulnerable it runs
// every control frame through a spdystream framer first and "crashes" on
// anything a vulnerable framer (<= 0.5.0) would blow up on: what the fixed
// framer rejects (header count, field length, SETTINGS count, broken
// compression, truncation) and NUL fan-out. With hold it keeps any
// connection that sends a control frame over spdyGiantControl.
type spdyInspector struct {
	vulnerable, hold bool
	buf              []byte
	pass             int
	in               frameFeed
	framer           *spdy.Framer
}

func newSPDYInspector(vulnerable, hold bool) *spdyInspector {
	p := &spdyInspector{vulnerable: vulnerable, hold: hold}
	p.framer, _ = spdy.NewFramer(io.Discard, &p.in)
	return p
}

// frameFeed hands the framer exactly one frame's bytes, then EOF: the
// framer's header decompressor keeps its state across frames as on a
// connection, and a frame that lies about its length cannot make the
// inspector read into the next one.
type frameFeed struct{ b []byte }

func (f *frameFeed) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

func (p *spdyInspector) feed(b []byte) ([]byte, verdict, string) {
	var out []byte
	p.buf = append(p.buf, b...)
	for len(p.buf) > 0 {
		if p.pass > 0 {
			n := min(p.pass, len(p.buf))
			out, p.buf, p.pass = append(out, p.buf[:n]...), p.buf[n:], p.pass-n
			continue
		}
		if len(p.buf) < 8 {
			break
		}
		ctrl := p.buf[0]&0x80 != 0
		length := int(binary.BigEndian.Uint32(p.buf[4:8]) & 0xffffff)
		if ctrl && length > spdyGiantControl && p.hold {
			return out, vHold, fmt.Sprintf("a %d-byte SPDY control frame is buffered", length)
		}
		if !ctrl || !p.vulnerable || length > spdyGiantControl {
			n := min(8+length, len(p.buf))
			out, p.buf, p.pass = append(out, p.buf[:n]...), p.buf[n:], 8+length-n
			continue
		}
		if len(p.buf) < 8+length {
			break // wait for the whole control frame
		}
		frame := p.buf[:8+length]
		if why := p.bomb(frame); why != "" {
			return out, vCrash, why
		}
		out, p.buf = append(out, frame...), p.buf[8+length:]
	}
	return out, vPass, ""
}

// bomb reports why a complete control frame would take a vulnerable server down.
func (p *spdyInspector) bomb(frame []byte) string {
	p.in.b = frame
	fr, err := p.framer.ReadFrame()
	p.in.b = nil
	if err != nil {
		return fmt.Sprintf("SPDY control frame type %d rejected by the framer (%v)", binary.BigEndian.Uint16(frame[2:4]), err)
	}
	var h http.Header
	switch f := fr.(type) {
	case *spdy.SynStreamFrame:
		h = f.Headers
	case *spdy.HeadersFrame:
		h = f.Headers
	}
	for name, vs := range h {
		if len(vs) > fanoutValues {
			return fmt.Sprintf("header %q fans out into %d values", name, len(vs))
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if v[i] < 0x20 || v[i] > 0x7e {
					return fmt.Sprintf("header %q carries byte %#x", name, v[i])
				}
			}
		}
	}
	return ""
}

// ---- hostile modes: the front answers the stream request itself ----

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func firstToken(vs []string) string {
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				return p
			}
		}
	}
	return ""
}

// upgradeHead is a plausible 101 for the request: the first offered
// protocol is "negotiated".
func upgradeHead(req *http.Request, isWS bool) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n")
	if isWS {
		sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + wsGUID))
		fmt.Fprintf(&b, "Upgrade: websocket\r\nSec-WebSocket-Accept: %s\r\n", base64.StdEncoding.EncodeToString(sum[:]))
		if p := firstToken(req.Header.Values("Sec-WebSocket-Protocol")); p != "" {
			fmt.Fprintf(&b, "Sec-WebSocket-Protocol: %s\r\n", p)
		}
	} else {
		b.WriteString("Upgrade: SPDY/3.1\r\n")
		if p := firstToken(req.Header.Values("X-Stream-Protocol-Version")); p != "" {
			fmt.Fprintf(&b, "X-Stream-Protocol-Version: %s\r\n", p)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// bufConn replays bytes buffered past the request head.
type bufConn struct {
	net.Conn
	r io.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// capWriter stops a hostile writer at hostileWriteCap and bounds each write.
type capWriter struct {
	c       net.Conn
	written int
}

func (w *capWriter) Write(b []byte) (int, error) {
	if w.written+len(b) > hostileWriteCap {
		return 0, errors.New("hostile write cap reached")
	}
	w.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	n, err := w.c.Write(b)
	w.written += n
	return n, err
}

func (f *front) hostile(mode faults.Fault, c net.Conn, br *bufio.Reader, req *http.Request, isWS bool) {
	w := &capWriter{c: c}
	conn := &bufConn{Conn: c, r: br}
	drain := func() { io.Copy(io.Discard, conn) } //nolint:errcheck // ends when either side closes
	switch {
	case mode == faults.HostileEndlessHead:
		go func() {
			if _, err := io.WriteString(w, "HTTP/1.1 101 Switching Protocols\r\nX-Gauntlet-Endless: "); err != nil {
				return
			}
			chunk := bytes.Repeat([]byte("a"), 32<<10)
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}()
		drain()
		return
	case mode == faults.HostileHeaderBomb && isWS:
		// WebSocket has no stream headers (its head bomb is
		// hostile-endless-head): never answer.
		drain()
		return
	}
	if _, err := io.WriteString(w, upgradeHead(req, isWS)); err != nil {
		return
	}
	switch mode {
	case faults.HostileMute:
		drain()
	case faults.HostileGarbage:
		go func() {
			// Deterministic garbage, so a failure reproduces.
			rng := rand.New(rand.NewPCG(4, 35469))
			chunk := make([]byte, 32<<10)
			for {
				for i := range chunk {
					chunk[i] = byte(rng.Uint32())
				}
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}()
		drain()
	case faults.HostileGiantFrame:
		if isWS {
			// A final binary frame claiming 2^63-1 bytes, then payload for as
			// long as the client reads (up to the write cap).
			hdr := []byte{0x82, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
			go func() {
				if _, err := w.Write(hdr); err != nil {
					return
				}
				chunk := bytes.Repeat([]byte("G"), 32<<10)
				for {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			}()
		} else {
			// A DATA frame for stream 1 claiming the 24-bit maximum whose
			// payload never comes: the client's frame reader is stuck in it.
			hdr := binary.BigEndian.AppendUint32(nil, 1)
			hdr = binary.BigEndian.AppendUint32(hdr, spdy.MaxDataLength)
			if _, err := w.Write(hdr); err != nil {
				return
			}
		}
		drain()
	case faults.HostileEndless:
		if isWS {
			go wsEndless(w, req)
			drain()
			return
		}
		spdyServe(conn, func(s *spdystream.Stream) {
			s.SendReply(http.Header{}, false) //nolint:errcheck
			switch s.Headers().Get("streamType") {
			case "stdout", "stderr", "data":
				go func() {
					chunk := bytes.Repeat([]byte("y\n"), 16<<10)
					for sent := 0; sent < hostileWriteCap; sent += len(chunk) {
						if _, err := s.Write(chunk); err != nil {
							return
						}
					}
				}()
			}
		})
	case faults.HostileHeaderBomb:
		bomb := http.Header{"A": make([]string, bombValueSize+1)} // joined with NULs: a 1 MiB value
		spdyServe(conn, func(s *spdystream.Stream) {
			s.SendReply(bomb, false) //nolint:errcheck
		})
	default:
		drain()
	}
}

// spdyServe serves a SPDY server connection until the client goes.
func spdyServe(c net.Conn, handler spdystream.StreamHandler) {
	sc, err := spdystream.NewConnection(c, true)
	if err != nil {
		return
	}
	sc.Serve(handler)
	<-sc.CloseChan()
	sc.Close()
}

// wsEndless writes output frames forever on the channel a client reads first.
func wsEndless(w io.Writer, req *http.Request) {
	proto := firstToken(req.Header.Values("Sec-WebSocket-Protocol"))
	ch := byte(1) // stdout
	if strings.Contains(proto, "portforward") {
		ch = 0 // the first port's data channel
	}
	payload := bytes.Repeat([]byte("y\n"), 16<<10)
	var frame []byte
	if strings.Contains(proto, "base64") {
		msg := append([]byte{'0' + ch}, base64.StdEncoding.EncodeToString(payload)...)
		frame = append(wsServerFrameHeader(0x1, len(msg)), msg...)
	} else {
		msg := append([]byte{ch}, payload...)
		frame = append(wsServerFrameHeader(0x2, len(msg)), msg...)
	}
	for {
		if _, err := w.Write(frame); err != nil {
			return
		}
	}
}

func wsServerFrameHeader(opcode byte, n int) []byte {
	switch {
	case n < 126:
		return []byte{0x80 | opcode, byte(n)}
	case n <= 0xffff:
		return []byte{0x80 | opcode, 126, byte(n >> 8), byte(n)}
	}
	return binary.BigEndian.AppendUint64([]byte{0x80 | opcode, 127}, uint64(n))
}
