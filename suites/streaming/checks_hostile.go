package streaming

// Hostile-peer checks (issue 4): the harness plays a hostile client against
// the runtime's real stream URL (obtained through CRI Exec/PortForward), then
// verifies the runtime survived: a fresh exec still echoes, and where the
// runtime's resource use is observable (feature process-stats) it stayed
// bounded. They use nothing but the stream URL and CRI, so they run
// unchanged against containerd and CRI-O.
//
// The malformed-frame variants of C16/F4/F5 are sub-cases of G3 rather than
// checks of their own: spec names are parsed with `^\[([A-G][0-9]+)\]`
// (suite.go) and catalogue IDs are letter+number, so an ID like "G3b" would
// drop out of reports and expectations.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/spdystream/spdy"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/spdyconn"
	"github.com/gauntlet-conformance/gauntlet/internal/spdyraw"
)

// slowlorisBound is how long G5 lets a server keep a connection whose request
// headers trickle in before calling it a failure. Generous by default (Go's
// net/http has no header timeout unless the server sets one, and a runtime
// that sets 60 s is defended); GAUNTLET_SLOWLORIS_BOUND overrides it (a Go
// duration) and G5's deadline follows.
var slowlorisBound = hostileEnvDuration("GAUNTLET_SLOWLORIS_BOUND", 2*time.Minute)

// Tunables of the hostile checks.
const (
	// slowlorisInterval: one header byte every half second keeps any
	// per-read idle timer happy while the head never completes.
	slowlorisInterval = 500 * time.Millisecond
	// hostileCloseWait is how long a server gets to drop a connection after a
	// frame it must refuse; the library does it in milliseconds.
	hostileCloseWait = 3 * time.Second
	// hostileSettleWait is how long a malformed-frame sub-case watches the
	// connection before judging the runtime's health.
	hostileSettleWait = time.Second
	// hostileRSSBound is the RSS growth (--runtime-pid) a hostile input may
	// cause: well under what buffering one bomb would cost.
	hostileRSSBound = 64 << 20
	// hostileGoroutineSlack: the embedded runtime shares the harness's
	// process; a few connections may still be unwinding.
	hostileGoroutineSlack = 50
	// hostileFanoutProbe is the NUL header value G3 sends: big enough to show the
	// fan-out (spdystream v0.5.1 turns it into 64Ki+1 strings), small enough
	// that a vulnerable runtime cannot be taken down by the check itself.
	hostileFanoutProbe = 64 << 10
	// hostileWSFrameLimit is the library's per-frame limit (x/net/websocket's
	// DefaultMaxPayloadBytes); D11 sends one byte more.
	hostileWSFrameLimit = 32 << 20
)

var _ = register(
	Check{ID: "G3", Serial: true, Name: "SPDY frame bombs and malformed frames: the connection or stream is closed, the runtime survives with bounded memory",
		Labels: []string{"spdy", "security", "robustness", "hostile"}, Faults: []faults.Fault{faults.SPDYBombVulnerable}, Cases: caseSlugs(g3Cases, func(c spdyFrameCase) string { return c.name }),
		Timeout: 90 * time.Second, Run: checkG3},
	Check{ID: "G4", Serial: true, Name: "a SPDY control frame claiming 16 MiB closes the connection",
		Labels: []string{"spdy", "security", "robustness", "hostile"}, Faults: []faults.Fault{faults.SPDYOversizeHeld}, Cases: caseSlugs(g4Cases, func(c g4Case) string { return c.name }),
		Timeout: 60 * time.Second, Run: checkG4},
	Check{ID: "G5", Name: "slow request headers (slowloris) are timed out; the bound is reported",
		Labels: []string{"security", "robustness", "handshake"}, Faults: []faults.Fault{faults.NoHeaderTimeout},
		Slow: true, Timeout: slowlorisBound + 30*time.Second, Run: checkG5},
	Check{ID: "D11", Serial: true, Name: "a WebSocket frame over the server's limit (32 MiB) closes the connection without memory blow-up",
		Labels: []string{"websocket", "security", "robustness", "hostile"}, Faults: []faults.Fault{faults.WSUnboundedFrames},
		Timeout: 60 * time.Second, Run: checkD11},
)

// slowlorisBound is the target's stated header timeout plus slack, or the
// generous default when it states none.
func (e *Env) slowlorisBound() time.Duration {
	if e.Cfg.HeaderTimeout > 0 && e.Cfg.HeaderTimeout+5*time.Second < slowlorisBound {
		return e.Cfg.HeaderTimeout + 5*time.Second
	}
	return slowlorisBound
}

func hostileEnvDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
	}
	return def
}

// ---- a hand-driven upgraded connection ----

// rawPeer is an upgraded stream connection the check drives byte by byte.
// Every write has a deadline, the socket is closed when ctx ends, and the
// server's bytes are read (and bounded) in the background so the check
// sees when the server drops the connection.
type rawPeer struct {
	conn  net.Conn
	resp  *http.Response
	stop  func()
	ended chan struct{} // the server's side of the connection ended
	// writeStep bounds each write (streamStep unless a check knows the
	// server should take bytes faster).
	writeStep time.Duration

	mu      sync.Mutex
	events  []string // SPDY frames the server sent (RST_STREAM, GOAWAY, ...)
	n       int64    // bytes the server sent after the 101
	readErr error
	endedAt time.Time
}

// maxPeerHead bounds the 101 head a rawPeer reads: a hostile server must not
// grow the harness with an endless header.
const maxPeerHead = 1 << 20

// headLimitConn bounds what a WebSocket dial reads until lift: gorilla
// parses the 101 with http.ReadResponse, which has no size limit, so an
// endless header line from a hostile runtime would grow the harness for the
// whole handshake timeout (selfdefense_test.go, hostile-endless-head).
type headLimitConn struct {
	net.Conn
	mu     sync.Mutex
	left   int
	lifted bool
}

func newHeadLimitConn(c net.Conn) *headLimitConn { return &headLimitConn{Conn: c, left: maxPeerHead} }

func (h *headLimitConn) Read(b []byte) (int, error) {
	h.mu.Lock()
	if !h.lifted {
		if h.left <= 0 {
			h.mu.Unlock()
			return 0, fmt.Errorf("the runtime's upgrade answer exceeds %d KiB; the harness stopped reading", maxPeerHead>>10)
		}
		b = b[:min(len(b), h.left)]
	}
	h.mu.Unlock()
	n, err := h.Conn.Read(b)
	h.mu.Lock()
	if !h.lifted {
		h.left -= n
	}
	h.mu.Unlock()
	return n, err
}

// lift ends the limit once the handshake is over.
func (h *headLimitConn) lift() {
	h.mu.Lock()
	h.lifted = true
	h.mu.Unlock()
}

// dialRawPeer upgrades rawURL by hand: SPDY (POST, X-Stream-Protocol-Version)
// or WebSocket (GET, Sec-WebSocket-*), offering protocol.
func dialRawPeer(ctx context.Context, rawURL string, ws bool, protocol string) (*rawPeer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bad stream URL %q: %w", rawURL, err)
	}
	conn, err := spdyconn.DialRaw(ctx, u, nil)
	if err != nil {
		return nil, err
	}
	p := &rawPeer{conn: conn, ended: make(chan struct{}), writeStep: streamStep}
	unwatch := spdyconn.Watch(ctx, conn)
	var once sync.Once
	p.stop = func() { once.Do(func() { unwatch(); conn.Close() }) }

	var req strings.Builder
	if ws {
		key := make([]byte, 16)
		rand.Read(key) //nolint:errcheck // never fails
		fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
			u.RequestURI(), u.Host, base64.StdEncoding.EncodeToString(key), protocol)
	} else {
		fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"+
			"%s: %s\r\nContent-Length: 0\r\n\r\n", u.RequestURI(), u.Host, spdyconn.HeaderProtocolVersion, protocol)
	}
	if err := p.write([]byte(req.String())); err != nil {
		p.stop()
		return nil, fmt.Errorf("write upgrade request: %w", err)
	}
	conn.SetReadDeadline(time.Now().Add(streamStep))
	head := &io.LimitedReader{R: conn, N: maxPeerHead}
	br := bufio.NewReader(head)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("read upgrade response: %w", peerCtxErr(ctx, err))
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		p.stop()
		return nil, fmt.Errorf("upgrade answered %d %q, want 101", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	conn.SetReadDeadline(time.Time{})
	p.resp = resp
	pre, _ := br.Peek(br.Buffered())
	in := io.MultiReader(bytes.NewReader(append([]byte(nil), pre...)), conn)
	go p.readLoop(in, !ws)
	return p, nil
}

func peerCtxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// readLoop records what the server sends until its side ends. SPDY frames
// are decoded with tight limits (a runtime's replies are tiny); anything
// the decoder refuses is then only counted.
func (p *rawPeer) readLoop(in io.Reader, spdyFrames bool) {
	counted := &peerCounter{r: in, p: p}
	var err error
	if spdyFrames {
		fr, ferr := spdy.NewFramerWithOptions(io.Discard, counted, spdy.WithMaxControlFramePayloadSize(64<<10),
			spdy.WithMaxHeaderFieldSize(4<<10), spdy.WithMaxHeaderCount(64))
		for ferr == nil {
			var f spdy.Frame
			if f, ferr = fr.ReadFrame(); ferr == nil {
				p.record(describeSPDYFrame(f))
			}
		}
		err = ferr
	}
	// Whatever is left (or all of a WebSocket stream) is discarded: only
	// the end of the connection matters.
	if _, cerr := io.Copy(io.Discard, counted); cerr != nil || err == nil {
		err = cerr
	}
	p.mu.Lock()
	p.readErr = err
	p.endedAt = time.Now()
	p.mu.Unlock()
	close(p.ended)
}

type peerCounter struct {
	r io.Reader
	p *rawPeer
}

func (c *peerCounter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.mu.Lock()
	c.p.n += int64(n)
	c.p.mu.Unlock()
	return n, err
}

func describeSPDYFrame(f spdy.Frame) string {
	switch f := f.(type) {
	case *spdy.RstStreamFrame:
		return fmt.Sprintf("RST_STREAM(%d, status %d)", f.StreamId, f.Status)
	case *spdy.GoAwayFrame:
		return fmt.Sprintf("GOAWAY(status %d)", f.Status)
	case *spdy.SynReplyFrame:
		return fmt.Sprintf("SYN_REPLY(%d)", f.StreamId)
	case *spdy.SynStreamFrame:
		return fmt.Sprintf("SYN_STREAM(%d)", f.StreamId)
	case *spdy.DataFrame:
		return fmt.Sprintf("DATA(%d, %d bytes)", f.StreamId, len(f.Data))
	case *spdy.PingFrame:
		return fmt.Sprintf("PING(%d)", f.Id)
	}
	return fmt.Sprintf("%T", f)
}

func (p *rawPeer) record(ev string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.events) < 32 {
		p.events = append(p.events, ev)
	}
}

// write sends b with a deadline.
func (p *rawPeer) write(b []byte) error {
	p.conn.SetWriteDeadline(time.Now().Add(p.writeStep))
	_, err := p.conn.Write(b)
	return err
}

// waitEnded waits up to d for the server to drop the connection.
func (p *rawPeer) waitEnded(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.ended:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// reset reports whether the server reset stream id.
func (p *rawPeer) reset(id uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range p.events {
		if strings.HasPrefix(ev, fmt.Sprintf("RST_STREAM(%d,", id)) {
			return true
		}
	}
	return false
}

// reaction summarises what the server did so far.
func (p *rawPeer) reaction(since time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	if !p.endedAt.IsZero() {
		fmt.Fprintf(&b, "connection closed after %s", p.endedAt.Sub(since).Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "connection still open after %s", time.Since(since).Round(time.Millisecond))
	}
	if len(p.events) > 0 {
		fmt.Fprintf(&b, "; server sent %s", strings.Join(p.events, ", "))
	}
	return b.String()
}

// ---- G3 ----

// spdyFrameCase is one hostile SPDY input.
type spdyFrameCase struct {
	name string
	pf   bool // sent on a port-forward URL instead of an exec URL
	// mustClose: the server must drop the connection (or reset stream 1)
	// within hostileCloseWait. Otherwise only survival and memory are judged and
	// the reaction is reported.
	mustClose bool
	frames    func(z *spdyraw.Deflater) []byte
}

var g3Cases = []spdyFrameCase{
	{name: "SETTINGS claiming 2^32-1 entries", mustClose: true, frames: func(*spdyraw.Deflater) []byte {
		return spdyraw.Control(spdy.TypeSettings, 0, binary.BigEndian.AppendUint32(nil, 0xffffffff), -1)
	}},
	{name: "SYN_STREAM header block claiming 2^32-1 headers", mustClose: true, frames: func(z *spdyraw.Deflater) []byte {
		return spdyraw.SynStream(1, z.Block(spdyraw.NV(0xffffffff)), -1)
	}},
	{name: "SYN_STREAM header name length 2^31", mustClose: true, frames: func(z *spdyraw.Deflater) []byte {
		return spdyraw.SynStream(1, z.Block(binary.BigEndian.AppendUint32(spdyraw.NV(1), 1<<31)), -1)
	}},
	{name: fmt.Sprintf("SYN_STREAM header value of %d NULs (fan-out probe)", hostileFanoutProbe), frames: func(z *spdyraw.Deflater) []byte {
		return spdyraw.SynStream(1, z.Block(spdyraw.NV(1, "x", string(make([]byte, hostileFanoutProbe)))), -1)
	}},
	{name: "truncated SYN_STREAM (length 10: no header block) followed by a PING", frames: func(*spdyraw.Deflater) []byte {
		ids := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 1), 0)
		return append(spdyraw.Control(spdy.TypeSynStream, 0, append(ids, 0, 0), -1), spdyraw.Ping(1)...)
	}},
	{name: "SYN_STREAM with a header block that is not zlib", frames: func(*spdyraw.Deflater) []byte {
		return spdyraw.SynStream(1, []byte("this header block is not a zlib stream at all....."), -1)
	}},
	{name: "port-forward pair whose port header is garbage bytes", pf: true, frames: func(z *spdyraw.Deflater) []byte {
		port := "\xff\xfe\x00\x01\x7fgarbage"
		b := spdyraw.SynStream(1, z.Block(spdyraw.NV(3, "port", port, "requestid", "0", "streamtype", "error")), -1)
		return append(b, spdyraw.SynStream(3, z.Block(spdyraw.NV(3, "port", port, "requestid", "0", "streamtype", "data")), -1)...)
	}},
	// C16's malformed variant: one exec stream claiming several stream
	// types at once (a value splits at its NULs), the first one binary.
	{name: "exec SYN_STREAM whose streamtype is binary and several NUL-separated values", frames: func(z *spdyraw.Deflater) []byte {
		return spdyraw.SynStream(1, z.Block(spdyraw.NV(1, "streamtype", "\xff\xfe\x00stdin\x00error")), -1)
	}},
	// F5's malformed variant: a port-forward stream with no streamtype at
	// all and a binary requestid.
	{name: "port-forward SYN_STREAM without streamtype, binary requestid", pf: true, frames: func(z *spdyraw.Deflater) []byte {
		return spdyraw.SynStream(1, z.Block(spdyraw.NV(2, "port", strconv.Itoa(int(EchoPort)), "requestid", "\xff\x00\x01")), -1)
	}},
}

func checkG3(ctx context.Context, e *Env) error {
	return runSPDYFrameCases(ctx, e, "G3", g3Cases)
}

// runSPDYFrameCases sends each case on a fresh connection, then proves the
// runtime healthy; a crash ends the run (every later case would only
// repeat it).
func runSPDYFrameCases(ctx context.Context, e *Env, id string, cases []spdyFrameCase) error {
	before := hostileBaseline(ctx, e)
	failed := false
	for _, c := range cases {
		err := conformance.Case(ctx, caseSlug(c.name), func(ctx context.Context) error {
			reaction, err := sendSPDYFrameCase(ctx, e, c)
			note(ctx, id+" "+c.name, reaction)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			if err := healthy(ctx, e); err != nil {
				return fmt.Errorf("after %s: %w", c.name, err)
			}
			return nil
		})
		switch {
		case conformance.IsFailure(err):
			failed = true
		case err != nil && failed:
			// An earlier case took the runtime down; this one could not
			// even start. The failure above is the verdict.
			return nil
		case err != nil:
			return err
		}
	}
	conformance.Case(ctx, "resource-growth", func(ctx context.Context) error { return hostileGrowth(ctx, e, id, before) })
	return nil
}

// caseSlug turns a sub-case's description into the short name reports and
// expectations files use ("G3/settings-claiming-2-32-1-entries").
func caseSlug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 48 {
			break
		}
	}
	return strings.TrimRight(b.String(), "-")
}

func caseSlugs[T any](cases []T, name func(T) string) []string {
	out := make([]string, 0, len(cases)+1)
	for _, c := range cases {
		out = append(out, caseSlug(name(c)))
	}
	return append(out, "resource-growth")
}

func sendSPDYFrameCase(ctx context.Context, e *Env, c spdyFrameCase) (string, error) {
	var u string
	var err error
	proto := ProtoV4
	if c.pf {
		proto = ProtoPF
		u, err = e.PortForwardURL(ctx, "", EchoPort)
	} else {
		u, err = e.ExecURL(ctx, ExecSpec{Cmd: []string{"cat"}, Stdin: true, Stdout: true})
	}
	if err != nil {
		return "", err
	}
	p, err := dialRawPeer(ctx, u, false, proto)
	if err != nil {
		return "", err
	}
	defer p.stop()
	start := time.Now()
	if err := p.write(c.frames(spdyraw.NewDeflater())); err != nil {
		// The server may drop the connection while we still write: that
		// is a reaction, not an error.
		if !p.waitEnded(ctx, hostileCloseWait) {
			return "", fmt.Errorf("write: %w", err)
		}
	}
	if c.mustClose {
		if !p.waitEnded(ctx, hostileCloseWait) && !p.reset(1) {
			return p.reaction(start), Failf("%s; the server must reject the frame and drop the connection (or reset the stream) instead of parsing on (CVE-2026-35469 class, spdystream <= 0.5.0)", p.reaction(start))
		}
		return p.reaction(start), nil
	}
	p.waitEnded(ctx, hostileSettleWait)
	return p.reaction(start), nil
}

// ---- G4 ----

// g4Cases are control frames claiming the largest length SPDY/3 can express
// (24 bits: 16 MiB - 1; with every flag bit set the 32-bit word reads as
// 4 GiB to a parser that ignores the flags byte). mustClose marks frames no
// server can accept; for a SYN_STREAM the server may start parsing, so only
// bounded memory and survival are required and the reaction is reported.
type g4Case struct {
	name      string
	frame     []byte
	mustClose bool
}

var g4Cases = []g4Case{
	{"control frame of unknown type 0x7f claiming 16 MiB", spdyraw.Control(0x7f, 0, nil, 0xffffff), true},
	{"WINDOW_UPDATE claiming 16 MiB with every flag set (0xffffffff as a 32-bit length)", spdyraw.Control(spdy.TypeWindowUpdate, 0xff, nil, 0xffffff), true},
	{"SYN_STREAM claiming 16 MiB of zero bytes", spdyraw.Control(spdy.TypeSynStream, 0, nil, 0xffffff), false},
}

func checkG4(ctx context.Context, e *Env) error {
	before := hostileBaseline(ctx, e)
	for _, c := range g4Cases {
		err := conformance.Case(ctx, caseSlug(c.name), func(ctx context.Context) error {
			reaction, err := sendGiantControl(ctx, e, c.frame, c.mustClose)
			note(ctx, "G4 "+c.name, reaction)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			if err := healthy(ctx, e); err != nil {
				return fmt.Errorf("after %s: %w", c.name, err)
			}
			return nil
		})
		if err != nil && !conformance.IsFailure(err) {
			return err
		}
	}
	conformance.Case(ctx, "resource-growth", func(ctx context.Context) error { return hostileGrowth(ctx, e, "G4", before) })
	return nil
}

// sendGiantControl sends the frame header and then as much of the claimed
// payload as the server takes (each write bounded by streamStep: a server
// that stops reading stalls it), and with mustClose requires the server to
// drop the connection.
func sendGiantControl(ctx context.Context, e *Env, header []byte, mustClose bool) (string, error) {
	u, err := e.ExecURL(ctx, ExecSpec{Cmd: []string{"cat"}, Stdin: true, Stdout: true})
	if err != nil {
		return "", err
	}
	p, err := dialRawPeer(ctx, u, false, ProtoV4)
	if err != nil {
		return "", err
	}
	defer p.stop()
	// Loopback takes 16 MiB in well under a second; a write stalled for
	// longer means the server stopped reading.
	p.writeStep = 3 * time.Second
	start := time.Now()
	sent, werr := p.stream(ctx, header, 0xffffff, nil)
	wait := hostileCloseWait
	if !mustClose {
		wait = hostileSettleWait
	}
	closed := p.waitEnded(ctx, wait)
	what := fmt.Sprintf("%s (%d payload bytes accepted)", p.reaction(start), sent)
	if werr != nil && !closed {
		what = fmt.Sprintf("%s (%d payload bytes accepted, then the server stopped reading: %v)", p.reaction(start), sent, werr)
	}
	if mustClose && !closed {
		return what, Failf("%s; a control frame this large must be refused and the connection dropped", what)
	}
	return what, nil
}

// stream writes header, then size payload bytes (mask, if set, applied as
// WebSocket masking of zero bytes) in chunks, stopping when the server
// drops the connection. It returns how many payload bytes were written.
func (p *rawPeer) stream(ctx context.Context, header []byte, size int, mask []byte) (int, error) {
	if err := p.write(header); err != nil {
		return 0, err
	}
	chunk := make([]byte, 64<<10)
	if mask != nil {
		for i := range chunk {
			chunk[i] = mask[i%4] // 0 XOR key: the chunk length is a multiple of 4
		}
	}
	sent := 0
	for sent < size {
		select {
		case <-p.ended:
			return sent, nil
		case <-ctx.Done():
			return sent, ctx.Err()
		default:
		}
		n := min(len(chunk), size-sent)
		if err := p.write(chunk[:n]); err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

// ---- G5 ----

func checkG5(ctx context.Context, e *Env) error {
	pu, release, err := spareExecURL(ctx, e)
	if err != nil {
		return err
	}
	defer release()
	conn, err := spdyconn.DialRaw(ctx, pu, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	start := time.Now()
	ended := make(chan string, 1)
	go func() {
		// Whatever the server does (a 408, or just closing), it shows here.
		// The read is bounded by the check's deadline (conn closed below).
		b := make([]byte, 512)
		n, err := io.ReadFull(conn, b)
		ended <- fmt.Sprintf("%q (%v)", b[:n], err)
	}()
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n%s: %s\r\nX-Gauntlet-Slowloris: ",
		pu.RequestURI(), pu.Host, spdyconn.HeaderProtocolVersion, ProtoV4)
	bound := e.slowlorisBound()
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	tick := time.NewTicker(slowlorisInterval)
	defer tick.Stop()
	sent := 0
	for {
		b := byte('a')
		if sent < len(head) {
			b = head[sent]
		}
		conn.SetWriteDeadline(time.Now().Add(streamStep))
		if _, err := conn.Write([]byte{b}); err != nil {
			d := time.Since(start)
			note(ctx, "G5 slowloris bound", fmt.Sprintf("write failed after %s and %d bytes: %v", d.Round(100*time.Millisecond), sent, err))
			return healthy(ctx, e)
		}
		sent++
		select {
		case got := <-ended:
			d := time.Since(start)
			note(ctx, "G5 slowloris bound", fmt.Sprintf("the server ended the connection after %s and %d header bytes; it sent %s", d.Round(100*time.Millisecond), sent, got))
			return healthy(ctx, e)
		case <-deadline.C:
			return Failf("the server kept a connection whose request headers trickle in (one byte per %s) for %s (%d bytes, head never completed); set a header read timeout (http.Server.ReadHeaderTimeout) on the stream server", slowlorisInterval, bound, sent)
		case <-ctx.Done():
			return fmt.Errorf("slowloris: %w after %s", ctx.Err(), time.Since(start).Round(time.Second))
		case <-tick.C:
		}
	}
}

// ---- D11 ----

func checkD11(ctx context.Context, e *Env) error {
	before := hostileBaseline(ctx, e)
	u, err := e.ExecURL(ctx, ExecSpec{Cmd: []string{"cat"}, Stdin: true, Stdout: true})
	if err != nil {
		return err
	}
	p, err := dialRawPeer(ctx, u, true, WSV4Binary)
	if err != nil {
		return err
	}
	defer p.stop()
	const size = hostileWSFrameLimit + 1
	mask := make([]byte, 4)
	rand.Read(mask) //nolint:errcheck // never fails
	// A final binary frame, masked as a client must, with a 64-bit length;
	// its payload is channel 0 (stdin) followed by zeros.
	header := binary.BigEndian.AppendUint64([]byte{0x82, 0x80 | 127}, size)
	header = append(header, mask...)
	start := time.Now()
	sent, werr := p.stream(ctx, header, size, mask)
	var errs []error
	if !p.waitEnded(ctx, hostileCloseWait) {
		errs = append(errs, Failf("a %d-byte frame: %s (%d payload bytes accepted, write error %v); the server must close the connection instead of reading the frame into memory",
			size, p.reaction(start), sent, werr))
	}
	note(ctx, "D11 oversized frame", fmt.Sprintf("%s (%d of %d payload bytes accepted)", p.reaction(start), sent, size))
	p.stop()
	if err := healthy(ctx, e); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := hostileGrowth(ctx, e, "D11", before); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ---- resource bounds ----

// hostileBaseline samples the runtime's resource use, or nil when it is not
// observable (the checks then judge survival only). It first runs one exec, so
// the baseline already holds what any exec costs on a freshly started daemon
// (the test pod's shim connections, fifos, threads); otherwise that one-time
// cost reads as growth caused by the hostile input.
func hostileBaseline(ctx context.Context, e *Env) *conformance.Usage {
	if !e.Has(FeatureProcessStats) {
		return nil
	}
	_ = healthy(ctx, e) // an unhealthy runtime fails the check's own health probe
	s, err := e.Stats(ctx)
	if err != nil {
		return nil
	}
	return &s
}

// hostileSettle is how long hostileGrowth waits for the runtime to release
// what the hostile connections held: servers close their side
// asynchronously after the harness closes its side.
const hostileSettle = 10 * time.Second

// hostileGrowth fails when the runtime kept memory (or goroutines, fds,
// threads) after hostile input, once hostileSettle has passed.
func hostileGrowth(ctx context.Context, e *Env, id string, before *conformance.Usage) error {
	if before == nil {
		note(ctx, id+" resource use", "not observable (pass --runtime-pid); survival checked only")
		return nil
	}
	settle := time.Now().Add(hostileSettle)
	for {
		after, err := e.Stats(ctx)
		if err != nil {
			return err
		}
		bad := growth(*before, after)
		if len(bad) == 0 || time.Now().After(settle) {
			note(ctx, id+" resource use", fmt.Sprintf("before %+v, after %+v", *before, after))
			if len(bad) > 0 {
				return Failf("the runtime grew after hostile input (still %s after it): %s", hostileSettle, strings.Join(bad, ", "))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// growth lists what grew past its bound between two samples.
func growth(before, after conformance.Usage) []string {
	var bad []string
	if d := after.LeakedBytes - before.LeakedBytes; d > 0 {
		bad = append(bad, fmt.Sprintf("retained memory +%d bytes", d))
	}
	if d := after.RSSKiB - before.RSSKiB; d > hostileRSSBound>>10 {
		bad = append(bad, fmt.Sprintf("RSS +%d KiB", d))
	}
	if d := after.Goroutines - before.Goroutines; d > hostileGoroutineSlack {
		bad = append(bad, fmt.Sprintf("goroutines +%d", d))
	}
	if d := after.FDs - before.FDs; d > 10 {
		bad = append(bad, fmt.Sprintf("open fds +%d", d))
	}
	if d := after.Threads - before.Threads; d > 10 {
		bad = append(bad, fmt.Sprintf("threads +%d", d))
	}
	return bad
}
