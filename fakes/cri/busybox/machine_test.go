package busybox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runAsync starts argv and returns a channel with its status.
func runAsync(m *Machine, ctx context.Context, argv []string, stdio Stdio) <-chan int {
	ch := make(chan int, 1)
	go func() { ch <- m.Run(ctx, argv, stdio) }()
	return ch
}

func waitStatus(t *testing.T, ch <-chan int) int {
	t.Helper()
	select {
	case st := <-ch:
		return st
	case <-time.After(5 * time.Second):
		t.Fatal("process did not exit")
		return -1
	}
}

// findPID returns the PID of the process whose command line is cmdline.
func findPID(m *Machine, cmdline string) int {
	for _, p := range m.Processes() {
		if p.Cmdline == cmdline {
			return p.PID
		}
	}
	return 0
}

func TestRunStatusAndStreams(t *testing.T) {
	tests := []struct {
		argv           []string
		stdout, stderr string
		code           int
	}{
		{sh("printf out; printf err >&2"), "out", "err", 0},
		{sh("exit 3"), "", "", 3},
		{[]string{"true"}, "", "", 0},
		{[]string{"/gauntlet/no-such-binary"}, "", "sh: /gauntlet/no-such-binary: not found\n", 127},
		{[]string{"/bin/echo", "path"}, "path\n", "", 0},
		{[]string{"busybox", "echo", "multi"}, "multi\n", "", 0},
		{nil, "", "", 0}, // empty argv is sh, reading an empty stdin
		{sh("kill -9 $$"), "", "", 137},
		{sh("kill $$"), "", "", 143},
		{sh("echo $(echo sub) | cat"), "sub\n", "", 0},
		{sh("echo data > /tmp/f; echo more >> /tmp/f; cat /tmp/f; wc -c < /tmp/f"), "data\nmore\n10\n", "", 0},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.argv, " "), func(t *testing.T) {
			got := runFake(t, "", tc.argv...)
			if got.stdout != tc.stdout || got.stderr != tc.stderr || got.code != tc.code {
				t.Errorf("got %+v, want stdout %q stderr %q code %d", got, tc.stdout, tc.stderr, tc.code)
			}
		})
	}
}

func TestPIDsAndPs(t *testing.T) {
	m := NewMachine(nil)
	defer m.KillAll()
	startInit(t, m)
	if got := runOn(t, m, "", sh("echo $$")...); got.stdout != "2\n" {
		t.Errorf("$$ of the first exec = %q, want 2", got.stdout)
	}
	bg := runAsync(m, context.Background(), []string{"sleep", "6014"}, Stdio{})
	waitFor(t, func() bool { return findPID(m, "sleep 6014") != 0 })
	got := runOn(t, m, "", "ps")
	want := "PID   USER     COMMAND\n" +
		"    1 root     sleep 3600\n" +
		"    3 root     sleep 6014\n" +
		"    4 root     ps\n"
	if got.stdout != want {
		t.Errorf("ps:\n%s\nwant:\n%s", got.stdout, want)
	}
	if r := runOn(t, m, "", "kill", "-9", "3"); r.code != 0 {
		t.Fatalf("kill: %+v", r)
	}
	if st := waitStatus(t, bg); st != 137 {
		t.Errorf("killed sleep returned %d, want 137", st)
	}
	// exec replaces the shell in the same PID.
	done := runAsync(m, context.Background(), sh("exec sleep 100"), Stdio{})
	waitFor(t, func() bool { return findPID(m, "sleep 100") != 0 })
	pid := findPID(m, "sleep 100")
	if pid != 6 {
		t.Errorf("exec'd sleep has PID %d, want the shell's 6", pid)
	}
	runOn(t, m, "", "kill", strconv.Itoa(pid))
	if st := waitStatus(t, done); st != 143 {
		t.Errorf("SIGTERM status %d, want 143", st)
	}
}

func TestKillShellKillsForegroundButNotJobs(t *testing.T) {
	m := NewMachine(nil)
	defer m.KillAll()
	startInit(t, m)
	out := newSyncBuffer()
	done := runAsync(m, context.Background(), sh("sleep 200 & sleep 100; echo not-reached"), Stdio{Stdout: out})
	waitFor(t, func() bool { return findPID(m, "sleep 100") != 0 && findPID(m, "sleep 200") != 0 })
	shPID := findPID(m, "sh -c sleep 200 & sleep 100; echo not-reached")
	if shPID == 0 {
		t.Fatalf("no shell in %v", m.Processes())
	}
	runOn(t, m, "", "kill", "-9", strconv.Itoa(shPID))
	if st := waitStatus(t, done); st != 137 {
		t.Errorf("status %d, want 137", st)
	}
	waitFor(t, func() bool { return findPID(m, "sleep 100") == 0 })
	if findPID(m, "sleep 200") == 0 {
		t.Error("background job died with its parent; it should be orphaned")
	}
	if out.String() != "" {
		t.Errorf("output %q", out.String())
	}
}

func TestContextCancelKillsTree(t *testing.T) {
	m := NewMachine(nil)
	defer m.KillAll()
	startInit(t, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(m, ctx, sh("sleep 300 & sleep 100; true"), Stdio{})
	waitFor(t, func() bool { return len(m.Processes()) == 4 })
	cancel()
	if st := waitStatus(t, done); st != 137 {
		t.Errorf("status %d, want 137", st)
	}
	waitFor(t, func() bool { return len(m.Processes()) == 1 })
}

func TestOrphansOutliveTheirShellUntilKillAll(t *testing.T) {
	m := NewMachine(nil)
	startInit(t, m)
	if r := runOn(t, m, "", sh("sleep 100 &")...); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	waitFor(t, func() bool { return findPID(m, "sleep 100") != 0 })
	m.KillAll()
	waitFor(t, func() bool { return len(m.Processes()) == 0 })
}

func TestPID1(t *testing.T) {
	m := NewMachine(nil)
	defer m.KillAll()
	initDone := runAsync(m, context.Background(), sh("sleep 0.3; echo bye"), Stdio{})
	waitFor(t, func() bool { return len(m.Processes()) == 2 })
	// Signals from inside the namespace do not reach init.
	if r := runOn(t, m, "", "kill", "-9", "1"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	other := runAsync(m, context.Background(), []string{"sleep", "100"}, Stdio{})
	if st := waitStatus(t, initDone); st != 0 {
		t.Errorf("init status %d", st)
	}
	// When init exits, everything else in the namespace is killed.
	if st := waitStatus(t, other); st != 137 {
		t.Errorf("other status %d, want 137", st)
	}
}

// stampWriter records when each write arrived.
type stampWriter struct {
	mu     sync.Mutex
	writes []stamped
	max    int
	total  int
}

type stamped struct {
	at   time.Time
	data string
}

func (w *stampWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(p) < 256 {
		w.writes = append(w.writes, stamped{time.Now(), string(p)})
	}
	w.max = max(w.max, len(p))
	w.total += len(p)
	return len(p), nil
}

func TestOutputIsStreamed(t *testing.T) {
	w := &stampWriter{}
	start := time.Now()
	m := NewMachine(nil)
	defer m.KillAll()
	st := m.Run(context.Background(), sh("for i in 1 2 3; do echo burst$i; sleep 0.2; done"), Stdio{Stdout: w})
	if st != 0 {
		t.Fatalf("status %d", st)
	}
	if len(w.writes) != 3 {
		t.Fatalf("writes %v", w.writes)
	}
	for i, s := range w.writes {
		if s.data != fmt.Sprintf("burst%d\n", i+1) {
			t.Errorf("write %d = %q", i, s.data)
		}
		lo := time.Duration(i) * 200 * time.Millisecond
		if at := s.at.Sub(start); at < lo || at > lo+150*time.Millisecond {
			t.Errorf("write %d arrived at %v, want about %v", i, at, lo)
		}
	}
}

func TestLargeOutputIsChunked(t *testing.T) {
	w := &stampWriter{}
	m := NewMachine(nil)
	defer m.KillAll()
	start := time.Now()
	if st := m.Run(context.Background(), []string{"head", "-c", "67108864", "/dev/zero"}, Stdio{Stdout: w}); st != 0 {
		t.Fatalf("status %d", st)
	}
	if w.total != 64<<20 || w.max > chunkSize {
		t.Errorf("wrote %d bytes, largest write %d", w.total, w.max)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("64 MiB took %v", d)
	}
}

// failWriter fails after n bytes, like a closed stream.
type failWriter struct {
	mu sync.Mutex
	n  int
}

func (w *failWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n <= 0 {
		return 0, errors.New("stream closed")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestBrokenStdoutIsSIGPIPE(t *testing.T) {
	for _, argv := range [][]string{
		{"yes"},
		sh("while true; do echo x; done"),
		{"cat", "/dev/zero"},
		sh("yes | cat"),
	} {
		m := NewMachine(nil)
		startInit(t, m)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st := m.Run(ctx, argv, Stdio{Stdout: &failWriter{n: 10000}})
		cancel()
		if st != 141 {
			t.Errorf("%q: status %d, want 141", argv, st)
		}
		m.KillAll()
	}
}

type fixedTerm struct{ w, h uint16 }

func (f fixedTerm) Size() (uint16, uint16) { return f.w, f.h }

func TestTTYOutput(t *testing.T) {
	tests := []struct {
		argv []string
		term Terminal
		want string
		code int
	}{
		{[]string{"stty", "size"}, fixedTerm{100, 30}, "30 100\r\n", 0},
		{sh("sleep 0.01; stty size"), fixedTerm{80, 24}, "24 80\r\n", 0},
		{sh("printf 'a\\nb\\n'; echo c >&2"), fixedTerm{80, 24}, "a\r\nb\r\nc\r\n", 0},
		{sh("stty -onlcr; echo raw"), fixedTerm{80, 24}, "raw\n", 0},
		{sh("stty size </dev/null"), fixedTerm{80, 24}, "stty: standard input: Inappropriate ioctl for device\r\n", 1},
		{sh("[ -t 0 ] && [ -t 1 ] && ! [ -t 3 ] && echo tty"), fixedTerm{80, 24}, "tty\r\n", 0},
		{sh("sleep 123456789 & ps"), fixedTerm{20, 5}, "", -1},
	}
	for _, tc := range tests {
		m := NewMachine(nil)
		out := newSyncBuffer()
		st := m.Run(context.Background(), tc.argv, Stdio{Stdout: out, Stderr: out, TTY: tc.term})
		m.KillAll()
		if tc.code < 0 {
			// ps lines are cut to width-1.
			for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\r\n"), "\r\n") {
				if len(l) > 19 {
					t.Errorf("ps line %q longer than 19", l)
				}
			}
			continue
		}
		if out.String() != tc.want || st != tc.code {
			t.Errorf("%q: got %q (%d), want %q (%d)", tc.argv, out.String(), st, tc.want, tc.code)
		}
	}
}

// pipeStdin gives a process a stdin the test writes to.
func pipeStdin() (*io.PipeReader, *io.PipeWriter) { return io.Pipe() }

func TestTTYInput(t *testing.T) {
	m := NewMachine(nil)
	defer m.KillAll()
	startInit(t, m)
	r, w := pipeStdin()
	defer w.Close()
	out := newSyncBuffer()
	done := runAsync(m, context.Background(), []string{"cat"}, Stdio{Stdin: r, Stdout: out, Stderr: out, TTY: fixedTerm{80, 24}})
	io.WriteString(w, "still-al\x7fl")
	time.Sleep(50 * time.Millisecond)
	if strings.Contains(out.String(), "still-all\r\n") {
		t.Fatal("cat got a line before the line was finished")
	}
	io.WriteString(w, "ive\r")
	waitFor(t, func() bool { return out.String() == "still-al\b \blive\r\nstill-alive\r\n" })
	io.WriteString(w, "\x04") // ^D on an empty line: end of file
	if st := waitStatus(t, done); st != 0 {
		t.Errorf("status %d", st)
	}

	out2 := newSyncBuffer()
	r2, w2 := pipeStdin()
	defer w2.Close()
	done = runAsync(m, context.Background(), sh("cat; echo after"), Stdio{Stdin: r2, Stdout: out2, Stderr: out2, TTY: fixedTerm{80, 24}})
	waitFor(t, func() bool { return findPID(m, "cat") != 0 })
	io.WriteString(w2, "\x03") // ^C interrupts the foreground job, sh included
	if st := waitStatus(t, done); st != 130 {
		t.Errorf("^C status %d, want 130", st)
	}
	if out2.String() != "^C" {
		t.Errorf("^C output %q", out2.String())
	}
}

func TestStdinSharing(t *testing.T) {
	m := NewMachine(nil)
	defer m.KillAll()
	r, w := pipeStdin()
	out := newSyncBuffer()
	done := runAsync(m, context.Background(), sh(`while read l; do echo "got:$l"; done`), Stdio{Stdin: r, Stdout: out})
	io.WriteString(w, "one\n")
	waitFor(t, func() bool { return out.String() == "got:one\n" })
	io.WriteString(w, "two\nthr")
	waitFor(t, func() bool { return out.String() == "got:one\ngot:two\n" })
	io.WriteString(w, "ee\n")
	w.Close()
	if st := waitStatus(t, done); st != 0 || out.String() != "got:one\ngot:two\ngot:three\n" {
		t.Errorf("status %d output %q", st, out.String())
	}
}

func TestNoWritesAfterRunReturns(t *testing.T) {
	m := NewMachine(nil)
	defer m.KillAll()
	startInit(t, m)
	var out bytes.Buffer // deliberately not goroutine-safe: -race catches late writes
	if st := m.Run(context.Background(), sh("(sleep 0.1; echo late; echo still >&2) &"), Stdio{Stdout: &out, Stderr: &out}); st != 0 {
		t.Fatalf("status %d", st)
	}
	time.Sleep(300 * time.Millisecond)
	if out.String() != "" {
		t.Errorf("late output %q", out.String())
	}
	if len(m.Processes()) != 1 {
		t.Errorf("the orphan should have died of SIGPIPE: %v", m.Processes())
	}
}

func TestNetns(t *testing.T) {
	ns := NewNetns()
	l, err := ns.Listen(7777)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Listen(7777); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second listen: %v", err)
	}
	if _, err := ns.Dial(context.Background(), 7778); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial closed port: %v", err)
	}
	if got := ns.Ports(); len(got) != 1 || got[0] != 7777 {
		t.Errorf("ports %v", got)
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c) // echo until the client half-closes
		c.Close()
	}()
	c, err := ns.Dial(context.Background(), 7777)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "ping")
	c.(interface{ CloseWrite() error }).CloseWrite()
	b, err := io.ReadAll(c)
	if string(b) != "ping" || err != nil {
		t.Errorf("echo %q %v", b, err)
	}
	c.Close()
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("write after close succeeded")
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("accept after close: %v", err)
	}
	if len(ns.Ports()) != 0 {
		t.Errorf("port still bound: %v", ns.Ports())
	}
}

// exchange sends data, half-closes and returns everything the peer sent.
func exchange(t *testing.T, ns *Netns, port int, data string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, port)
	if err != nil {
		t.Fatalf("dial %d: %v", port, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, data)
	c.(interface{ CloseWrite() error }).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestFixtureContainer(t *testing.T) {
	ns := NewNetns()
	m := NewMachine(ns)
	defer m.KillAll()
	main := runAsync(m, context.Background(), sh("nc -ll -p 7777 -e cat & httpd -f -p 8080 -h /tmp & exec sleep 86400"), Stdio{})
	waitFor(t, func() bool { return len(ns.Ports()) == 2 })
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("req-%d\n", i)
			if got := exchange(t, ns, 7777, want); got != want {
				t.Errorf("echo got %q want %q", got, want)
			}
		}()
	}
	wg.Wait()
	resp := exchange(t, ns, 8080, "GET / HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 404 Not Found\r\n") || !strings.HasSuffix(resp, "The requested URL was not found\n</BODY></HTML>\n") {
		t.Errorf("http response %q", resp)
	}
	runOn(t, m, "", sh("echo hello > /tmp/index.html")...)
	resp = exchange(t, ns, 8080, "GET / HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(resp, "Content-Length: 6\r\n\r\nhello\n") {
		t.Errorf("http response %q", resp)
	}
	ps := runOn(t, m, "", "ps").stdout
	for _, want := range []string{"    1 root     sleep 86400\n", " root     nc -ll -p 7777 -e cat\n", " root     httpd -f -p 8080 -h /tmp\n"} {
		if !strings.Contains(ps, want) {
			t.Errorf("ps lacks %q:\n%s", want, ps)
		}
	}
	m.KillAll()
	if st := waitStatus(t, main); st != 137 {
		t.Errorf("main status %d", st)
	}
	waitFor(t, func() bool { return len(ns.Ports()) == 0 && len(m.Processes()) == 0 })
}

func TestNcSingleConnection(t *testing.T) {
	ns := NewNetns()
	m := NewMachine(ns)
	defer m.KillAll()
	startInit(t, m)
	done := runAsync(m, context.Background(), []string{"nc", "-l", "-p", "9000", "-e", "cat"}, Stdio{})
	waitFor(t, func() bool { return len(ns.Ports()) == 1 })
	if got := exchange(t, ns, 9000, "once"); got != "once" {
		t.Errorf("got %q", got)
	}
	if st := waitStatus(t, done); st != 0 {
		t.Errorf("status %d", st)
	}
	if _, err := ns.Dial(context.Background(), 9000); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("port still open: %v", err)
	}
	// Client mode and the bind error.
	srv := runAsync(m, context.Background(), []string{"nc", "-lp", "9001"}, Stdio{Stdout: io.Discard})
	waitFor(t, func() bool { return len(ns.Ports()) == 1 })
	if r := runOn(t, m, "", "nc", "-l", "-p", "9001"); r.stderr != "nc: bind: Address already in use\n" || r.code != 1 {
		t.Errorf("bind error %+v", r)
	}
	if r := runOn(t, m, "hi", sh("nc 127.0.0.1 9001")...); r.code != 0 {
		t.Errorf("client %+v", r)
	}
	waitStatus(t, srv)
	if r := runOn(t, m, "", "nc", "localhost", "9002"); r.stderr != "nc: can't connect to remote host (127.0.0.1): Connection refused\n" || r.code != 1 {
		t.Errorf("refused %+v", r)
	}
}

func TestKillAllLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	ns := NewNetns()
	m := NewMachine(ns)
	r, w := pipeStdin()
	runAsync(m, context.Background(), sh("nc -ll -p 7777 -e cat & httpd -f -p 8080 & exec sleep 86400"), Stdio{})
	runAsync(m, context.Background(), sh("read x; echo $x"), Stdio{Stdin: r})
	runAsync(m, context.Background(), []string{"cat"}, Stdio{Stdin: r, TTY: fixedTerm{80, 24}})
	runAsync(m, context.Background(), sh("sleep 100 & wait"), Stdio{})
	runAsync(m, context.Background(), sh("yes | sleep 100"), Stdio{})
	waitFor(t, func() bool { return len(ns.Ports()) == 2 && len(m.Processes()) >= 9 })
	c, err := ns.Dial(context.Background(), 7777) // a connection cat is serving
	if err != nil {
		t.Fatal(err)
	}
	m.KillAll()
	w.Close() // the caller's stream ends: the stdin pumps return
	c.Close()
	waitFor(t, func() bool { return len(m.Processes()) == 0 && len(ns.Ports()) == 0 })
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
}

func TestRunAfterContextDone(t *testing.T) {
	m := NewMachine(nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if st := m.Run(ctx, []string{"sleep", "10"}, Stdio{}); st != 137 {
		t.Errorf("status %d", st)
	}
}

func TestInteractiveShellOnTTY(t *testing.T) {
	m := NewMachine(nil)
	defer m.KillAll()
	r, w := pipeStdin()
	out := newSyncBuffer()
	done := runAsync(m, context.Background(), []string{"sh"}, Stdio{Stdin: r, Stdout: out, Stderr: out, TTY: fixedTerm{80, 24}})
	waitFor(t, func() bool { return out.String() == "/ # " })
	io.WriteString(w, "echo hi\r")
	waitFor(t, func() bool { return out.String() == "/ # echo hi\r\nhi\r\n/ # " })
	io.WriteString(w, "exit 5\r")
	if st := waitStatus(t, done); st != 5 {
		t.Errorf("status %d", st)
	}
}

func TestScriptFromStdin(t *testing.T) {
	got := runFake(t, "echo a\nif true\nthen echo b\nfi\ncat <<E\ndoc\nE\nexit 4\necho no\n", "sh")
	if got.stdout != "a\nb\ndoc\n" || got.code != 4 {
		t.Errorf("%+v", got)
	}
}
