package meshecho

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// startServer runs an echo server on loopback and returns its addresses.
func startServer(t *testing.T) (dir string, addrs map[mp.Protocol]string) {
	t.Helper()
	dir = t.TempDir()
	ready := make(chan [3]net.Addr, 1)
	s := &Server{Name: "ns1/echo", Dir: dir, HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Ready: func(h, tc, g net.Addr) { ready <- [3]net.Addr{h, tc, g} }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	select {
	case a := <-ready:
		return dir, map[mp.Protocol]string{mp.HTTP: a[0].String(), mp.TCP: a[1].String(), mp.GRPC: a[2].String()}
	case err := <-done:
		t.Fatalf("server: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("server did not start")
	}
	return
}

func run(t *testing.T, stdin io.Reader, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code := Main(ctx, args, stdin, &out, &errb, nil)
	return out.String(), errb.String(), code
}

func TestRequestAndSaw(t *testing.T) {
	dir, addrs := startServer(t)
	for _, p := range []mp.Protocol{mp.HTTP, mp.TCP, mp.GRPC} {
		t.Run(string(p), func(t *testing.T) {
			nonce := "n-" + strings.ToLower(string(p))
			out, errs, code := run(t, nil, "request", "--protocol", string(p), "--addr", addrs[p], "--nonce", nonce, "--timeout", "3s")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			o, err := DecodeOutcome([]byte(out))
			if err != nil {
				t.Fatal(err)
			}
			switch p {
			case mp.HTTP:
				if o.HTTPStatus != 200 || o.Body != "echo ns1/echo "+nonce+"\n" {
					t.Errorf("outcome %s", o)
				}
			case mp.TCP:
				if o.Data != "echo "+nonce+"\n" {
					t.Errorf("outcome %s", o)
				}
			case mp.GRPC:
				if o.GRPCCode != "OK" {
					t.Errorf("outcome %s", o)
				}
			}
			if o.Elapsed <= 0 {
				t.Errorf("no elapsed time in %+v", o)
			}
			for n, want := range map[string]string{nonce: "saw", nonce + "-other": "not-seen"} {
				out, errs, code := run(t, nil, "saw", "--dir", dir, n)
				if code != 0 || strings.TrimSpace(out) != want {
					t.Errorf("saw %s: %q (exit %d, %s), want %s", n, out, code, errs, want)
				}
			}
		})
	}
}

func TestRequestFailuresAreClassified(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	// A listener that reads the line and closes: EOF for TCP (closing
	// with the line unread would be a reset).
	eofL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer eofL.Close()
	go func() {
		for {
			c, err := eofL.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			c.Close()
		}
	}()
	// A listener that never answers: timeout.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for _, tc := range []struct {
		proto mp.Protocol
		addr  string
		want  mp.ErrorClass
		code  string
	}{
		{mp.HTTP, closed, mp.ErrRefused, ""},
		{mp.TCP, closed, mp.ErrRefused, ""},
		{mp.TCP, eofL.Addr().String(), mp.ErrEOF, ""},
		{mp.TCP, silent.Addr().String(), mp.ErrTimeout, ""},
		{mp.GRPC, closed, mp.ErrNone, "Unavailable"},
	} {
		out, errs, code := run(t, nil, "request", "--protocol", string(tc.proto), "--addr", tc.addr, "--nonce", "x", "--timeout", "500ms")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		o, err := DecodeOutcome([]byte(out))
		if err != nil {
			t.Fatal(err)
		}
		if o.Err != tc.want || o.GRPCCode != tc.code {
			t.Errorf("%s to %s: %s, want err %q gRPC %q", tc.proto, tc.addr, o, tc.want, tc.code)
		}
	}
}

func TestOpenStream(t *testing.T) {
	_, addrs := startServer(t)
	pr, pw := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int, 1)
	go func() {
		var errb bytes.Buffer
		done <- Main(context.Background(), []string{"open", "--addr", addrs[mp.TCP]}, pr, outW, &errb, nil)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	next := func() OpenReply {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("open ended early: %v", lines.Err())
		}
		r, err := ParseOpenReply(lines.Text())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := next(); !r.OK {
		t.Fatalf("first reply %+v, want OK", r)
	}
	for _, l := range []string{"nonce-1", "second"} {
		io.WriteString(pw, l+"\n")
		if r := next(); r.Line != "echo "+l || r.Err != nil {
			t.Fatalf("reply %+v, want echo %s", r, l)
		}
	}
	pw.Close()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}

	// A refused dial is reported, classified, on the first line.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	out, _, code := run(t, strings.NewReader(""), "open", "--addr", addr)
	r, err := ParseOpenReply(strings.TrimSpace(out))
	if err != nil || code != 0 || r.Err == nil || mp.Classify(r.Err) != mp.ErrRefused {
		t.Fatalf("open to a closed port: %q exit %d -> %+v (%v), want a refused error", out, code, r, err)
	}
}

func TestClassErrorRoundTrip(t *testing.T) {
	for _, c := range []mp.ErrorClass{mp.ErrRefused, mp.ErrReset, mp.ErrEOF, mp.ErrTimeout, mp.ErrTLS, mp.ErrOther} {
		if got := mp.Classify(ClassError(c, "detail")); got != c {
			t.Errorf("Classify(ClassError(%s)) = %s", c, got)
		}
	}
}

func TestProbesCountHealthzOnly(t *testing.T) {
	dir, addrs := startServer(t)
	get := func(path string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addrs[mp.HTTP]+path, nil)
		req.Header.Set("User-Agent", "kube-probe/1.37")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get("/healthz")
	get("/")
	get("/healthz")
	out, errs, code := run(t, nil, "probes", "--dir", dir)
	if code != 0 || strings.TrimSpace(out) != "2" {
		t.Fatalf("probes: %q exit %d %s, want 2", out, code, errs)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"request", "--protocol", "UDP", "--addr", "a:1", "--nonce", "n"}, {"saw"}} {
		if _, _, code := run(t, nil, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
