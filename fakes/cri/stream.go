package cri

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apiserver/pkg/util/proxy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/gauntlet-conformance/gauntlet/fakes/cri/busybox"
)

// AuthorizeFunc is the KEP-6051 AuthorizeStream hook: called after the token is
// validated and before the stream is served, with the cached CRI request
// (*runtimeapi.ExecRequest, *AttachRequest or *PortForwardRequest). A non-nil
// error answers 403 with the error text as body and burns the token.
type AuthorizeFunc func(req *http.Request, streamRequest any) error

// session is one issued stream URL and, once used, its connection.
type session struct {
	id      string
	kind    string // exec, attach, portforward
	token   string // public token in the URL
	req     any    // the CRI request as the client sent it
	expires time.Time

	mu         sync.Mutex
	conn       net.Conn // the hijacked client connection, once upgraded
	closed     chan struct{}
	closeOnce  sync.Once
	wedged     chan struct{} // a malformed resize wedged stdin (fault wedge-on-bad-resize)
	wedgeOnce  sync.Once
	stdinClose chan struct{} // injected stdin EOF (fault ws-close-before-v5)
	stdinOnce  sync.Once
}

func (s *session) setConn(c net.Conn) {
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
}

func (s *session) closeConn() {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// markClosed records that the client connection is gone.
func (s *session) markClosed() { s.closeOnce.Do(func() { close(s.closed) }) }

func (s *session) injectStdinClose() { s.stdinOnce.Do(func() { close(s.stdinClose) }) }

// streams is the stream server: a front handler in front of the library's server.
type streams struct {
	r       *Runtime
	lib     streaming.Server
	base    *url.URL
	tls     *streamTLS // https streams (Options.TLS)
	srv     *http.Server
	ln      net.Listener
	urlHost string

	mu       sync.Mutex
	sessions map[string]*session // by public token
	byID     map[string]*session // by session id (the suffix of the virtual IDs handed to the library)
	nextSess uint64
	nextTok  uint64
	crashed  bool
	conns    map[net.Conn]struct{}
	// minted are library tokens minted for alias tokens: the v5 translator
	// dials them back on this server, which must hand them to the library.
	minted map[string]bool
}

// aliasFaults make the fake hand out its own tokens and mint library tokens
// lazily at use, so token semantics can be broken one at a time.
var aliasFaults = []faults.Fault{faults.ShortToken, faults.TokenReuse, faults.NoTTL, faults.TokenCrossEndpoint,
	faults.FailedHandshakeKeepsToken, faults.NoInflightLimit, faults.NoValidation}

func (st *streams) aliasMode() bool { return st.r.opts.OwnTokens() }

// OwnTokens reports whether the options make the fake issue its own tokens
// (with Options.TokenTTL) instead of the library's (fixed 1 minute TTL).
func (o Options) OwnTokens() bool {
	if o.TokenTTL > 0 && o.TokenTTL != time.Minute {
		return true // a TTL the library cannot give
	}
	fs := newFaultSet(o.Faults)
	for _, f := range aliasFaults {
		if fs.has(f) {
			return true
		}
	}
	return false
}

func newStreams(r *Runtime) (*streams, error) {
	ln, err := net.Listen("tcp", r.opts.StreamAddr)
	if err != nil {
		return nil, fmt.Errorf("stream server: %w", err)
	}
	st := &streams{r: r, ln: ln, sessions: map[string]*session{}, byID: map[string]*session{}, conns: map[net.Conn]struct{}{}}
	st.base = &url.URL{Scheme: "http", Host: ln.Addr().String(), Path: "/"}
	if r.opts.TLS {
		t, err := newStreamTLS(r.faults)
		if err != nil {
			ln.Close()
			return nil, err
		}
		st.tls = t
		st.base.Scheme = "https"
	}
	st.urlHost = ln.Addr().String()
	cfg := streaming.DefaultConfig
	cfg.Addr = ln.Addr().String()
	cfg.BaseURL = st.base
	cfg.StreamIdleTimeout = r.opts.StreamIdleTimeout
	cfg.StreamCreationTimeout = r.opts.StreamCreationTimeout
	if r.faults.has(faults.NoIdleTimeout) {
		cfg.StreamIdleTimeout = 0
	}
	if r.faults.has(faults.LongCreationTimeout) {
		cfg.StreamCreationTimeout = time.Hour
		cfg.StreamIdleTimeout = 0
	}
	if r.faults.has(faults.SPDYNoV2) {
		cfg.SupportedRemoteCommandProtocols = slices.DeleteFunc(slices.Clone(cfg.SupportedRemoteCommandProtocols), func(p string) bool { return p == "v2.channel.k8s.io" })
	}
	lib, err := streaming.NewServer(cfg, &adapter{r: r})
	if err != nil {
		ln.Close()
		return nil, err
	}
	st.lib = lib
	st.srv = &http.Server{
		Handler:           st,
		ReadHeaderTimeout: r.opts.HeaderTimeout,
		ConnState: func(c net.Conn, s http.ConnState) {
			st.mu.Lock()
			defer st.mu.Unlock()
			switch s {
			case http.StateNew:
				st.conns[c] = struct{}{}
			case http.StateClosed:
				delete(st.conns, c)
			}
		},
	}
	if st.tls != nil {
		go st.srv.Serve(tls.NewListener(ln, st.tls.config)) //nolint:errcheck // returns on Close
		return st, nil
	}
	go st.srv.Serve(ln) //nolint:errcheck // returns on Close
	return st, nil
}

// nonLoopbackHost picks an address a remote peer could reach (fault stream-listen-all).
func nonLoopbackHost(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	addrs, _ := net.InterfaceAddrs()
	for _, ad := range addrs {
		if ipn, ok := ad.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return net.JoinHostPort(ipn.IP.String(), port)
		}
	}
	return net.JoinHostPort("0.0.0.0", port)
}

func (st *streams) close() {
	st.srv.Close()
	st.mu.Lock()
	for c := range st.conns {
		c.Close()
	}
	st.mu.Unlock()
}

// crash simulates the stream server dying: every listener and connection goes.
func (st *streams) crash(reason string) {
	st.mu.Lock()
	if st.crashed {
		st.mu.Unlock()
		return
	}
	st.crashed = true
	st.mu.Unlock()
	st.r.logf("fault: stream server crashed: %s", reason)
	st.close()
}

func (st *streams) isCrashed() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.crashed
}

// ---- CRI side: issuing URLs ----

func (st *streams) newSession(kind string, req any) *session {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.nextSess++
	return &session{
		id: fmt.Sprintf("s%d", st.nextSess), kind: kind, req: req,
		expires:    time.Now().Add(st.r.opts.TokenTTL),
		closed:     make(chan struct{}),
		stdinClose: make(chan struct{}),
		wedged:     make(chan struct{}),
	}
}

func (st *streams) register(s *session) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sessions[s.token] = s
	st.byID[s.id] = s
}

func (st *streams) publicURL(kind, token string) string {
	if st.r.faults.has(faults.RelativeURL) {
		return "/" + kind + "/" + token
	}
	host := st.urlHost
	if st.r.faults.has(faults.ListenAll) {
		// Read per URL, so the fault can be armed after the fixtures exist.
		host = nonLoopbackHost(st.ln.Addr())
	}
	u := url.URL{Scheme: st.base.Scheme, Host: host, Path: path.Join("/", kind, token)}
	return u.String()
}

// checkContainer refuses streams into containers that are not running (A11).
func (st *streams) checkContainer(id string) error {
	if st.r.faults.has(faults.ExecStopped) {
		return nil
	}
	c, err := st.r.rs.container(id)
	if err != nil {
		return err
	}
	if !c.running() {
		return status.Errorf(codes.FailedPrecondition, "container %q is not running", c.id)
	}
	return nil
}

func validateStreamOpts(stdin, stdout, stderr, tty bool) error {
	if tty && stderr {
		return status.Error(codes.InvalidArgument, "tty and stderr cannot both be true")
	}
	if !stdin && !stdout && !stderr {
		return status.Error(codes.InvalidArgument, "one of stdin, stdout, or stderr must be set")
	}
	return nil
}

func (st *streams) unavailable() error {
	if st.isCrashed() {
		return status.Error(codes.Unavailable, "stream server is down")
	}
	return nil
}

func (st *streams) getExec(req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if err := st.unavailable(); err != nil {
		return nil, err
	}
	noVal := st.r.faults.has(faults.NoValidation)
	if req.GetContainerId() == "" && !noVal {
		return nil, status.Error(codes.InvalidArgument, "missing required container_id")
	}
	if err := st.checkContainer(req.GetContainerId()); err != nil {
		return nil, err
	}
	s := st.newSession("exec", req)
	if st.aliasMode() {
		if !noVal {
			if err := validateStreamOpts(req.Stdin, req.Stdout, req.Stderr, req.Tty); err != nil {
				return nil, err
			}
		}
		if err := st.aliasToken(s); err != nil {
			return nil, err
		}
		return &runtimeapi.ExecResponse{Url: st.publicURL("exec", s.token)}, nil
	}
	u, err := st.libURL(s)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ExecResponse{Url: u}, nil
}

func (st *streams) getAttach(req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if err := st.unavailable(); err != nil {
		return nil, err
	}
	noVal := st.r.faults.has(faults.NoValidation)
	if req.GetContainerId() == "" && !noVal {
		return nil, status.Error(codes.InvalidArgument, "missing required container_id")
	}
	if err := st.checkContainer(req.GetContainerId()); err != nil {
		return nil, err
	}
	s := st.newSession("attach", req)
	if st.aliasMode() {
		if !noVal {
			if err := validateStreamOpts(req.Stdin, req.Stdout, req.Stderr, req.Tty); err != nil {
				return nil, err
			}
		}
		if err := st.aliasToken(s); err != nil {
			return nil, err
		}
		return &runtimeapi.AttachResponse{Url: st.publicURL("attach", s.token)}, nil
	}
	u, err := st.libURL(s)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.AttachResponse{Url: u}, nil
}

func (st *streams) getPortForward(req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if err := st.unavailable(); err != nil {
		return nil, err
	}
	if req.GetPodSandboxId() == "" {
		return nil, status.Error(codes.InvalidArgument, "missing required pod_sandbox_id")
	}
	if _, err := st.r.rs.sandbox(req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	s := st.newSession("portforward", req)
	if st.aliasMode() {
		if err := st.aliasToken(s); err != nil {
			return nil, err
		}
		return &runtimeapi.PortForwardResponse{Url: st.publicURL("portforward", s.token)}, nil
	}
	u, err := st.libURL(s)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PortForwardResponse{Url: u}, nil
}

// libURL asks the library for a URL whose cached request carries a virtual ID
// ("<id>@<session>") so the adapter can find the session; the token is the library's.
func (st *streams) libURL(s *session) (string, error) {
	u, err := st.mintLib(s)
	if err != nil {
		return "", err
	}
	s.token = path.Base(u)
	st.register(s)
	return st.publicURL(s.kind, s.token), nil
}

// mintLib has the library cache the session's request and returns its URL.
func (st *streams) mintLib(s *session) (string, error) {
	switch req := s.req.(type) {
	case *runtimeapi.ExecRequest:
		lr := &runtimeapi.ExecRequest{ContainerId: req.ContainerId + "@" + s.id, Cmd: req.Cmd, Tty: req.Tty, Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr}
		if st.r.faults.has(faults.NoValidation) {
			sanitize(&lr.Stdin, &lr.Stdout, &lr.Stderr, lr.Tty)
		}
		resp, err := st.lib.GetExec(lr)
		if err != nil {
			return "", err
		}
		return resp.Url, nil
	case *runtimeapi.AttachRequest:
		lr := &runtimeapi.AttachRequest{ContainerId: req.ContainerId + "@" + s.id, Tty: req.Tty, Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr}
		if st.r.faults.has(faults.NoValidation) {
			sanitize(&lr.Stdin, &lr.Stdout, &lr.Stderr, lr.Tty)
		}
		resp, err := st.lib.GetAttach(lr)
		if err != nil {
			return "", err
		}
		return resp.Url, nil
	case *runtimeapi.PortForwardRequest:
		resp, err := st.lib.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: req.PodSandboxId + "@" + s.id, Port: req.Port})
		if err != nil {
			return "", err
		}
		return resp.Url, nil
	}
	return "", fmt.Errorf("unknown request type %T", s.req)
}

// sanitize makes an invalid request acceptable to the library (fault no-request-validation).
func sanitize(stdin, stdout, stderr *bool, tty bool) {
	if tty {
		*stderr = false
	}
	if !*stdin && !*stdout && !*stderr {
		*stdout = true
	}
}

// aliasToken issues a fake-owned token (alias mode).
func (st *streams) aliasToken(s *session) error {
	st.mu.Lock()
	if !st.r.faults.has(faults.NoInflightLimit) {
		live := 0
		now := time.Now()
		for tok, o := range st.sessions {
			if now.After(o.expires) && !st.r.faults.has(faults.NoTTL) {
				delete(st.sessions, tok)
				continue
			}
			live++
		}
		if live >= 1000 {
			st.mu.Unlock()
			return streaming.NewErrorTooManyInFlight()
		}
	}
	st.nextTok++
	n := st.nextTok
	st.mu.Unlock()
	if st.r.faults.has(faults.ShortToken) {
		const alpha = "abcdefghijklmnopqrstuvwxyz"
		s.token = string([]byte{alpha[(n/26)%26], alpha[n%26]})
	} else {
		b := make([]byte, 6)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		s.token = base64.RawURLEncoding.EncodeToString(b)
	}
	st.register(s)
	return nil
}

// ---- HTTP side ----

func splitStreamPath(p string) (kind, token string, ok bool) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) != 2 {
		return "", "", false
	}
	switch parts[0] {
	case "exec", "attach", "portforward":
		return parts[0], parts[1], true
	}
	return "", "", false
}

// take finds the session for a public token and, unless a fault keeps it, consumes it.
func (st *streams) take(token string) (*session, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.sessions[token]
	if !ok {
		return nil, false
	}
	if !st.r.faults.has(faults.TokenReuse) {
		delete(st.sessions, token)
	}
	if time.Now().After(s.expires) && !st.r.faults.has(faults.NoTTL) {
		delete(st.sessions, token)
		return nil, false
	}
	return s, true
}

func (st *streams) wasMinted(token string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.minted[token]
}

func (st *streams) restore(s *session) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sessions[s.token] = s
}

func (st *streams) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if st.isCrashed() {
		hj, ok := w.(http.Hijacker)
		if ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
		return
	}
	kind, token, ok := splitStreamPath(r.URL.Path)
	isWS := wsstream.IsWebSocketRequest(r)
	fw := &frontWriter{ResponseWriter: w, st: st, isWS: isWS}
	if !ok {
		st.lib.ServeHTTP(fw, r)
		return
	}
	alias := st.aliasMode()
	if alias && r.Method != http.MethodGet && r.Method != http.MethodPost {
		// The library refuses other methods before it looks at the token.
		fw.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	s, found := st.take(token)
	if !found && alias && st.wasMinted(token) {
		st.lib.ServeHTTP(fw, r)
		return
	}
	if !found {
		// Unknown, used or expired token: the library answers (404), or in alias
		// mode we answer the same way it would.
		if alias {
			fw.notFound(r)
			return
		}
		st.lib.ServeHTTP(fw, r)
		return
	}
	fw.sess = s
	if s.kind != kind && !st.r.faults.has(faults.TokenCrossEndpoint) {
		if alias {
			fw.notFound(r)
			return
		}
		// the library burns the token and 404s on a kind mismatch.
		st.lib.ServeHTTP(fw, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		if alias {
			fw.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		st.lib.ServeHTTP(fw, r)
		return
	}

	if err := st.authorize(r, s); err != nil {
		st.deny(fw, r, s, err)
		return
	}

	st.applyRequestFaults(r, s, isWS)

	libToken := token
	if alias {
		u, err := st.mintLib(s)
		if err != nil {
			http.Error(fw, err.Error(), http.StatusInternalServerError)
			return
		}
		libToken = path.Base(u)
		st.mu.Lock()
		if st.minted == nil {
			st.minted = map[string]bool{}
		}
		st.minted[libToken] = true
		st.mu.Unlock()
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = path.Join("/", s.kind, libToken)
	r2.RequestURI = r2.URL.RequestURI()

	if req, ok := s.req.(*runtimeapi.PortForwardRequest); ok && isWS && len(req.Port) == 0 && st.r.faults.has(faults.WSPFNoPortsOpen) {
		st.holdOpen(fw, r)
		return
	}
	if isWS && s.kind != "portforward" && wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) && !st.r.faults.has(faults.V5NotServed) && st.r.opts.ServeV5 && st.tls == nil {
		st.serveV5(fw, r2, s)
	} else {
		st.lib.ServeHTTP(fw, r2)
	}
	if alias && st.r.faults.has(faults.FailedHandshakeKeepsToken) && fw.status >= 400 {
		st.restore(s)
	}
}

// holdOpen upgrades a WebSocket and keeps it open, silent, until the client
// goes or the idle timeout passes (fault ws-pf-no-ports-open).
func (st *streams) holdOpen(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{Subprotocols: websocket.Subprotocols(r)}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(st.r.opts.StreamIdleTimeout)) //nolint:errcheck
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return
		}
	}
}

// serveV5 is what kubelet >= 1.36 does for v5.channel.k8s.io: translate the
// WebSocket stream into SPDY towards the CRI stream URL (here: ourselves).
func (st *streams) serveV5(w http.ResponseWriter, r *http.Request, s *session) {
	var opts proxy.Options
	switch req := s.req.(type) {
	case *runtimeapi.ExecRequest:
		opts = proxy.Options{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, Tty: req.Tty}
	case *runtimeapi.AttachRequest:
		opts = proxy.Options{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, Tty: req.Tty}
	}
	loc := *st.base
	loc.Path = r.URL.Path
	proxy.NewStreamTranslatorHandler(&loc, nil, 0, opts).ServeHTTP(w, r)
}

func (st *streams) authorize(r *http.Request, s *session) error {
	hook := st.r.opts.Authorize
	if hook == nil && st.r.faults.has(faults.AuthzWithoutHook) {
		hook = DefaultPolicy().Hook()
	}
	if hook == nil || st.r.faults.has(faults.AuthzAfterStart) {
		return nil
	}
	return hook(r, s.req)
}

func (st *streams) deny(w http.ResponseWriter, r *http.Request, s *session, err error) {
	if st.r.faults.has(faults.AuthzKeepsToken) {
		st.restore(s)
	} else if !st.aliasMode() {
		// Burn the library's token too: a plain GET consumes it and fails the
		// handshake before anything runs.
		burn := httptest.NewRequest(http.MethodGet, path.Join("/", s.kind, s.token), nil)
		st.lib.ServeHTTP(httptest.NewRecorder(), burn)
	}
	code := http.StatusForbidden
	if st.r.faults.has(faults.AuthzDenyAs401) {
		code = http.StatusUnauthorized
	}
	body := err.Error()
	if st.r.faults.has(faults.AuthzNoBody) {
		body = http.StatusText(code)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, body+"\n") //nolint:errcheck
}

func (st *streams) applyRequestFaults(r *http.Request, s *session, isWS bool) {
	f := st.r.faults
	if isWS {
		if f.has(faults.WSAcceptAny) {
			offered := strings.Split(r.Header.Get("Sec-WebSocket-Protocol"), ",")
			known := false
			for _, p := range offered {
				switch strings.TrimSpace(p) {
				case "channel.k8s.io", "base64.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "v5.channel.k8s.io", "", "portforward.k8s.io", "v4.base64.portforward.k8s.io":
					known = true
				}
			}
			if !known {
				r.Header.Set("Sec-WebSocket-Protocol", "channel.k8s.io")
			}
		}
		return
	}
	const hdr = "X-Stream-Protocol-Version"
	if f.has(faults.SPDYDowngrade) {
		var all []string
		for _, v := range r.Header.Values(hdr) {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					all = append(all, p)
				}
			}
		}
		if len(all) > 0 {
			r.Header.Set(hdr, all[len(all)-1])
		}
	}
	if f.has(faults.SPDYDefaultVersion) && len(r.Header.Values(hdr)) == 0 {
		if s.kind == "portforward" {
			r.Header.Set(hdr, "portforward.k8s.io")
		} else {
			r.Header.Set(hdr, "v4.channel.k8s.io")
		}
	}
	if f.has(faults.LenientUpgrade) {
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "SPDY/3.1")
	}
}

// ---- the library's Runtime ----

// adapter is the streaming.Runtime the library calls once streams are set up.
type adapter struct{ r *Runtime }

// resolve splits a virtual ID "<id>@<session>".
func (a *adapter) resolve(vid string) (id string, s *session) {
	id, sid, _ := strings.Cut(vid, "@")
	a.r.streams.mu.Lock()
	s = a.r.streams.byID[sid]
	a.r.streams.mu.Unlock()
	if s == nil {
		s = &session{closed: make(chan struct{}), stdinClose: make(chan struct{}), wedged: make(chan struct{})}
	}
	return id, s
}

func (a *adapter) Exec(ctx context.Context, vid string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandTerminalSize) error {
	id, s := a.resolve(vid)
	c, err := a.r.rs.container(id)
	if err != nil {
		return err
	}
	f := a.r.faults
	stdio := busybox.Stdio{}
	if in != nil {
		stdio.Stdin = newSessionStdin(in, s, f.has(faults.IgnoreStdinEOF))
	}
	if out != nil {
		stdio.Stdout = out
	}
	if errw != nil {
		stdio.Stderr = errw
	}
	if f.has(faults.SwapStdoutStderr) && !tty {
		stdio.Stdout, stdio.Stderr = stdio.Stderr, stdio.Stdout
	}
	// Key on the request, not on in: WebSocket execs get a stdin reader even
	// with stdin=false.
	noStdin := in == nil
	if req, ok := s.req.(*runtimeapi.ExecRequest); ok {
		noStdin = !req.GetStdin()
	}
	if f.has(faults.TruncateOutput) && noStdin && stdio.Stdout != nil {
		stdio.Stdout = &truncWriter{w: stdio.Stdout}
	}
	if tty {
		term := newTerminal()
		stdio.TTY = term
		stdio.Stderr = stdio.Stdout
		if resize != nil {
			late := f.has(faults.LateInitialSize)
			go func() {
				if late {
					time.Sleep(300 * time.Millisecond)
				}
				term.follow(resize, f.has(faults.IgnoreResize), f.has(faults.ApplyZeroResize))
				// The resize channel ends early only when the library gave up
				// decoding a malformed message.
				if f.has(faults.WedgeOnBadResize) {
					s.wedgeOnce.Do(func() { close(s.wedged) })
				}
			}()
			// Apply the client's initial size before the process starts
			// (kubernetes#47990): wait briefly for it.
			if !late {
				select {
				case <-term.set:
				case <-time.After(time.Second):
				}
			}
		}
	} else if resize != nil {
		go func() {
			for range resize {
			}
		}()
	}
	if f.has(faults.AuthzAfterStart) && a.r.opts.Authorize != nil {
		// The broken hook placement: the command is already running when
		// authorization happens, and the verdict is ignored.
		go func() {
			time.Sleep(50 * time.Millisecond)
			_ = a.r.opts.Authorize(nil, s.req)
		}()
	}
	code := c.machine.Run(ctx, cmd, stdio)
	if code == 0 {
		if f.has(faults.NoSuccessStatus) {
			s.closeConn()
		}
		return nil
	}
	if f.has(faults.WrongExitCode) {
		code = code%255 + 1
	}
	return exitError(code)
}

func (a *adapter) Attach(ctx context.Context, vid string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandTerminalSize) error {
	id, s := a.resolve(vid)
	c, err := a.r.rs.container(id)
	if err != nil {
		return err
	}
	if !c.running() {
		return fmt.Errorf("container %q is not running", c.id)
	}
	f := a.r.faults
	if f.has(faults.LeakOnAttach) {
		a.r.leak()
	}
	failed := make(chan struct{})
	var failOnce sync.Once
	onFail := func() { failOnce.Do(func() { close(failed) }) }
	if out != nil {
		id := c.stdout.subscribe(&notifyWriter{w: out, onErr: onFail})
		defer c.stdout.unsubscribe(id)
	}
	if errw != nil && !tty {
		id := c.stderr.subscribe(&notifyWriter{w: errw, onErr: onFail})
		defer c.stderr.unsubscribe(id)
	}
	if resize != nil {
		go c.term.follow(resize, f.has(faults.IgnoreResize), f.has(faults.ApplyZeroResize))
	}
	stdinDone := make(chan struct{})
	if in != nil && c.stdin != nil && !f.has(faults.AttachNoStdin) {
		go func() {
			defer close(stdinDone)
			src := newSessionStdin(in, s, f.has(faults.IgnoreStdinEOF))
			io.Copy(c.stdin, src) //nolint:errcheck // EOF or a dropped client both end the copy
			if c.config.GetStdinOnce() {
				c.stdin.Close()
			}
		}()
	}
	select {
	case <-c.done:
	case <-failed:
	case <-s.closed:
	case <-ctx.Done():
	}
	return nil
}

func (a *adapter) PortForward(ctx context.Context, vid string, port int32, stream io.ReadWriteCloser) error {
	id, s := a.resolve(vid)
	sb, err := a.r.rs.sandbox(id)
	if err != nil {
		return err
	}
	f := a.r.faults
	fail := func(err error) error {
		if f.has(faults.PFResetKillsConn) {
			s.closeConn()
		}
		if f.has(faults.PFSilentRefuse) {
			return nil
		}
		return err
	}
	if req, ok := s.req.(*runtimeapi.PortForwardRequest); ok && !f.has(faults.PFAnyPort) && !slices.Contains(req.Port, port) {
		// The fix for F8: the library forwards any port the client names.
		return fail(fmt.Errorf("port %d is not one of the ports in the PortForwardRequest %v", port, req.Port))
	}
	if sb.hostNetwork && f.has(faults.HostNetPF) {
		return fail(fmt.Errorf("port forward into host-network sandbox %s: not supported", sb.id))
	}
	target := int(port)
	if f.has(faults.PortIgnored) {
		for _, p := range sb.netns.Ports() {
			if p != target {
				target = p
				break
			}
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := sb.netns.Dial(dctx, target)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("failed to connect to localhost:%d inside namespace of %s: %w", port, sb.id, err))
	}
	defer conn.Close()
	go func() {
		io.Copy(conn, stream) //nolint:errcheck
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			conn.Close()
		}
	}()
	if _, err := io.Copy(stream, conn); err != nil && !errors.Is(err, io.EOF) {
		return fail(fmt.Errorf("copy from localhost:%d: %w", port, err))
	}
	return nil
}
