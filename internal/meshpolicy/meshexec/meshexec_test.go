package meshexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/faults"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// TestMain makes the test binary a mesh driver when MESHEXEC_TEST_CHILD
// names a behaviour (see child).
func TestMain(m *testing.M) {
	if mode := os.Getenv("MESHEXEC_TEST_CHILD"); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// fakeDriver records calls and answers from the request's content.
type fakeDriver struct {
	protos []mp.Protocol

	mu    sync.Mutex
	calls []string
	armed []faults.Fault
}

func (f *fakeDriver) rec(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeDriver) Name() string                    { return "fake mesh" }
func (f *fakeDriver) TrustDomain() string             { return "example.org" }
func (f *fakeDriver) ConvergenceBound() time.Duration { return 2 * time.Second }
func (f *fakeDriver) Protocols() []mp.Protocol        { return f.protos }
func (f *fakeDriver) Features() []string              { return []string{"AuthorizationPolicyDeny"} }
func (f *fakeDriver) Arm(fs ...faults.Fault) error {
	f.mu.Lock()
	f.armed = append(f.armed, fs...)
	f.mu.Unlock()
	return nil
}
func (f *fakeDriver) Cleanup(ctx context.Context) error { f.rec("cleanup"); return nil }
func (f *fakeDriver) DeployClient(ctx context.Context, id mp.Identity) error {
	f.rec("deployClient " + id.String())
	return nil
}
func (f *fakeDriver) Deploy(ctx context.Context, w mp.Workload) error {
	f.rec("deploy " + w.Ref().String())
	if w.Name == "fail" {
		return errors.New("deploy failed: quota exceeded")
	}
	return nil
}
func (f *fakeDriver) Relabel(ctx context.Context, w mp.WorkloadRef, labels map[string]string) error {
	f.rec(fmt.Sprintf("relabel %s %v", w, labels))
	return nil
}
func (f *fakeDriver) Apply(ctx context.Context, p mp.Policy) error {
	f.rec("apply " + p.Name)
	if p.Name == "invalid" {
		return &mp.RejectedError{Reason: "two Pod targetRefs"}
	}
	return nil
}
func (f *fakeDriver) Delete(ctx context.Context, p mp.PolicyRef) error {
	f.rec("delete " + p.Name)
	return nil
}
func (f *fakeDriver) Status(ctx context.Context, p mp.PolicyRef) (mp.PolicyStatus, error) {
	return mp.PolicyStatus{Reported: true, Accepted: true, Reason: "Accepted", Message: p.Name}, nil
}
func (f *fakeDriver) Do(ctx context.Context, r mp.Request) (mp.Outcome, error) {
	switch {
	case r.Nonce == "block":
		<-ctx.Done()
		return mp.Outcome{}, ctx.Err()
	case r.Nonce == "panic":
		panic("driver bug")
	case strings.HasPrefix(r.Nonce, "sleep:"):
		ms, _ := strconv.Atoi(strings.TrimPrefix(r.Nonce, "sleep:"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
			return mp.Outcome{}, ctx.Err()
		}
	}
	return mp.Outcome{HTTPStatus: 200, Body: "echo " + r.Nonce, ServerSaw: true, Elapsed: 5 * time.Millisecond}, nil
}
func (f *fakeDriver) Probe(ctx context.Context, w mp.WorkloadRef) (mp.Outcome, error) {
	return mp.Outcome{HTTPStatus: 200, Body: "ok " + w.String(), ServerSaw: true}, nil
}
func (f *fakeDriver) Open(ctx context.Context, r mp.Request) (mp.Conn, error) {
	f.rec("open " + r.To.String())
	return &fakeConn{f: f}, nil
}

type fakeConn struct{ f *fakeDriver }

func (c *fakeConn) Echo(ctx context.Context, line string) (string, error) {
	if line == "reset" {
		return "", fmt.Errorf("read tcp: %w", syscall.ECONNRESET)
	}
	return "echo " + line, nil
}
func (c *fakeConn) Close() error { c.f.rec("close conn"); return nil }

// pipeClient serves d in this process and returns a client of it.
func pipeClient(t *testing.T, d mp.Driver) *Client {
	t.Helper()
	reqR, reqW := io.Pipe()
	ansR, ansW := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- Serve(context.Background(), d, reqR, ansW)
		ansW.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := NewClient(ctx, ansR, reqW, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after the client closed")
		}
	})
	return c
}

// TestRoundTrip: every Driver method crosses the protocol with its
// arguments, results and typed errors intact.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	f := &fakeDriver{protos: []mp.Protocol{mp.GRPC, mp.TCP}}
	c := pipeClient(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c.Name() != "fake mesh" || c.TrustDomain() != "example.org" || c.ConvergenceBound() != 2*time.Second {
		t.Errorf("hello: %q %q %s", c.Name(), c.TrustDomain(), c.ConvergenceBound())
	}
	if got := fmt.Sprint(c.Protocols()); got != "[GRPC TCP]" {
		t.Errorf("protocols %s, want [GRPC TCP] (in preference order)", got)
	}
	if got := fmt.Sprint(mp.Served(c)); got != "[GRPC TCP]" {
		t.Errorf("Served %s", got)
	}
	if got := c.Features(); len(got) != 1 || got[0] != "AuthorizationPolicyDeny" {
		t.Errorf("features %v", got)
	}
	ref := mp.WorkloadRef{Namespace: "ns", Name: "s"}
	tests := []struct {
		name string
		call func() error
		want func(error) error // nil: want no error
	}{
		{"deploy", func() error { return c.Deploy(ctx, mp.Workload{Namespace: "ns", Name: "s", Ports: mp.StandardPorts()}) }, nil},
		{"deploy error", func() error { return c.Deploy(ctx, mp.Workload{Namespace: "ns", Name: "fail"}) }, func(err error) error {
			if err == nil || err.Error() != "deploy failed: quota exceeded" {
				return fmt.Errorf("want the driver's error verbatim, got %v", err)
			}
			return nil
		}},
		{"deployClient", func() error { return c.DeployClient(ctx, mp.Identity{Namespace: "cli", ServiceAccount: "a"}) }, nil},
		{"relabel", func() error { return c.Relabel(ctx, ref, map[string]string{"app": "moved"}) }, nil},
		{"apply", func() error { return c.Apply(ctx, mp.Policy{Name: "ok"}) }, nil},
		{"apply rejected", func() error { return c.Apply(ctx, mp.Policy{Name: "invalid"}) }, func(err error) error {
			if rej, ok := mp.IsRejected(err); !ok || rej.Reason != "two Pod targetRefs" {
				return fmt.Errorf("want a *RejectedError with the reason, got %T %v", err, err)
			}
			return nil
		}},
		{"delete", func() error { return c.Delete(ctx, mp.PolicyRef{Name: "ok"}) }, nil},
		{"status", func() error {
			st, err := c.Status(ctx, mp.PolicyRef{Name: "p"})
			if err == nil && (!st.Accepted || st.Message != "p") {
				err = fmt.Errorf("status %+v", st)
			}
			return err
		}, nil},
		{"do", func() error {
			o, err := c.Do(ctx, mp.Request{To: ref, Protocol: mp.GRPC, Nonce: "n1", Timeout: time.Second})
			if err == nil && (o.Body != "echo n1" || !o.ServerSaw || o.Elapsed != 5*time.Millisecond) {
				err = fmt.Errorf("outcome %+v", o)
			}
			return err
		}, nil},
		{"do panics", func() error {
			_, err := c.Do(ctx, mp.Request{To: ref, Nonce: "panic"})
			return err
		}, func(err error) error {
			if err == nil || !strings.Contains(err.Error(), "panicked") {
				return fmt.Errorf("want an error naming the panic, got %v", err)
			}
			return nil
		}},
		{"probe", func() error {
			o, err := c.Probe(ctx, ref)
			if err == nil && o.Body != "ok ns/s" {
				err = fmt.Errorf("probe %+v", o)
			}
			return err
		}, nil},
		{"open echo close", func() error {
			k, err := c.Open(ctx, mp.Request{To: ref, Protocol: mp.TCP})
			if err != nil {
				return err
			}
			if got, err := k.Echo(ctx, "x"); err != nil || got != "echo x" {
				return fmt.Errorf("echo %q %v", got, err)
			}
			_, err = k.Echo(ctx, "reset")
			if mp.Classify(err) != mp.ErrReset {
				return fmt.Errorf("a reset echo classifies as %q (%v), want reset", mp.Classify(err), err)
			}
			if err := k.Close(); err != nil {
				return err
			}
			if _, err := k.Echo(ctx, "after"); err == nil || !strings.Contains(err.Error(), "no open connection") {
				return fmt.Errorf("echo after close: %v", err)
			}
			return nil
		}, nil},
		{"arm", func() error { return c.Arm(faults.MeshRulesANDed) }, nil},
		{"cleanup", func() error { return c.Cleanup(ctx) }, nil},
	}
	for _, tc := range tests {
		err := tc.call()
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if werr := tc.want(err); werr != nil {
			t.Errorf("%s: %v", tc.name, werr)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	want := []string{"deploy ns/s", "deploy ns/fail", "deployClient cli/a", "relabel ns/s map[app:moved]", "apply ok", "apply invalid",
		"delete ok", "open ns/s", "close conn", "cleanup"}
	if fmt.Sprint(f.calls) != fmt.Sprint(want) {
		t.Errorf("the driver saw %q, want %q", f.calls, want)
	}
	if len(f.armed) != 1 || f.armed[0] != faults.MeshRulesANDed {
		t.Errorf("armed %v", f.armed)
	}
}

// TestConcurrentCalls: calls are multiplexed and answered out of order.
func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	c := pipeClient(t, &fakeDriver{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nonce := fmt.Sprintf("sleep:%d", 300-i*7)
			o, err := c.Do(ctx, mp.Request{Nonce: nonce})
			if err == nil && o.Body != "echo "+nonce {
				err = fmt.Errorf("call %d got the answer %q", i, o.Body)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("40 concurrent calls of ≤300 ms took %s: not multiplexed", d)
	}
}

// TestCallDeadline: a call the driver does not answer fails at its
// context's deadline with an error naming the method and the deadline,
// classified as a timeout; the driver's side of the call is cancelled.
func TestCallDeadline(t *testing.T) {
	t.Parallel()
	c := pipeClient(t, &fakeDriver{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, mp.Request{Nonce: "block"})
	took := time.Since(start)
	if err == nil || !regexp.MustCompile(`did not answer do within (29\d|300)ms`).MatchString(err.Error()) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v: want one naming do and its 300ms deadline, wrapping DeadlineExceeded", err)
	}
	if mp.Classify(err) != mp.ErrTimeout {
		t.Errorf("classified %q", mp.Classify(err))
	}
	if took > time.Second {
		t.Errorf("took %s", took)
	}
	// The connection survives a timed-out call.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if _, err := c.Do(ctx2, mp.Request{Nonce: "after"}); err != nil {
		t.Errorf("a call after a timeout: %v", err)
	}
}

// TestCodec: lines over the limit, non-JSON, and frames of the wrong
// shape are the sentinel errors; blank lines are skipped.
func TestCodec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want error // nil: one frame then EOF
	}{
		{"answer", `{"id":1,"result":{"x":1}}` + "\n", nil},
		{"no trailing newline", `{"id":1}`, nil},
		{"blank lines and CRLF", "\n\r\n  \n" + `{"id":2,"method":"do","params":{}}` + "\r\n", nil},
		{"cancel without id", `{"method":"cancel","params":{"id":3}}` + "\n", nil},
		{"too long", `{"id":1,"result":"` + strings.Repeat("x", 200) + `"}` + "\n", ErrLineTooLong},
		{"too long without newline", strings.Repeat("x", 300), ErrLineTooLong},
		{"log line", "starting driver...\n", ErrMalformed},
		{"array", "[1,2]\n", ErrMalformed},
		{"trailing garbage", `{"id":1} x` + "\n", ErrMalformed},
		{"answer without id", `{"result":1}` + "\n", ErrMalformed},
		{"request without id", `{"method":"do"}` + "\n", ErrMalformed},
		{"result and error", `{"id":1,"result":1,"error":{"message":"x"}}` + "\n", ErrMalformed},
		{"wrong type", `{"id":"one"}` + "\n", ErrMalformed},
		{"negative timeout", `{"id":1,"method":"do","timeout":-5}` + "\n", ErrMalformed},
	}
	for _, tc := range tests {
		d := NewDecoder(strings.NewReader(tc.in), 128)
		f, err := d.Decode()
		if tc.want != nil {
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		b, err := Encode(f, 128)
		if err != nil {
			t.Errorf("%s: re-encode: %v", tc.name, err)
		}
		if bytes.Count(b, []byte("\n")) != 1 {
			t.Errorf("%s: encoded %q is not one line", tc.name, b)
		}
		if _, err := d.Decode(); !errors.Is(err, io.EOF) {
			t.Errorf("%s: after the frame: %v, want EOF", tc.name, err)
		}
	}
	if _, err := Encode(Frame{ID: 1, Result: []byte(`"` + strings.Repeat("y", 200) + `"`)}, 128); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("encoding over the limit: %v", err)
	}
}

// child behaviours of the test binary as a mesh driver.
func child(mode string) int {
	switch mode {
	case "serve":
		// A well-behaved driver.
		if err := Serve(context.Background(), &fakeDriver{}, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "exit":
		fmt.Fprintln(os.Stderr, "boom: cannot reach the cluster")
		return 3
	case "garbage":
		fmt.Println("Starting mesh driver v1.0 ...")
		time.Sleep(time.Minute)
		return 0
	case "huge":
		os.Stdout.Write(bytes.Repeat([]byte("x"), 2*MaxLine))
		time.Sleep(time.Minute)
		return 0
	case "silent":
		io.Copy(io.Discard, os.Stdin)
		time.Sleep(time.Minute)
		return 0
	case "stall", "die", "stubborn":
		// Answers hello, then: stall answers nothing and leaves a
		// grandchild in its process group; die exits on its first call
		// with a last word on stderr; stubborn ignores stdin's end and
		// SIGTERM.
		if mode == "stubborn" {
			signalIgnoreTerm()
		}
		if mode == "stall" {
			gc := exec.Command("sleep", "300")
			if err := gc.Start(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Fprintf(os.Stderr, "grandchild %d\n", gc.Process.Pid)
		}
		dec := NewDecoder(os.Stdin, 0)
		for {
			f, err := dec.Decode()
			if err != nil {
				if mode == "stubborn" || mode == "stall" {
					time.Sleep(time.Minute)
				}
				return 0
			}
			switch {
			case f.Method == MethodHello:
				b, _ := Encode(Frame{ID: f.ID, Result: []byte(`{"version":1,"name":"` + mode + `","trustDomain":"td"}`)}, 0)
				os.Stdout.Write(b)
			case mode == "die":
				fmt.Fprintln(os.Stderr, "panic: oops, the driver crashed")
				return 2
			}
		}
	}
	fmt.Fprintln(os.Stderr, "unknown child mode", mode)
	return 1
}

func driverCmd(mode string) []string {
	return []string{"/usr/bin/env", "MESHEXEC_TEST_CHILD=" + mode, os.Args[0]}
}

// TestStartFailures: a driver that exits, prints garbage or a huge line,
// or never answers hello fails Start within seconds with one line saying
// what happened, and leaves no process behind.
func TestStartFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode  string
		want  []string
		sent  error
		limit time.Duration
	}{
		{"exit", []string{"exit status 3", "boom: cannot reach the cluster", "hello"}, ErrDriverExited, 5 * time.Second},
		{"garbage", []string{"Starting mesh driver v1.0", "log to stderr"}, ErrMalformed, 5 * time.Second},
		{"huge", []string{"line too long"}, ErrLineTooLong, 5 * time.Second},
		{"silent", []string{"did not answer hello within"}, context.DeadlineExceeded, 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			start := time.Now()
			c, err := StartWith(ctx, driverCmd(tc.mode), Options{CloseGrace: 500 * time.Millisecond})
			took := time.Since(start)
			if err == nil {
				c.Close()
				t.Fatal("Start succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !errors.Is(err, tc.sent) {
				t.Errorf("error %v is not %v", err, tc.sent)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
			if took > tc.limit {
				t.Errorf("took %s", took)
			}
		})
	}
}

// TestProcess: a real driver process serves calls and exits when closed.
func TestProcess(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	c, err := StartWith(ctx, driverCmd("serve"), Options{Stderr: &syncWriter{w: &stderr}})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := c.Do(ctx, mp.Request{Nonce: "n"}); err != nil || o.Body != "echo n" {
		t.Errorf("do: %+v %v", o, err)
	}
	pid := c.proc.cmd.Process.Pid
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a driver that exits on stdin EOF took %s to close", d)
	}
	if alive(pid) {
		t.Errorf("driver %d still alive", pid)
	}
	if _, err := c.Do(ctx, mp.Request{Nonce: "x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("a call after Close: %v, want ErrClosed", err)
	}
}

// TestHostileDriver: a driver that stalls fails each call at its deadline
// and Close kills its whole process group; one that dies mid-call fails the
// pending call at once with its exit status and last words; one that
// ignores stdin's end and SIGTERM is killed.
func TestHostileDriver(t *testing.T) {
	t.Parallel()
	t.Run("stall", func(t *testing.T) {
		t.Parallel()
		var stderr syncWriter
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := StartWith(ctx, driverCmd("stall"), Options{Stderr: &stderr, CloseGrace: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		cctx, ccancel := context.WithTimeout(ctx, 400*time.Millisecond)
		defer ccancel()
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.Apply(cctx, mp.Policy{Name: "p"})
				if err == nil || !strings.Contains(err.Error(), "did not answer apply within") {
					t.Errorf("apply: %v", err)
				}
			}()
		}
		wg.Wait()
		gc := 0
		for _, l := range strings.Split(stderr.String(), "\n") {
			if n, ok := strings.CutPrefix(l, "grandchild "); ok {
				gc, _ = strconv.Atoi(n)
			}
		}
		if gc == 0 || !alive(gc) {
			t.Fatalf("no live grandchild (stderr %q)", stderr.String())
		}
		start := time.Now()
		err = c.Close()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("close took %s", d)
		}
		if err == nil || !strings.Contains(err.Error(), "did not exit") {
			t.Errorf("close: %v, want it to say the driver had to be terminated", err)
		}
		waitGone(t, gc, "the grandchild")
		waitGone(t, c.proc.cmd.Process.Pid, "the driver")
	})
	t.Run("die", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := StartWith(ctx, driverCmd("die"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		_, err = c.Do(ctx, mp.Request{Nonce: "n"})
		if !errors.Is(err, ErrDriverExited) || !strings.Contains(err.Error(), "exit status 2") || !strings.Contains(err.Error(), "oops, the driver crashed") {
			t.Errorf("do: %v: want the exit status and the stderr tail", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the pending call failed after %s, not at once", d)
		}
		if err := c.Deploy(ctx, mp.Workload{}); !errors.Is(err, ErrDriverExited) {
			t.Errorf("a later call: %v", err)
		}
	})
	t.Run("stubborn", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := StartWith(ctx, driverCmd("stubborn"), Options{CloseGrace: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		pid := c.proc.cmd.Process.Pid
		start := time.Now()
		err = c.Close()
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("close: %v, want it to say the driver was killed", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("close took %s", d)
		}
		waitGone(t, pid, "the driver")
	})
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie (not yet reaped by its parent) is gone for our purposes.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Errorf("%s (pid %d) is still alive", what, pid)
			syscall.Kill(pid, syscall.SIGKILL)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		s.w = &bytes.Buffer{}
	}
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return ""
	}
	return s.w.String()
}

func signalIgnoreTerm() { signal.Ignore(syscall.SIGTERM) }
