package meshexec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gauntlet-conformance/gauntlet/faults"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/internal/tailbuf"
)

// Options configure a client.
type Options struct {
	// Stderr receives a copy of the driver's stderr (nil: only its tail
	// is kept, for error messages).
	Stderr io.Writer
	// Env is added to the driver's environment; Dir is its working
	// directory ("": the current one).
	Env []string
	Dir string
	// MaxLine limits one line in either direction (0: MaxLine).
	MaxLine int
	// CallTimeout bounds a call whose context has no deadline (0: 5 min).
	CallTimeout time.Duration
	// HelloTimeout bounds the handshake when Start's context has no
	// deadline (0: 1 min).
	HelloTimeout time.Duration
	// CloseGrace is how long Close waits for the driver to exit after its
	// stdin closed before it signals the driver's process group (0: 5 s).
	CloseGrace time.Duration
}

func (o *Options) defaults() {
	if o.MaxLine <= 0 {
		o.MaxLine = MaxLine
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 5 * time.Minute
	}
	if o.HelloTimeout <= 0 {
		o.HelloTimeout = time.Minute
	}
	if o.CloseGrace <= 0 {
		o.CloseGrace = 5 * time.Second
	}
}

// Client is a meshpolicy.Driver served by another process (or, for tests,
// by Serve over any pipe). Calls are multiplexed on one connection; each is
// bounded by its context's deadline on this side, whatever the driver does.
type Client struct {
	opts   Options
	label  string // "mesh driver NAME", in errors
	hello  Hello
	protos []mp.Protocol

	r     io.ReadCloser
	w     io.WriteCloser
	queue chan []byte

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan Frame
	broken  error
	dead    chan struct{} // closed when broken

	proc      *process // nil: not a process of ours
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

var (
	_ mp.Driver         = (*Client)(nil)
	_ mp.ProtocolLister = (*Client)(nil)
	_ FeatureLister     = (*Client)(nil)
)

// Start runs argv as a mesh driver, its stderr copied to stderr (may be
// nil), and shakes hands with it within ctx's deadline. The result is a
// *Client; close it (Client.Close) to stop the driver.
func Start(ctx context.Context, argv []string, stderr io.Writer) (mp.Driver, error) {
	c, err := StartWith(ctx, argv, Options{Stderr: stderr})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// StartWith is Start with options.
func StartWith(ctx context.Context, argv []string, o Options) (*Client, error) {
	o.defaults()
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("meshexec: no mesh driver command")
	}
	label := "mesh driver " + filepath.Base(argv[0])
	p, stdin, stdout, err := startProcess(argv, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	c := newClient(stdout, stdin, o, label)
	c.proc = p
	go func() {
		<-p.exited
		// Its stdout may stay open in a grandchild: the exit alone breaks
		// the connection, after a moment for the last answers to arrive.
		select {
		case <-c.dead:
		case <-time.After(time.Second):
			c.fail(c.exitError())
		}
	}()
	if err := c.handshake(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// NewClient speaks the protocol over r and w (e.g. pipes to Serve in the
// same process) and shakes hands within ctx's deadline. Close closes both.
func NewClient(ctx context.Context, r io.ReadCloser, w io.WriteCloser, o Options) (*Client, error) {
	o.defaults()
	c := newClient(r, w, o, "mesh driver")
	if err := c.handshake(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func newClient(r io.ReadCloser, w io.WriteCloser, o Options, label string) *Client {
	c := &Client{opts: o, label: label, r: r, w: w, queue: make(chan []byte, 64),
		pending: map[uint64]chan Frame{}, dead: make(chan struct{})}
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return c
}

func (c *Client) handshake(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.HelloTimeout)
		defer cancel()
	}
	var h Hello
	if err := c.call(ctx, MethodHello, helloParams{Version: Version}, &h); err != nil {
		return err
	}
	if h.Version != Version {
		return fmt.Errorf("%s speaks meshexec protocol version %d, want %d", c.label, h.Version, Version)
	}
	if h.TrustDomain == "" {
		return fmt.Errorf("%s: hello names no trustDomain", c.label)
	}
	if h.Name == "" {
		h.Name = c.label
	}
	var protos []mp.Protocol
	for _, s := range h.Protocols {
		p, ok := mp.ParseProtocol(s)
		if !ok {
			return fmt.Errorf("%s: hello names protocol %q (known: HTTP, TCP, GRPC)", c.label, s)
		}
		protos = append(protos, p)
	}
	if len(protos) == 0 {
		protos = mp.AllProtocols
	}
	c.hello = h
	c.protos = ordered(protos)
	return nil
}

// ordered returns ps in mp.AllProtocols order, without duplicates.
func ordered(ps []mp.Protocol) []mp.Protocol {
	var out []mp.Protocol
	for _, p := range mp.AllProtocols {
		for _, q := range ps {
			if p == q {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	dec := NewDecoder(c.r, c.opts.MaxLine)
	for {
		f, err := dec.Decode()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed):
				c.fail(c.exitError())
			case errors.Is(err, ErrMalformed) || errors.Is(err, ErrLineTooLong):
				c.fail(fmt.Errorf("%s broke the protocol (it must write only protocol lines to stdout and log to stderr): %w", c.label, err))
			default:
				c.fail(fmt.Errorf("%s: read its stdout: %w", c.label, err))
			}
			return
		}
		if f.IsRequest() {
			c.fail(fmt.Errorf("%w: %s sent a request (%s); drivers only answer", ErrMalformed, c.label, f.Method))
			return
		}
		c.mu.Lock()
		ch, ok := c.pending[f.ID]
		delete(c.pending, f.ID)
		c.mu.Unlock()
		if ok {
			ch <- f // buffered: never blocks
		}
		// else: a late answer to a call that gave up.
	}
}

func (c *Client) writeLoop() {
	defer c.wg.Done()
	for {
		select {
		case b := <-c.queue:
			if _, err := c.w.Write(b); err != nil {
				werr := fmt.Errorf("%s: write its stdin: %w", c.label, err)
				if c.proc != nil && c.proc.exitedWithin(3*time.Second) {
					werr = c.exitError() // usually why the write failed
				}
				c.fail(werr)
				return
			}
		case <-c.dead:
			return
		}
	}
}

// fail breaks the connection: every pending and later call fails with err.
func (c *Client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return
	}
	c.broken = err
	close(c.dead)
}

func (c *Client) brokenErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// exitError describes the driver's end: its exit status and stderr tail.
func (c *Client) exitError() error {
	if c.proc == nil {
		return &kindError{ErrDriverExited, c.label + " closed the connection"}
	}
	select {
	case <-c.proc.exited:
	case <-time.After(3 * time.Second):
		return &kindError{ErrDriverExited, c.label + " closed its stdout but is still running" + c.proc.stderrTail()}
	}
	status := "exit status 0"
	if c.proc.waitErr != nil {
		status = c.proc.waitErr.Error()
	}
	return &kindError{ErrDriverExited, fmt.Sprintf("%s exited (%s)%s", c.label, status, c.proc.stderrTail())}
}

// kindError is an error with its own text that is one of the sentinels.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// call sends one request and waits for its answer, at most until ctx's
// deadline (or CallTimeout when it has none).
func (c *Client) call(ctx context.Context, method string, params, result any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.CallTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	timeout := time.Until(deadline)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", c.label, method, context.Cause(ctx))
	}
	var raw json.RawMessage
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("%s %s: encode params: %w", c.label, method, err)
		}
		raw = b
	}
	c.mu.Lock()
	if c.broken != nil {
		err := c.broken
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, err)
	}
	c.next++
	id := c.next
	ch := make(chan Frame, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	b, err := Encode(Frame{ID: id, Method: method, Timeout: timeout, Params: raw}, c.opts.MaxLine)
	if err != nil {
		forget()
		return fmt.Errorf("%s %s: %w", c.label, method, err)
	}
	stalled := func() error {
		forget()
		if method != MethodHello {
			c.cancelCall(id)
		}
		cause := context.Cause(ctx)
		if cause == nil { // the deadline passed, its timer has not run yet
			cause = context.DeadlineExceeded
		}
		return fmt.Errorf("%s did not answer %s within %s (the call's deadline): %w", c.label, method, timeout.Round(10*time.Millisecond), cause)
	}
	select {
	case c.queue <- b:
	case <-ctx.Done():
		return stalled()
	case <-c.dead:
		forget()
		return fmt.Errorf("%s: %w", method, c.brokenErr())
	}
	var a Frame
	select {
	case a = <-ch:
	case <-ctx.Done():
		return stalled()
	case <-c.dead:
		select {
		case a = <-ch: // answered just before the end
		default:
			forget()
			return fmt.Errorf("%s: %w", method, c.brokenErr())
		}
	}
	if a.Error != nil && (ctx.Err() != nil || !time.Now().Before(deadline)) {
		// The driver gave up at the same deadline: say so from this side.
		return stalled()
	}
	if a.Error != nil {
		switch {
		case a.Error.Rejected != nil:
			return &mp.RejectedError{Reason: *a.Error.Rejected}
		case a.Error.Class != "":
			return &mp.ClassError{Class: mp.ErrorClass(a.Error.Class), Msg: a.Error.Message}
		}
		return errors.New(a.Error.Message)
	}
	if result == nil {
		return nil
	}
	if a.Result == nil {
		return fmt.Errorf("%s answered %s without a result", c.label, method)
	}
	if err := json.Unmarshal(a.Result, result); err != nil {
		return fmt.Errorf("%s answered %s with a bad result: %v", c.label, method, err)
	}
	return nil
}

// cancelCall tells the driver the caller gave up on call id (best effort:
// never blocks).
func (c *Client) cancelCall(id uint64) {
	b, err := Encode(Frame{Method: MethodCancel, Params: json.RawMessage(fmt.Sprintf(`{"id":%d}`, id))}, c.opts.MaxLine)
	if err != nil {
		return
	}
	select {
	case c.queue <- b:
	default:
	}
}

// Name implements meshpolicy.Driver (the driver's hello).
func (c *Client) Name() string { return c.hello.Name }

// TrustDomain implements meshpolicy.Driver.
func (c *Client) TrustDomain() string { return c.hello.TrustDomain }

// ConvergenceBound implements meshpolicy.Driver.
func (c *Client) ConvergenceBound() time.Duration { return c.hello.ConvergenceBound }

// Protocols implements meshpolicy.ProtocolLister.
func (c *Client) Protocols() []mp.Protocol { return append([]mp.Protocol(nil), c.protos...) }

// Features are the suite features the driver declared in its hello.
func (c *Client) Features() []string { return append([]string(nil), c.hello.Features...) }

// Deploy implements meshpolicy.Driver.
func (c *Client) Deploy(ctx context.Context, w mp.Workload) error {
	return c.call(ctx, MethodDeploy, w, nil)
}

// DeployClient implements meshpolicy.Driver.
func (c *Client) DeployClient(ctx context.Context, id mp.Identity) error {
	return c.call(ctx, MethodDeployClient, id, nil)
}

// Relabel implements meshpolicy.Driver.
func (c *Client) Relabel(ctx context.Context, w mp.WorkloadRef, labels map[string]string) error {
	return c.call(ctx, MethodRelabel, relabelParams{Workload: w, Labels: labels}, nil)
}

// Apply implements meshpolicy.Driver.
func (c *Client) Apply(ctx context.Context, p mp.Policy) error {
	return c.call(ctx, MethodApply, p, nil)
}

// Delete implements meshpolicy.Driver.
func (c *Client) Delete(ctx context.Context, p mp.PolicyRef) error {
	return c.call(ctx, MethodDelete, p, nil)
}

// Status implements meshpolicy.Driver.
func (c *Client) Status(ctx context.Context, p mp.PolicyRef) (mp.PolicyStatus, error) {
	var st mp.PolicyStatus
	err := c.call(ctx, MethodStatus, p, &st)
	return st, err
}

// Do implements meshpolicy.Driver.
func (c *Client) Do(ctx context.Context, r mp.Request) (mp.Outcome, error) {
	var o mp.Outcome
	err := c.call(ctx, MethodDo, r, &o)
	return o, err
}

// Probe implements meshpolicy.Driver.
func (c *Client) Probe(ctx context.Context, w mp.WorkloadRef) (mp.Outcome, error) {
	var o mp.Outcome
	err := c.call(ctx, MethodProbe, w, &o)
	return o, err
}

// Open implements meshpolicy.Driver: the connection lives in the driver,
// named by a handle.
func (c *Client) Open(ctx context.Context, r mp.Request) (mp.Conn, error) {
	var res openResult
	if err := c.call(ctx, MethodOpen, r, &res); err != nil {
		return nil, err
	}
	return &conn{c: c, id: res.Conn}, nil
}

// Cleanup implements meshpolicy.Driver: the driver removes what it
// created (it keeps running until Close).
func (c *Client) Cleanup(ctx context.Context) error {
	return c.call(ctx, MethodCleanup, nil, nil)
}

// Arm switches faults on in a reference driver (proofs).
func (c *Client) Arm(fs ...faults.Fault) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = string(f)
	}
	return c.call(ctx, MethodArm, armParams{Faults: names}, nil)
}

// Close ends the connection: pending calls fail, the driver's stdin
// closes, and a driver process that has not exited within CloseGrace gets
// SIGTERM, then SIGKILL, as a process group; whatever is left of its group
// is killed in any case. It returns once the driver is gone.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.fail(&kindError{ErrClosed, c.label + " is closed"})
		c.w.Close()
		if c.proc != nil {
			c.closeErr = c.proc.stop(c.opts.CloseGrace)
		}
		c.r.Close()
		c.wg.Wait()
	})
	return c.closeErr
}

type conn struct {
	c    *Client
	id   uint64
	once sync.Once
}

func (k *conn) Echo(ctx context.Context, line string) (string, error) {
	var res echoResult
	err := k.c.call(ctx, MethodEcho, connParams{Conn: k.id, Line: line}, &res)
	return res.Line, err
}

func (k *conn) Close() error {
	var err error
	k.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = k.c.call(ctx, MethodClose, connParams{Conn: k.id}, nil)
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrDriverExited) {
			err = nil // the driver closes its connections when it ends
		}
	})
	return err
}

// process is the driver's process.
type process struct {
	cmd     *exec.Cmd
	stderr  *tailbuf.Buffer
	exited  chan struct{}
	waitErr error // valid once exited is closed
}

func startProcess(argv []string, o Options) (*process, io.WriteCloser, io.ReadCloser, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, nil, nil, err
	}
	p := &process{stderr: tailbuf.New(16 << 10), exited: make(chan struct{})}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout = inR, outW
	cmd.Stderr = p.stderr
	if o.Stderr != nil {
		cmd.Stderr = io.MultiWriter(p.stderr, o.Stderr)
	}
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Dir = o.Dir
	// Its own process group, so that Close can end everything it started
	// (and a terminal's Ctrl-C reaches only gauntlet, which then tears
	// the fixtures down through the driver before closing it); killed
	// with gauntlet if gauntlet dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	p.cmd = cmd
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, nil, nil, err
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, inW, outR, nil
}

// stop waits grace for the driver to exit (its stdin is closed), then
// signals its process group: SIGTERM, and SIGKILL 2 s later.
func (p *process) stop(grace time.Duration) error {
	pgid := p.cmd.Process.Pid
	var err error
	select {
	case <-p.exited:
	case <-time.After(grace):
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.exited:
			err = fmt.Errorf("the mesh driver did not exit within %s of its stdin closing: terminated", grace)
		case <-time.After(2 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.exited
			err = fmt.Errorf("the mesh driver did not exit within %s of its stdin closing, nor on SIGTERM: killed", grace)
		}
	}
	// Whatever it left in its group goes too.
	syscall.Kill(-pgid, syscall.SIGKILL)
	return err
}

func (p *process) exitedWithin(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// stderrTail renders the last lines of the driver's stderr on one line.
func (p *process) stderrTail() string {
	s := strings.TrimSpace(p.stderr.String())
	if s == "" {
		return "; its stderr is empty"
	}
	const n = 600
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return "; its stderr ends: " + strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}
