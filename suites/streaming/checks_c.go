package streaming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/exitstatus"
	"github.com/gauntlet-conformance/gauntlet/internal/spdyconn"
)

var _ = register(
	Check{ID: "C1", Name: "stdout and stderr arrive on their own streams, byte-exact", Labels: []string{"spdy", "v4"},
		Faults: []faults.Fault{faults.SwapStdoutStderr}, Run: checkC1},
	Check{ID: "C2", Name: "v4 non-zero exit: Failure/NonZeroExitCode with cause ExitCode=3", Labels: []string{"spdy", "v4"},
		Faults: []faults.Fault{faults.WrongExitCode}, Run: checkC2},
	Check{ID: "C3", Name: "v4 success: a non-empty Success status precedes close", Labels: []string{"spdy", "v4"},
		Faults: []faults.Fault{faults.NoSuccessStatus}, Run: checkC3},
	Check{ID: "C4", Name: "exit codes 0..255 and kill -9 (137) round-trip", Labels: []string{"spdy", "v4"},
		Faults: []faults.Fault{faults.WrongExitCode}, Timeout: 60 * time.Second, Run: checkC4},
	Check{ID: "C5", Name: "v2/v3: failure is plain text naming the code, success an empty error stream", Labels: []string{"spdy", "v3", "v2"},
		Faults: []faults.Fault{faults.WrongExitCode}, Run: checkC5},
	Check{ID: "C6", Name: "v1 (channel.k8s.io) legacy behaviour is documented", Labels: []string{"spdy", "v1", "informational"},
		Faults: []faults.Fault{faults.SwapStdoutStderr}, Run: checkC6},
	Check{ID: "C7", Name: "stdin half-close: cat echoes and exits 0 within 2 s", Labels: []string{"spdy", "v4", "stdin"},
		Faults: []faults.Fault{faults.IgnoreStdinEOF}, Run: checkC7},
	Check{ID: "C8", Name: "stdin=false output in bursts 1 s apart all arrives", Labels: []string{"spdy", "v4"},
		Faults: []faults.Fault{faults.TruncateOutput}, Run: checkC8},
	// C9 measures a race inside the runtime (initial size vs process start):
	// it runs alone, on a quiet target, so load from other checks does not
	// decide it (CRI-O loses the race under a parallel run).
	Check{ID: "C9", Serial: true, Name: "tty: the initial resize is applied before the first stty size", Labels: []string{"spdy", "v4", "tty"},
		Faults: []faults.Fault{faults.IgnoreResize, faults.LateInitialSize}, Run: checkC9},
	Check{ID: "C10", Name: "tty: a 0x0 resize is ignored", Labels: []string{"spdy", "v4", "tty"},
		Faults: []faults.Fault{faults.ApplyZeroResize}, Run: checkC10},
	Check{ID: "C11", Name: "a malformed resize does not wedge the session", Labels: []string{"spdy", "v4", "tty"},
		Faults: []faults.Fault{faults.WedgeOnBadResize}, Run: checkC11},
	Check{ID: "C12", Name: "a client that creates only the error stream is disconnected after the creation timeout", Labels: []string{"spdy", "v4"}, Slow: true,
		Faults: []faults.Fault{faults.LongCreationTimeout}, Timeout: 90 * time.Second, Run: checkC12},
	Check{ID: "C13", Name: "a silent client is disconnected after the idle timeout; a pinging one is not", Labels: []string{"spdy", "v4"},
		Features: []Feature{FeatureIdleTimeout}, Faults: []faults.Fault{faults.NoIdleTimeout}, Timeout: 3 * time.Minute, Run: checkC13},
	Check{ID: "C14", Name: "a client disconnect cancels the exec", Labels: []string{"spdy", "v4"},
		Faults: []faults.Fault{}, Timeout: 60 * time.Second, Run: checkC14},
	Check{ID: "C15", Name: "64 MiB through stdout byte-exact", Labels: []string{"spdy", "v4"},
		Faults: []faults.Fault{faults.TruncateOutput}, Timeout: 90 * time.Second, Run: checkC15},
	Check{ID: "C16", Name: "duplicate or unknown streamType streams do not crash the server", Labels: []string{"spdy", "v4", "robustness"},
		Faults: []faults.Fault{faults.CrashOnBadStream}, Run: checkC16},
	Check{ID: "C17", Name: "attach streams output, forwards stdin, and StdinOnce close ends it", Labels: []string{"spdy", "v4", "attach"},
		Faults: []faults.Fault{faults.AttachNoStdin}, Run: checkC17},
	Check{ID: "C18", Serial: true, Name: "repeated attach/detach and failing tty execs do not grow the server", Labels: []string{"spdy", "v4", "attach", "robustness"},
		Features: []Feature{FeatureProcessStats}, Faults: []faults.Fault{faults.LeakOnAttach}, Timeout: 2 * time.Minute, Run: checkC18},
)

func wantExit(r *ExecResult, want int) error {
	got, err := r.ExitCode()
	if err != nil {
		return Failf("%w", err) // the status itself is what is checked
	}
	if got != want {
		return Failf("exit code %d reported as %d (status %q)", want, got, trunc(r.Status))
	}
	return nil
}

func checkC1(ctx context.Context, e *Env) error {
	r, err := e.RunSPDY(ctx, Out(Sh("printf out; printf err >&2")...), nil)
	if err != nil {
		return err
	}
	if string(r.Stdout) != "out" || string(r.Stderr) != "err" {
		return Failf("stdout %q stderr %q, want \"out\" and \"err\"", r.Stdout, r.Stderr)
	}
	return wantExit(r, 0)
}

func checkC2(ctx context.Context, e *Env) error {
	r, err := e.RunSPDY(ctx, Out(Sh("exit 3")...), nil)
	if err != nil {
		return err
	}
	res, err := exitstatus.DecodeV4(r.Status)
	if err != nil {
		return Failf("status %q: %v", trunc(r.Status), err)
	}
	note(ctx, "C2 status", string(r.Status))
	if res.Success || res.Reason != "NonZeroExitCode" || res.ExitCode != 3 {
		return Failf("status %q: want Failure, reason NonZeroExitCode, cause ExitCode=3", trunc(r.Status))
	}
	return nil
}

func checkC3(ctx context.Context, e *Env) error {
	r, err := e.RunSPDY(ctx, Out("true"), nil)
	if err != nil {
		return err
	}
	note(ctx, "C3 status", string(r.Status))
	return wantExit(r, 0)
}

func checkC4(ctx context.Context, e *Env) error {
	var errs []error
	for _, code := range []int{0, 1, 2, 126, 127, 128, 200, 254, 255} {
		r, err := e.RunSPDY(ctx, Out(Sh("exit "+strconv.Itoa(code))...), nil)
		if err != nil {
			return err
		}
		errs = append(errs, wantExit(r, code))
	}
	r, err := e.RunSPDY(ctx, Out(Sh("kill -9 $$")...), nil)
	if err != nil {
		return err
	}
	if err := wantExit(r, 137); err != nil {
		errs = append(errs, fmt.Errorf("kill -9 $$: %w", err))
	}
	return errors.Join(errs...)
}

func checkC5(ctx context.Context, e *Env) error {
	var errs []error
	for _, p := range []string{ProtoV3, ProtoV2} {
		r, err := e.RunSPDY(ctx, Out(Sh("exit 3")...), nil, p)
		if err != nil {
			return err
		}
		if r.Protocol != p {
			return Failf("offered %s, negotiated %q", p, r.Protocol)
		}
		msg := strings.TrimSpace(string(r.Status))
		if res := exitstatus.DecodeLegacy(r.Status); res.Success || msg == "" {
			errs = append(errs, Failf("%s: exit 3 left the error stream empty", p))
		} else if strings.HasPrefix(msg, "{") {
			errs = append(errs, Failf("%s: failure is JSON %q, want plain text", p, trunc(r.Status)))
		} else if !strings.Contains(msg, "3") {
			errs = append(errs, Failf("%s: failure text %q does not name exit code 3", p, msg))
		}
		r, err = e.RunSPDY(ctx, Out("true"), nil, p)
		if err != nil {
			return err
		}
		if len(r.Status) != 0 {
			errs = append(errs, Failf("%s: success wrote %q on the error stream, want nothing", p, trunc(r.Status)))
		}
	}
	return errors.Join(errs...)
}

func checkC6(ctx context.Context, e *Env) error {
	r, err := e.RunSPDY(ctx, Out(Sh("echo hi; exit 3")...), nil, ProtoV1)
	if err != nil {
		return err
	}
	note(ctx, "C6 v1 behaviour", fmt.Sprintf("negotiated %q, stdout %q, error stream %q", r.Protocol, r.Stdout, trunc(r.Status)))
	if r.Protocol != ProtoV1 {
		return Failf("offered channel.k8s.io, negotiated %q", r.Protocol)
	}
	if string(r.Stdout) != "hi\n" {
		return Failf("v1 stdout %q, want \"hi\\n\"", r.Stdout)
	}
	return nil
}

func checkC7(ctx context.Context, e *Env) error {
	s, err := e.ExecSPDY(ctx, ExecSpec{Cmd: []string{"cat"}, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return err
	}
	if _, err := s.Stdin.Write([]byte("abc")); err != nil {
		s.Conn.Close()
		return fmt.Errorf("write stdin: %w", err)
	}
	s.Stdin.Close()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := s.Wait(wctx)
	if err != nil {
		return Failf("after closing stdin: %w", err)
	}
	if string(r.Stdout) != "abc" {
		return Failf("cat echoed %q, want \"abc\"", r.Stdout)
	}
	return wantExit(r, 0)
}

func checkC8(ctx context.Context, e *Env) error {
	r, err := e.RunSPDY(ctx, ExecSpec{Cmd: Sh("for i in 1 2 3; do echo burst$i; sleep 1; done"), Stdout: true}, nil)
	if err != nil {
		return err
	}
	if want := "burst1\nburst2\nburst3\n"; string(r.Stdout) != want {
		return Failf("stdout %q, want %q", r.Stdout, want)
	}
	return nil
}

// ttyExec starts `cmd` with a tty and sends the resizes right after the streams exist.
func ttyExec(ctx context.Context, e *Env, cmd []string, stdin bool, sizes ...[2]uint16) (*SPDYSession, error) {
	s, err := e.ExecSPDY(ctx, ExecSpec{Cmd: cmd, Stdin: stdin, Stdout: true, TTY: true})
	if err != nil {
		return nil, err
	}
	for _, sz := range sizes {
		if err := s.SendResize(sz[0], sz[1]); err != nil {
			s.Conn.Close()
			return nil, fmt.Errorf("resize: %w: %w", errResizeWrite, err)
		}
	}
	return s, nil
}

// stripNUL drops the NUL bytes some runtimes emit at tty start (CRI-O).
func stripNUL(b []byte) string { return string(bytes.ReplaceAll(b, []byte{0}, nil)) }

// c9Attempts: a runtime that starts the process before applying the initial
// size races with it, and sometimes wins; the guarantee has to hold every
// time, so C9 asks several times and fails on the first miss.
const c9Attempts = 5

// errResizeWrite marks a resize the session no longer accepted.
var errResizeWrite = errors.New("the session no longer accepted the terminal size")

func checkC9(ctx context.Context, e *Env) error {
	for i := 1; i <= c9Attempts; i++ {
		got, _, err := ttySize(ctx, e, []string{"stty", "size"}, [2]uint16{100, 30})
		if errors.Is(err, errResizeWrite) {
			// `stty size` had already run and exited: the process did not
			// wait for the initial size.
			return Failf("attempt %d of %d: the process ended before its initial size was delivered: %w", i, c9Attempts, err)
		}
		if err != nil {
			return err
		}
		if got != "30 100" {
			return Failf("attempt %d of %d: stty size printed %q, want \"30 100\" (rows cols) from the initial resize", i, c9Attempts, got)
		}
	}
	note(ctx, "C9 attempts", fmt.Sprintf("the initial size was in place in all %d execs", c9Attempts))
	return nil
}

func checkC10(ctx context.Context, e *Env) error {
	got, r, err := ttySize(ctx, e, Sh("sleep 1; stty size"), [2]uint16{100, 30}, [2]uint16{0, 0})
	if err != nil {
		return err
	}
	if got != "30 100" {
		return Failf("after resizes 100x30 then 0x0, stty size printed %q, want \"30 100\"", got)
	}
	if code, err := r.ExitCode(); err != nil || code != 0 {
		return Failf("session after a 0x0 resize ended with status %q", trunc(r.Status))
	}
	return nil
}

// ttySize runs cmd (which prints `stty size`) in a tty with the given
// resizes and returns what it printed, trimmed.
func ttySize(ctx context.Context, e *Env, cmd []string, sizes ...[2]uint16) (string, *ExecResult, error) {
	s, err := ttyExec(ctx, e, cmd, false, sizes...)
	if err != nil {
		return "", nil, err
	}
	r, err := s.Wait(ctx)
	if err != nil {
		return "", nil, err
	}
	return strings.TrimSpace(stripNUL(r.Stdout)), r, nil
}

func checkC11(ctx context.Context, e *Env) error {
	s, err := ttyExec(ctx, e, []string{"cat"}, true, [2]uint16{80, 24})
	if err != nil {
		return err
	}
	defer s.Conn.Close()
	if _, err := s.Resize.Write([]byte(`{"Width":}` + "\n")); err != nil {
		return fmt.Errorf("write malformed resize: %w", err)
	}
	// Valid resizes keep coming, as a client resizing a window would send
	// them; a server that stopped reading the resize stream backs them up.
	go func() {
		for i := 0; i < 200 && ctx.Err() == nil; i++ {
			if _, err := s.Resize.Write([]byte(fmt.Sprintf(`{"Width":%d,"Height":40}`, 80+i%40))); err != nil {
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := s.Stdin.Write([]byte("still-alive\r")); err != nil {
		return fmt.Errorf("write stdin: %w", err)
	}
	return waitStdout(ctx, s, "still-alive", 5*time.Second)
}

// waitStdout waits until stdout contains want.
func waitStdout(ctx context.Context, s *SPDYSession, want string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(stripNUL(s.Stdout()), want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return Failf("stdin was not echoed within %s after the malformed resize: stdout %q", d, trunc(s.Stdout()))
}

func checkC12(ctx context.Context, e *Env) error {
	u, err := e.ExecURL(ctx, ExecSpec{Cmd: []string{"true"}, Stdout: true})
	if err != nil {
		return err
	}
	c, err := spdyconn.Dial(ctx, u, []string{ProtoV4}, e.spdyOptions())
	if err != nil {
		return err
	}
	defer c.Close()
	h := http.Header{}
	h.Set(spdyconn.HeaderStreamType, spdyconn.StreamError)
	if _, err := c.OpenStream(h, streamStep); err != nil {
		return err
	}
	limit := e.pairingBound()
	select {
	case <-c.Closed():
		return nil
	case <-time.After(limit):
		return Failf("connection with only an error stream still open %s after upgrade (creation timeout %s)", limit, e.Cfg.StreamCreationTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func checkC13(ctx context.Context, e *Env) error {
	idle := e.Cfg.StreamIdleTimeout
	if idle <= 0 {
		return Skip(FeatureIdleTimeout, "stream idle timeout unknown: pass --stream-idle-timeout")
	}
	silent, err := e.ExecSPDY(ctx, ExecSpec{Cmd: []string{"cat"}, Stdin: true, Stdout: true})
	if err != nil {
		return err
	}
	defer silent.Conn.Close()
	pinging, err := e.ExecSPDY(ctx, ExecSpec{Cmd: []string{"cat"}, Stdin: true, Stdout: true})
	if err != nil {
		return err
	}
	defer pinging.Conn.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(idle / 4)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				pinging.Conn.Ping() //nolint:errcheck // closure is what we look for
			}
		}
	}()
	limit := idle + 10*time.Second
	start := time.Now()
	select {
	case <-silent.Conn.Closed():
	case <-time.After(limit):
		return Failf("a silent connection was still open after %s (idle timeout %s)", limit, idle)
	case <-ctx.Done():
		return ctx.Err()
	}
	note(ctx, "C13 silent client closed after", time.Since(start).Round(100*time.Millisecond).String())
	select {
	case <-pinging.Conn.Closed():
		return Failf("a pinging client was disconnected after %s although it pinged every %s", time.Since(start).Round(time.Second), idle/4)
	default:
	}
	return nil
}

// findProc returns the `ps` line containing marker, if any.
func findProc(ctx context.Context, e *Env, marker string) (string, error) {
	r, err := e.RunSPDY(ctx, ExecSpec{Cmd: []string{"ps"}, Stdout: true}, nil)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(r.Stdout), "\n") {
		if strings.Contains(l, marker) && !strings.Contains(l, "ps") {
			return l, nil
		}
	}
	return "", nil
}

func checkC14(ctx context.Context, e *Env) error {
	marker := "sleep 6014"
	s, err := e.ExecSPDY(ctx, ExecSpec{Cmd: strings.Fields(marker), Stdout: true})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		line, err := findProc(ctx, e, marker)
		if err != nil {
			s.Conn.Close()
			return err
		}
		if line != "" {
			break
		}
		if time.Now().After(deadline) {
			s.Conn.Close()
			return Failf("%q never showed up in ps", marker)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.Conn.Raw.Close() // drop the TCP connection without any goodbye
	s.Conn.Close()
	const grace = 10 * time.Second
	deadline = time.Now().Add(grace)
	for {
		line, err := findProc(ctx, e, marker)
		if err != nil {
			return err
		}
		if line == "" {
			return nil
		}
		if time.Now().After(deadline) {
			killProc(ctx, e, line)
			return Failf("the exec'd process survived the client's disconnect by %s: %q", grace, strings.TrimSpace(line))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// killProc kills the process on a `ps` line so a failed check leaves nothing behind.
func killProc(ctx context.Context, e *Env, psLine string) {
	f := strings.Fields(psLine)
	if len(f) == 0 {
		return
	}
	if _, err := strconv.Atoi(f[0]); err != nil {
		return
	}
	e.RunSPDY(ctx, Out("kill", "-9", f[0]), nil) //nolint:errcheck // best effort
}

func checkC15(ctx context.Context, e *Env) error {
	const size = 64 << 20
	start := time.Now()
	r, err := e.RunSPDY(ctx, ExecSpec{Cmd: []string{"head", "-c", strconv.Itoa(size), "/dev/zero"}, Stdout: true}, nil)
	if err != nil {
		return err
	}
	d := time.Since(start)
	note(ctx, "C15 throughput", fmt.Sprintf("%.1f MiB/s (%d bytes in %s)", float64(len(r.Stdout))/(1<<20)/d.Seconds(), len(r.Stdout), d.Round(time.Millisecond)))
	if len(r.Stdout) != size {
		return Failf("received %d bytes, want %d", len(r.Stdout), size)
	}
	if i := bytes.IndexFunc(r.Stdout, func(c rune) bool { return c != 0 }); i >= 0 {
		return Failf("byte %d is not zero", i)
	}
	return wantExit(r, 0)
}

// healthy proves the stream server still works: a fresh exec echoes.
func healthy(ctx context.Context, e *Env) error {
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	r, err := e.RunSPDY(hctx, Out("echo", "alive"), nil)
	if err != nil {
		return Failf("the runtime is no longer healthy (a fresh exec failed): %v", err)
	}
	if string(r.Stdout) != "alive\n" {
		return Failf("the runtime is no longer healthy: a fresh exec printed %q", r.Stdout)
	}
	return nil
}

func checkC16(ctx context.Context, e *Env) error {
	for i, streams := range [][]string{
		{spdyconn.StreamError, "gauntlet-bogus"},
		{spdyconn.StreamError, spdyconn.StreamStdout, spdyconn.StreamStdout},
	} {
		u, err := e.ExecURL(ctx, ExecSpec{Cmd: []string{"true"}, Stdout: true})
		if err == nil {
			var c *spdyconn.Conn
			if c, err = spdyconn.Dial(ctx, u, []string{ProtoV4}, e.spdyOptions()); err == nil {
				for _, st := range streams {
					h := http.Header{}
					h.Set(spdyconn.HeaderStreamType, st)
					c.CreateStream(h, nil, false) //nolint:errcheck // the server may refuse; what matters is it survives
				}
				time.Sleep(300 * time.Millisecond)
				c.Close()
				continue
			}
		}
		if i > 0 {
			return Failf("after an unknown stream type the runtime no longer serves streams: %w", err)
		}
		return err
	}
	return healthy(ctx, e)
}

func attachSPDY(ctx context.Context, e *Env, id string, stdin, tty bool) (*SPDYSession, error) {
	u, err := e.AttachURL(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdin: stdin, Stdout: true, Stderr: !tty, Tty: tty})
	if err != nil {
		return nil, err
	}
	return e.StartSPDY(ctx, u, []string{ProtoV4}, stdin, true, !tty, tty)
}

func checkC17(ctx context.Context, e *Env) error {
	id, err := e.NewContainer(ctx, ContainerSpec{Name: UniqueName("attach"), Command: Sh(`while read l; do echo "got:$l"; done`), Stdin: true, StdinOnce: true})
	if err != nil {
		return err
	}
	s, err := attachSPDY(ctx, e, id, true, false)
	if err != nil {
		return err
	}
	defer s.Conn.Close()
	if _, err := s.Stdin.Write([]byte("hello\n")); err != nil {
		return fmt.Errorf("write stdin: %w", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(string(s.Stdout()), "got:hello") {
		if time.Now().After(deadline) {
			return Failf("attached stdin never reached the process: stdout %q", s.Stdout())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stdin.Close()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.Wait(wctx); err != nil {
		return fmt.Errorf("closing stdin of a StdinOnce container did not end the attach: %w", err)
	}
	return nil
}

func checkC18(ctx context.Context, e *Env) error {
	id, err := e.NewContainer(ctx, ContainerSpec{Name: UniqueName("ticker"), Command: Sh("while true; do echo tick; sleep 0.2; done")})
	if err != nil {
		return err
	}
	before, err := e.Stats(ctx)
	if err != nil {
		return err
	}
	for i := 0; i < 30; i++ {
		s, err := attachSPDY(ctx, e, id, false, false)
		if err != nil {
			return fmt.Errorf("attach %d: %w", i, err)
		}
		time.Sleep(20 * time.Millisecond)
		s.Conn.Close()
	}
	// Each failing exec lingers about a second before its connection
	// closes; what is measured is what is left afterwards, so they go in
	// bursts of what the target states it takes (one by one by default).
	batch := max(1, e.Cfg.ExecBurst)
	for i := 0; i < 20; i += batch {
		var wg sync.WaitGroup
		errs := make([]error, batch)
		for j := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := e.ExecSPDY(ctx, ExecSpec{Cmd: []string{"/gauntlet/no-such-binary"}, Stdout: true, TTY: true})
				if err != nil {
					errs[j] = fmt.Errorf("failing tty exec %d: %w", i+j, err)
					return
				}
				s.Wait(ctx) //nolint:errcheck // it fails; that's the point
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	time.Sleep(2 * time.Second) // let the server notice the detaches
	after, err := e.Stats(ctx)
	if err != nil {
		return err
	}
	note(ctx, "C18 growth", fmt.Sprintf("before %+v after %+v", before, after))
	return grew(before, after)
}
