// Package spdyconn is a raw SPDY/3.1 client for stream URLs: it performs the
// HTTP/1.1 upgrade itself (so checks control every handshake header and see
// every answer) and hands back a moby/spdystream connection whose lifetime is
// bound to a context — when the context ends, the socket is closed, so no read
// can outlive a check's deadline.
package spdyconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/moby/spdystream"
	"github.com/moby/spdystream/spdy"
)

// Header names of the remotecommand and portforward protocols.
const (
	HeaderProtocolVersion   = "X-Stream-Protocol-Version"
	HeaderAcceptedProtocols = "X-Accepted-Stream-Protocol-Versions"
	HeaderStreamType        = "streamType"
	HeaderPort              = "port"
	HeaderRequestID         = "requestID"
)

// Stream types.
const (
	StreamError  = "error"
	StreamStdin  = "stdin"
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamResize = "resize"
	StreamData   = "data"
)

// ErrNotUpgraded is returned (wrapped in *HandshakeError) when the server answers
// anything but 101.
var ErrNotUpgraded = errors.New("not upgraded")

// HandshakeError carries a non-101 answer.
type HandshakeError struct {
	Status int
	Header http.Header
	Body   string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("handshake answered %d: %s", e.Status, strings.TrimSpace(e.Body))
}

func (e *HandshakeError) Unwrap() error { return ErrNotUpgraded }

// Limits on what a server may send. Stream replies carry a few short
// headers; spdystream's defaults (1000 headers of 1 MiB) let one SYN_REPLY
// whose value is NULs fan out into ~10^9 strings (fuzz/findings_test.go:
// TestFindingSPDYHeaderValueFanout), so a hostile runtime could exhaust the
// harness's memory.
const maxResponseHead = 1 << 20

var frameLimits = []spdy.FramerOption{
	spdy.WithMaxControlFramePayloadSize(64 << 10),
	spdy.WithMaxHeaderFieldSize(4 << 10),
	spdy.WithMaxHeaderCount(64),
}

// Conn is an upgraded SPDY connection.
type Conn struct {
	*spdystream.Connection
	Raw      net.Conn
	Protocol string      // X-Stream-Protocol-Version echoed by the server
	Header   http.Header // the 101's headers
	stop     chan struct{}
	once     sync.Once
}

// Options tune Dial. Zero values mean: POST, Upgrade: SPDY/3.1, Connection: Upgrade.
type Options struct {
	Method    string
	Header    http.Header // extra/overriding request headers
	TLSConfig *tls.Config
	// NoDefaults sends exactly Header (for handshake-error checks).
	NoDefaults bool
}

// Dial upgrades rawURL to SPDY offering protocols (in preference order). The
// returned connection is closed when ctx ends.
func Dial(ctx context.Context, rawURL string, protocols []string, o Options) (*Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bad stream URL %q: %w", rawURL, err)
	}
	raw, err := DialRaw(ctx, u, o.TLSConfig)
	if err != nil {
		return nil, err
	}
	method := o.Method
	if method == "" {
		method = http.MethodPost
	}
	req := &http.Request{Method: method, URL: u, Host: u.Host, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	if !o.NoDefaults {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "SPDY/3.1")
		for _, p := range protocols {
			req.Header.Add(HeaderProtocolVersion, p)
		}
	}
	for k, vs := range o.Header {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	stopWatch := Watch(ctx, raw)
	if err := req.Write(raw); err != nil {
		stopWatch()
		raw.Close()
		return nil, fmt.Errorf("write upgrade request: %w", ctxErr(ctx, err))
	}
	// The answer's head is bounded: a hostile server must not grow the
	// harness with an endless header (http.ReadResponse has no limit).
	head := &io.LimitedReader{R: raw, N: maxResponseHead}
	br := bufio.NewReader(head)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		stopWatch()
		raw.Close()
		if head.N == 0 {
			err = fmt.Errorf("the answer's head exceeds %d KiB (%v)", maxResponseHead>>10, err)
		}
		return nil, fmt.Errorf("read upgrade response: %w", ctxErr(ctx, err))
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		stopWatch()
		raw.Close()
		return nil, &HandshakeError{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
	}
	nc := net.Conn(raw)
	if br.Buffered() > 0 {
		pre, _ := br.Peek(br.Buffered())
		nc = &prefixConn{Conn: raw, pre: append([]byte(nil), pre...)}
	}
	sc, err := spdystream.NewConnectionWithOptions(nc, false, frameLimits...)
	if err != nil {
		stopWatch()
		raw.Close()
		return nil, err
	}
	go sc.Serve(spdystream.NoOpStreamHandler)
	c := &Conn{Connection: sc, Raw: raw, Protocol: resp.Header.Get(HeaderProtocolVersion), Header: resp.Header, stop: make(chan struct{})}
	go func() {
		select {
		case <-c.stop:
		case <-sc.CloseChan():
		}
		stopWatch()
	}()
	return c, nil
}

// DialRaw opens a TCP (or TLS) connection to the URL's host with ctx's deadline.
func DialRaw(ctx context.Context, u *url.URL, tlsCfg *tls.Config) (net.Conn, error) {
	host := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			host += ":443"
		} else {
			host += ":80"
		}
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if u.Scheme == "https" {
		cfg := tlsCfg
		if cfg == nil {
			cfg = &tls.Config{}
		}
		td := tls.Dialer{NetDialer: &d, Config: cfg}
		c, err := td.DialContext(ctx, "tcp", host)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", host, err)
		}
		return c, nil
	}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", host, err)
	}
	return c, nil
}

// Watch closes c when ctx ends, so a blocked read or write returns; the
// returned func stops watching.
func Watch(ctx context.Context, c net.Conn) func() {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			c.Close()
		case <-done:
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// Close closes the SPDY connection and the socket.
func (c *Conn) Close() error {
	c.once.Do(func() { close(c.stop) })
	c.Connection.Close()
	return c.Raw.Close()
}

// Closed reports whether the server (or we) closed the connection.
func (c *Conn) Closed() <-chan bool { return c.CloseChan() }

// OpenStream creates a stream with the given headers and waits for the server's reply.
func (c *Conn) OpenStream(headers http.Header, timeout time.Duration) (*spdystream.Stream, error) {
	s, err := c.CreateStream(headers, nil, false)
	if err != nil {
		return nil, err
	}
	if err := s.WaitTimeout(timeout); err != nil {
		return s, fmt.Errorf("stream %v not answered: %w", headers, err)
	}
	return s, nil
}

// prefixConn replays bytes the HTTP reader buffered past the 101 head.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}
