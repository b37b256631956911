package meshexec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gauntlet-conformance/gauntlet/faults"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// FeatureLister is implemented by a served Driver that declares suite
// features (hello's "features"; e.g. AuthorizationPolicyDeny).
type FeatureLister interface {
	Features() []string
}

// Armer is implemented by a served reference Driver that can switch faults
// on (the "arm" method; proofs through the protocol).
type Armer interface {
	Arm(fs ...faults.Fault) error
}

// serverCallTimeout bounds a call whose request carries no timeout.
const serverCallTimeout = 10 * time.Minute

// Serve serves d on in (requests) and out (answers) until in ends — the
// client is gone — or ctx is done; what a mesh driver's main calls with
// os.Stdin and os.Stdout. Calls run concurrently, each bounded by its
// request's timeout; when Serve stops it cancels the calls still running,
// waits for them and closes the connections Open made. It returns nil at
// the end of in, or why it stopped (a malformed line, a write error). The
// driver's own cleanup (Cleanup, closing it) is the caller's, after Serve.
// A goroutine reading in may outlive Serve until in is closed.
func Serve(ctx context.Context, d mp.Driver, in io.Reader, out io.Writer) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	s := &server{d: d, out: out, calls: map[uint64]context.CancelFunc{}, conns: map[uint64]mp.Conn{}, stop: stop}
	type read struct {
		f   Frame
		err error
	}
	frames := make(chan read)
	dec := NewDecoder(in, MaxLine)
	go func() {
		for {
			f, err := dec.Decode()
			select {
			case frames <- read{f, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var err error
	eof := false
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case r := <-frames:
			if r.err != nil {
				if eof = errors.Is(r.err, io.EOF); !eof {
					err = r.err
				}
				break loop
			}
			s.dispatch(ctx, r.f)
		}
	}
	stop()
	s.wg.Wait()
	s.mu.Lock()
	for id, c := range s.conns {
		c.Close()
		delete(s.conns, id)
	}
	s.mu.Unlock()
	if err == nil && !eof {
		err = s.writeErr() // answers failed before the client hung up
	}
	return err
}

type server struct {
	d    mp.Driver
	stop context.CancelFunc
	wg   sync.WaitGroup

	wmu  sync.Mutex
	out  io.Writer
	werr error

	mu       sync.Mutex
	calls    map[uint64]context.CancelFunc
	conns    map[uint64]mp.Conn
	nextConn uint64
}

func (s *server) writeErr() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.werr
}

// answer writes one answer; an answer too large for a line becomes an
// error answer, a write error stops Serve (the client is gone).
func (s *server) answer(f Frame) {
	b, err := Encode(f, MaxLine)
	if err != nil {
		b, err = Encode(Frame{ID: f.ID, Error: &WireError{Message: fmt.Sprintf("the driver's answer to call %d cannot be sent: %v", f.ID, err)}}, MaxLine)
		if err != nil {
			return
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.werr != nil {
		return
	}
	if _, err := s.out.Write(b); err != nil {
		s.werr = fmt.Errorf("meshexec: write an answer: %w", err)
		s.stop()
	}
}

func (s *server) dispatch(ctx context.Context, f Frame) {
	switch f.Method {
	case "":
		return // an answer: the client sends none
	case MethodCancel:
		var p cancelParams
		if json.Unmarshal(f.Params, &p) == nil {
			s.mu.Lock()
			if cancel, ok := s.calls[p.ID]; ok {
				cancel()
			}
			s.mu.Unlock()
		}
		return
	case MethodHello:
		s.answer(s.hello(f))
		return
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = serverCallTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	s.mu.Lock()
	s.calls[f.ID] = cancel
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.calls, f.ID)
			s.mu.Unlock()
			cancel()
		}()
		result, err := s.call(cctx, f)
		a := Frame{ID: f.ID}
		if err != nil {
			a.Error = wireError(err)
		} else if result != nil {
			b, merr := json.Marshal(result)
			if merr != nil {
				a.Error = &WireError{Message: "encode the result: " + merr.Error()}
			} else {
				a.Result = b
			}
		}
		s.answer(a)
	}()
}

func (s *server) hello(f Frame) Frame {
	var p helloParams
	if err := json.Unmarshal(f.Params, &p); err != nil || p.Version != Version {
		return Frame{ID: f.ID, Error: &WireError{Message: fmt.Sprintf("unsupported hello %s: this driver speaks meshexec protocol version %d", f.Params, Version)}}
	}
	h := Hello{Version: Version, Name: s.d.Name(), TrustDomain: s.d.TrustDomain(), ConvergenceBound: s.d.ConvergenceBound()}
	for _, p := range mp.Served(s.d) {
		h.Protocols = append(h.Protocols, string(p))
	}
	if fl, ok := s.d.(FeatureLister); ok {
		h.Features = fl.Features()
	}
	b, err := json.Marshal(h)
	if err != nil {
		return Frame{ID: f.ID, Error: &WireError{Message: err.Error()}}
	}
	return Frame{ID: f.ID, Result: b}
}

func wireError(err error) *WireError {
	w := &WireError{Message: err.Error()}
	if rej, ok := mp.IsRejected(err); ok {
		w.Rejected = &rej.Reason
	}
	var ce *mp.ClassError
	if errors.As(err, &ce) {
		w.Class = string(ce.Class)
	}
	return w
}

// call runs one Driver method; a panic in the driver is an error answer.
func (s *server) call(ctx context.Context, f Frame) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the driver panicked in %s: %v\n%s", f.Method, p, debug.Stack())
		}
	}()
	params := func(v any) error {
		if err := json.Unmarshal(f.Params, v); err != nil {
			return fmt.Errorf("bad params for %s: %v", f.Method, err)
		}
		return nil
	}
	d := s.d
	switch f.Method {
	case MethodDeploy:
		var w mp.Workload
		if err := params(&w); err != nil {
			return nil, err
		}
		return nil, d.Deploy(ctx, w)
	case MethodDeployClient:
		var id mp.Identity
		if err := params(&id); err != nil {
			return nil, err
		}
		return nil, d.DeployClient(ctx, id)
	case MethodRelabel:
		var p relabelParams
		if err := params(&p); err != nil {
			return nil, err
		}
		return nil, d.Relabel(ctx, p.Workload, p.Labels)
	case MethodApply:
		var p mp.Policy
		if err := params(&p); err != nil {
			return nil, err
		}
		return nil, d.Apply(ctx, p)
	case MethodDelete:
		var ref mp.PolicyRef
		if err := params(&ref); err != nil {
			return nil, err
		}
		return nil, d.Delete(ctx, ref)
	case MethodStatus:
		var ref mp.PolicyRef
		if err := params(&ref); err != nil {
			return nil, err
		}
		return d.Status(ctx, ref)
	case MethodDo:
		var r mp.Request
		if err := params(&r); err != nil {
			return nil, err
		}
		return d.Do(ctx, r)
	case MethodProbe:
		var ref mp.WorkloadRef
		if err := params(&ref); err != nil {
			return nil, err
		}
		return d.Probe(ctx, ref)
	case MethodOpen:
		var r mp.Request
		if err := params(&r); err != nil {
			return nil, err
		}
		c, err := d.Open(ctx, r)
		if err != nil {
			return nil, err
		}
		if ctx.Err() != nil { // the caller gave up: nobody will close it
			c.Close()
			return nil, ctx.Err()
		}
		s.mu.Lock()
		s.nextConn++
		id := s.nextConn
		s.conns[id] = c
		s.mu.Unlock()
		return openResult{Conn: id}, nil
	case MethodEcho:
		var p connParams
		if err := params(&p); err != nil {
			return nil, err
		}
		c, err := s.conn(p.Conn)
		if err != nil {
			return nil, err
		}
		got, err := c.Echo(ctx, p.Line)
		if err != nil {
			return nil, &mp.ClassError{Class: mp.Classify(err), Msg: err.Error()}
		}
		return echoResult{Line: got}, nil
	case MethodClose:
		var p connParams
		if err := params(&p); err != nil {
			return nil, err
		}
		s.mu.Lock()
		c, ok := s.conns[p.Conn]
		delete(s.conns, p.Conn)
		s.mu.Unlock()
		if !ok {
			return nil, nil // closing twice is not an error
		}
		return nil, c.Close()
	case MethodCleanup:
		return nil, d.Cleanup(ctx)
	case MethodArm:
		a, ok := d.(Armer)
		if !ok {
			return nil, errors.New("this driver cannot arm faults (not a reference target)")
		}
		var p armParams
		if err := params(&p); err != nil {
			return nil, err
		}
		fs := make([]faults.Fault, len(p.Faults))
		for i, f := range p.Faults {
			fs[i] = faults.Fault(f)
		}
		return nil, a.Arm(fs...)
	}
	return nil, fmt.Errorf("unknown method %q (this driver speaks meshexec protocol version %d)", f.Method, Version)
}

func (s *server) conn(id uint64) (mp.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[id]
	if !ok {
		return nil, fmt.Errorf("no open connection %d", id)
	}
	return c, nil
}
