package cri

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/moby/spdystream/spdy"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

type remotecommandTerminalSize = remotecommandserver.TerminalSize

func exitError(code int) error {
	return utilexec.CodeExitError{Err: fmt.Errorf("exit status %d", code), Code: code}
}

// frontWriter sits between the library and the client: it rewrites handshake
// answers (faults, the D4 fix) and wraps the hijacked connection. It must not
// implement Unwrap: the library unwraps decorators to find the original writer.
type frontWriter struct {
	http.ResponseWriter
	st     *streams
	sess   *session
	isWS   bool
	status int
}

func (w *frontWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	if w.st.r.faults.has(faults.HandshakeAs500) {
		switch code {
		case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed:
			code = http.StatusInternalServerError
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *frontWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *frontWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *frontWriter) notFound(r *http.Request) { http.NotFound(w, r) }

func (w *frontWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot hijack")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	wc := newWireConn(c, w.st, w.sess, w.isWS)
	// The library answers 101 before it hijacks, so the client's first
	// frames can already sit in net/http's buffer. They go through wc's read
	// path like the rest, or the watchers would start mid-stream (and a SPDY
	// watcher, missing the head of the zlib stream, would stop watching).
	if n := brw.Reader.Buffered(); n > 0 {
		pre, _ := brw.Reader.Peek(n)
		wc.pre = append([]byte(nil), pre...)
	}
	return wc, bufio.NewReadWriter(bufio.NewReader(wc), bufio.NewWriter(wc)), nil
}

// wireConn is the hijacked client connection. It edits the WebSocket 101 head,
// filters server frames and watches client frames for the faults that need
// the wire, and tells the session when the client is gone.
type wireConn struct {
	net.Conn
	st   *streams
	sess *session
	ws   bool

	wmu     sync.Mutex
	headEnd bool   // the HTTP response head has been written
	head    []byte // buffered head (WebSocket only)
	out     []byte // partial outbound WebSocket frame
	seen    map[byte]bool

	in       *wsReader // inbound WebSocket watcher
	spdyIn   *spdyWatcher
	readOnce sync.Once
	killed   atomic.Bool // fault ws-kill-on-bad-channel fired: the reader dies with it
	drop     *wsDropper  // inbound WebSocket frames removed before the library sees them
	pre      []byte      // client bytes net/http had buffered before the hijack; read first
}

var errKilled = errors.New("connection dropped after a bad frame (fault ws-kill-on-bad-channel)")

var errCrashed = errors.New("stream server crashed on a bad stream (fault crash-on-bad-stream / crash-on-many-streams)")

func newWireConn(c net.Conn, st *streams, s *session, ws bool) *wireConn {
	if s == nil {
		s = &session{closed: make(chan struct{}), stdinClose: make(chan struct{}), wedged: make(chan struct{})}
	}
	wc := &wireConn{Conn: c, st: st, sess: s, ws: ws, seen: map[byte]bool{}}
	f := st.r.faults
	if ws && (f.has(faults.WSCloseBeforeV5) || f.has(faults.WSKillOnBadChannel)) {
		wc.in = &wsReader{wc: wc}
	}
	if ws && f.has(faults.V5IgnoreBadClose) {
		wc.drop = &wsDropper{keep: keepUnlessBadClose}
	}
	if !ws && (f.has(faults.CrashOnBadStream) || f.has(faults.CrashOnManyStreams)) {
		wc.spdyIn = newSPDYWatcher(wc)
	}
	s.setConn(wc)
	return wc
}

func (c *wireConn) Read(b []byte) (int, error) {
	if c.drop != nil {
		return c.drop.read(c, b)
	}
	return c.read(b)
}

func (c *wireConn) read(b []byte) (int, error) {
	var n int
	var err error
	if len(c.pre) > 0 {
		n = copy(b, c.pre)
		c.pre = c.pre[n:]
	} else {
		n, err = c.Conn.Read(b)
	}
	if n > 0 {
		if c.in != nil {
			c.in.feed(b[:n])
			// Synchronously, so that the library never sees the bad frame
			// or anything after it.
			if c.killed.Load() {
				c.Conn.Close()
				c.sess.markClosed()
				return 0, errKilled
			}
		}
		if c.spdyIn != nil {
			c.spdyIn.feed(b[:n])
			// Wait for the verdict, so that a crash happens before the
			// library sees the frame (a late crash would let a check that
			// finished first pass against a "crashed" server).
			c.spdyIn.settle()
			if c.st.isCrashed() {
				c.Conn.Close()
				c.sess.markClosed()
				return 0, errCrashed
			}
		}
	}
	if err != nil {
		c.sess.markClosed()
	}
	return n, err
}

func (c *wireConn) Close() error {
	c.sess.markClosed()
	if c.spdyIn != nil {
		c.spdyIn.stop()
	}
	return c.Conn.Close()
}

func (c *wireConn) outboundFiltered() bool {
	f := c.st.r.faults
	return c.ws && (f.has(faults.WSNoReadyFrame) || f.has(faults.WSRawBase64) || f.has(faults.WSDropStatus) ||
		f.has(faults.WSNoPong) || f.has(faults.WSBadPortPrefix))
}

func (c *wireConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.ws {
		return c.Conn.Write(b)
	}
	n := len(b)
	if !c.headEnd {
		c.head = append(c.head, b...)
		i := bytes.Index(c.head, []byte("\r\n\r\n"))
		if i < 0 {
			return n, nil
		}
		c.headEnd = true
		head, rest := c.head[:i+4], c.head[i+4:]
		c.head = nil
		if _, err := c.Conn.Write(c.rewriteHead(head)); err != nil {
			return 0, err
		}
		b = rest
	}
	if !c.outboundFiltered() {
		if len(b) == 0 {
			return n, nil
		}
		if _, err := c.Conn.Write(b); err != nil {
			return 0, err
		}
		return n, nil
	}
	c.out = append(c.out, b...)
	for {
		fr, size, ok := parseServerFrame(c.out)
		if !ok {
			break
		}
		keep := c.filterFrame(&fr)
		c.out = c.out[size:]
		if keep {
			if _, err := c.Conn.Write(encodeServerFrame(fr)); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// rewriteHead applies the D4 fix (no empty Sec-WebSocket-Protocol) and the
// subprotocol faults to a 101 response head.
func (c *wireConn) rewriteHead(head []byte) []byte {
	f := c.st.r.faults
	lines := strings.Split(strings.TrimSuffix(string(head), "\r\n\r\n"), "\r\n")
	if f.has(faults.HandshakeAs500) {
		// x/net/websocket writes its handshake errors straight onto the
		// hijacked connection, past frontWriter.WriteHeader.
		for _, code := range []string{" 400 ", " 403 ", " 404 ", " 405 "} {
			if strings.Contains(lines[0]+" ", code) {
				lines[0] = "HTTP/1.1 500 Internal Server Error"
			}
		}
	}
	out := lines[:1]
	hasProto := false
	for _, l := range lines[1:] {
		name, val, _ := strings.Cut(l, ":")
		if strings.EqualFold(strings.TrimSpace(name), "Sec-WebSocket-Protocol") {
			if strings.TrimSpace(val) == "" && !f.has(faults.WSEmptyProtocol) {
				continue
			}
			if f.has(faults.WSWrongProtocol) {
				l = "Sec-WebSocket-Protocol: channel.k8s.io"
			}
			hasProto = true
		}
		out = append(out, l)
	}
	if f.has(faults.WSWrongProtocol) && !hasProto && strings.Contains(lines[0], " 101 ") {
		out = append(out, "Sec-WebSocket-Protocol: channel.k8s.io")
	}
	return []byte(strings.Join(out, "\r\n") + "\r\n\r\n")
}

// wsFrame is one RFC 6455 frame as written by the server (never masked).
type wsFrame struct {
	fin     bool
	opcode  byte
	payload []byte
}

func parseServerFrame(b []byte) (wsFrame, int, bool) {
	if len(b) < 2 {
		return wsFrame{}, 0, false
	}
	fr := wsFrame{fin: b[0]&0x80 != 0, opcode: b[0] & 0x0f}
	masked := b[1]&0x80 != 0
	l := uint64(b[1] & 0x7f)
	off := 2
	switch l {
	case 126:
		if len(b) < 4 {
			return wsFrame{}, 0, false
		}
		l, off = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return wsFrame{}, 0, false
		}
		l, off = binary.BigEndian.Uint64(b[2:]), 10
	}
	var key []byte
	if masked {
		if len(b) < off+4 {
			return wsFrame{}, 0, false
		}
		key, off = b[off:off+4], off+4
	}
	if uint64(len(b)-off) < l {
		return wsFrame{}, 0, false
	}
	fr.payload = append([]byte(nil), b[off:off+int(l)]...)
	if masked {
		for i := range fr.payload {
			fr.payload[i] ^= key[i%4]
		}
	}
	return fr, off + int(l), true
}

func encodeServerFrame(fr wsFrame) []byte {
	var h []byte
	b0 := fr.opcode
	if fr.fin {
		b0 |= 0x80
	}
	switch n := len(fr.payload); {
	case n < 126:
		h = []byte{b0, byte(n)}
	case n <= 0xffff:
		h = []byte{b0, 126, byte(n >> 8), byte(n)}
	default:
		h = make([]byte, 10)
		h[0], h[1] = b0, 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
	return append(h, fr.payload...)
}

// filterFrame applies the outbound WebSocket faults; false drops the frame.
func (c *wireConn) filterFrame(fr *wsFrame) bool {
	f := c.st.r.faults
	if fr.opcode == 0xA { // pong
		return !f.has(faults.WSNoPong)
	}
	if fr.opcode != 1 && fr.opcode != 2 || len(fr.payload) == 0 {
		return true
	}
	text := fr.opcode == 1
	ch := fr.payload[0]
	if text {
		ch -= '0'
	}
	first := !c.seen[ch]
	c.seen[ch] = true
	if f.has(faults.WSNoReadyFrame) && len(c.seen) == 1 && first && len(fr.payload) == 1 {
		return false
	}
	if f.has(faults.WSDropStatus) && ch == 3 && c.sess.kind != "portforward" {
		return false
	}
	if f.has(faults.WSRawBase64) && text {
		if raw, err := base64.StdEncoding.DecodeString(string(fr.payload[1:])); err == nil {
			fr.payload = append(fr.payload[:1:1], base64.RawStdEncoding.EncodeToString(raw)...)
		}
	}
	if f.has(faults.WSBadPortPrefix) && c.sess.kind == "portforward" && first && !text && len(fr.payload) == 3 {
		fr.payload[1], fr.payload[2] = fr.payload[2], fr.payload[1]
	}
	return true
}

// wsReader watches client frames (masked) for the inbound faults.
type wsReader struct {
	wc  *wireConn
	buf []byte
}

func (r *wsReader) feed(b []byte) {
	r.buf = append(r.buf, b...)
	for {
		fr, size, ok := parseServerFrame(r.buf)
		if !ok {
			if len(r.buf) > 64<<20 { // not our business to buffer floods
				r.buf = nil
			}
			return
		}
		r.buf = r.buf[size:]
		r.inspect(fr)
	}
}

func (r *wsReader) inspect(fr wsFrame) {
	f := r.wc.st.r.faults
	if (fr.opcode != 1 && fr.opcode != 2) || len(fr.payload) == 0 {
		return
	}
	p := fr.payload
	if f.has(faults.WSCloseBeforeV5) && len(p) == 2 && p[0] == 255 && p[1] == 0 {
		r.wc.sess.injectStdinClose()
		return
	}
	if f.has(faults.WSKillOnBadChannel) {
		ch := p[0]
		if fr.opcode == 1 {
			ch -= '0'
			if _, err := base64.StdEncoding.DecodeString(string(p[1:])); err != nil {
				r.wc.killed.Store(true)
				return
			}
		}
		if ch >= 5 && ch != 255 {
			r.wc.killed.Store(true)
		}
	}
}

// wsDropper removes whole client frames from the inbound byte stream: the
// library reads the rest unchanged (still masked as the client sent them).
type wsDropper struct {
	keep    func(wsFrame) bool
	raw     []byte // bytes read, not yet a complete frame
	pending []byte // complete kept frames, not yet returned
}

func (d *wsDropper) read(c *wireConn, b []byte) (int, error) {
	for len(d.pending) == 0 {
		buf := make([]byte, 32<<10)
		n, err := c.read(buf)
		d.raw = append(d.raw, buf[:n]...)
		for {
			fr, size, ok := parseServerFrame(d.raw)
			if !ok {
				break
			}
			if d.keep(fr) {
				d.pending = append(d.pending, d.raw[:size]...)
			}
			d.raw = d.raw[size:]
		}
		if err != nil {
			if len(d.pending) == 0 {
				return 0, err
			}
			break
		}
		if len(d.raw) > 64<<20 { // a flood is not ours to buffer: pass it on
			d.pending, d.raw = d.raw, nil
		}
	}
	n := copy(b, d.pending)
	d.pending = d.pending[n:]
	return n, nil
}

// keepUnlessBadClose drops malformed v5 close signals (fault
// v5-ignore-bad-close): anything on channel 255 but [255, stdin|stdout|stderr].
func keepUnlessBadClose(fr wsFrame) bool {
	if fr.opcode != 2 || len(fr.payload) == 0 || fr.payload[0] != 255 {
		return true
	}
	return len(fr.payload) == 2 && fr.payload[1] <= 2
}

// spdyWatcher decodes the client's SPDY frames from a copy of the byte stream
// (with its own header decompressor) for the crash faults. It never blocks the
// real reader: bytes are queued and dropped if the watcher falls behind.
type spdyWatcher struct {
	wc      *wireConn
	mu      sync.Mutex
	cond    *sync.Cond // signals buf, done and waiting changes
	buf     []byte
	done    bool
	waiting bool // run is blocked for input: everything fed has been parsed
	streams int
	types   map[string]map[string]int // requestID -> streamType -> count
}

func newSPDYWatcher(wc *wireConn) *spdyWatcher {
	w := &spdyWatcher{wc: wc, types: map[string]map[string]int{}}
	w.cond = sync.NewCond(&w.mu)
	go w.run()
	return w
}

func (w *spdyWatcher) feed(b []byte) {
	w.mu.Lock()
	if len(w.buf) < 16<<20 {
		w.buf = append(w.buf, b...)
		w.waiting = false
	}
	w.mu.Unlock()
	w.cond.Broadcast()
}

// settle returns once the watcher has parsed every complete frame fed so
// far (it is waiting for more input) or has stopped.
func (w *spdyWatcher) settle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for !w.done && !w.waiting {
		w.cond.Wait()
	}
}

func (w *spdyWatcher) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	w.cond.Broadcast()
}

func (w *spdyWatcher) Read(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.buf) == 0 && !w.done {
		w.waiting = true
		w.cond.Broadcast()
		w.cond.Wait()
	}
	w.waiting = false
	if len(w.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, w.buf)
	w.buf = w.buf[n:]
	return n, nil
}

func (w *spdyWatcher) run() {
	defer w.stop() // a parse error ends watching; settle must not wait for it
	fr, err := spdy.NewFramer(io.Discard, w)
	if err != nil {
		return
	}
	f := w.wc.st.r.faults
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			return
		}
		syn, ok := frame.(*spdy.SynStreamFrame)
		if !ok {
			continue
		}
		w.streams++
		if f.has(faults.CrashOnManyStreams) && w.streams > 100 {
			w.wc.st.crash("more than 100 streams on one connection")
			return
		}
		if !f.has(faults.CrashOnBadStream) {
			continue
		}
		st := syn.Headers.Get("streamType")
		rid := syn.Headers.Get("requestID")
		switch st {
		case "stdin", "stdout", "stderr", "error", "resize", "data":
		default:
			w.wc.st.crash("unknown streamType " + st)
			return
		}
		if w.wc.sess.kind == "portforward" {
			if p := syn.Headers.Get("port"); !validPort(p) {
				w.wc.st.crash("bad port header " + p)
				return
			}
		}
		if w.types[rid] == nil {
			w.types[rid] = map[string]int{}
		}
		w.types[rid][st]++
		if w.types[rid][st] > 1 {
			w.wc.st.crash("duplicate " + st + " stream")
			return
		}
	}
}

func validPort(s string) bool {
	_, err := parsePort(s)
	return err == nil
}

// sessionStdin passes stdin through, adds EOF when the session asks for it
// (fault ws-close-before-v5) and can withhold EOF (fault ignore-stdin-eof).
type sessionStdin struct {
	pr *io.PipeReader
}

func newSessionStdin(in io.Reader, s *session, ignoreEOF bool) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := in.Read(buf)
			select {
			case <-s.wedged:
				<-s.closed
				pw.CloseWithError(io.ErrClosedPipe)
				return
			default:
			}
			if n > 0 {
				if _, werr := pw.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if ignoreEOF {
					<-s.closed // hold the process's stdin open until the client is gone
				}
				pw.CloseWithError(err)
				return
			}
		}
	}()
	go func() {
		select {
		case <-s.stdinClose:
			pw.Close()
		case <-s.closed:
		}
	}()
	return &sessionStdin{pr: pr}
}

func (s *sessionStdin) Read(b []byte) (int, error) { return s.pr.Read(b) }

// truncWriter passes the first write and silently drops the rest (fault truncate-output).
type truncWriter struct {
	w    io.Writer
	done bool
}

func (t *truncWriter) Write(b []byte) (int, error) {
	if t.done {
		return len(b), nil
	}
	t.done = true
	return t.w.Write(b)
}

// notifyWriter reports the first failed write: the attached client is gone.
type notifyWriter struct {
	w     io.Writer
	onErr func()
}

func (n *notifyWriter) Write(b []byte) (int, error) {
	k, err := n.w.Write(b)
	if err != nil {
		n.onErr()
	}
	return k, err
}
