package meshkube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gauntlet-conformance/gauntlet/internal/meshecho"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// defaultRequestTimeout bounds a request whose Timeout is zero.
const defaultRequestTimeout = 3 * time.Second

// target resolves a request to the client pod it runs in and the address
// it dials: the Service name for a Service port, the headless Service (pod
// IPs) for a container port.
func (d *Driver) target(r mp.Request) (podRef, mp.Workload, string, error) {
	d.mu.Lock()
	cli, okc := d.clients[r.From]
	w, okw := d.workloads[r.To]
	d.mu.Unlock()
	if !okc {
		return podRef{}, w, "", fmt.Errorf("no client pod for identity %s (DeployClient first)", r.From)
	}
	if !okw {
		return podRef{}, w, "", fmt.Errorf("no workload %s (Deploy first)", r.To)
	}
	for _, p := range w.Ports {
		if (!r.ViaService && p.Port == r.Port) || (r.ViaService && p.ServicePort == r.Port) {
			if p.Protocol != r.Protocol {
				return podRef{}, w, "", fmt.Errorf("%s port %d speaks %s, not %s", r.To, r.Port, p.Protocol, r.Protocol)
			}
			host := w.Name + headlessSuffix + "." + w.Namespace + ".svc"
			if r.ViaService {
				host = w.Name + "." + w.Namespace + ".svc"
			}
			return cli, w, net.JoinHostPort(host, strconv.Itoa(r.Port)), nil
		}
	}
	kind := "container"
	if r.ViaService {
		kind = "Service"
	}
	return podRef{}, w, "", fmt.Errorf("workload %s has no %s port %d", r.To, kind, r.Port)
}

// run execs a short command and returns its stdout.
func (d *Driver) run(ctx context.Context, pod podRef, container string, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out, errb bytes.Buffer
	err := d.exec.Exec(ctx, ExecRequest{Namespace: pod.Namespace, Pod: pod.Name, Container: container,
		Command: append([]string{EchoBinary}, args...), Stdout: &out, Stderr: &errb})
	if err != nil {
		msg := oneLine(errb.String())
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		if msg != "" {
			msg = " (stderr: " + msg + ")"
		}
		return nil, fmt.Errorf("exec %s in %s/%s: %v%s", args[0]+" "+args[1], pod.Namespace, pod.Name, err, msg)
	}
	return out.Bytes(), nil
}

// Do implements Driver.
func (d *Driver) Do(ctx context.Context, r mp.Request) (mp.Outcome, error) {
	cli, _, addr, err := d.target(r)
	if err != nil {
		return mp.Outcome{}, err
	}
	if r.Nonce == "" {
		return mp.Outcome{}, errors.New("request without a nonce")
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = defaultRequestTimeout
	}
	out, err := d.run(ctx, cli, clientContainer, timeout+d.o.ExecOverhead,
		"mesh-echo", "request", "--protocol", string(r.Protocol), "--addr", addr, "--nonce", r.Nonce, "--timeout", timeout.String())
	if err != nil {
		return mp.Outcome{}, err
	}
	o, err := meshecho.DecodeOutcome(out)
	if err != nil {
		return mp.Outcome{}, err
	}
	o.ServerSaw, err = d.saw(ctx, r.To, r.Nonce)
	return o, err
}

// saw asks the workload's echo container(s) whether the nonce reached them.
func (d *Driver) saw(ctx context.Context, ref mp.WorkloadRef, nonce string) (bool, error) {
	pods, err := d.serverPods(ctx, ref)
	if err != nil {
		return false, err
	}
	for _, p := range pods {
		out, err := d.run(ctx, podRef{ref.Namespace, p}, echoContainer, d.o.ExecOverhead, "mesh-echo", "saw", "--dir", meshecho.DefaultDir, nonce)
		if err != nil {
			return false, err
		}
		switch strings.TrimSpace(string(out)) {
		case "saw":
			return true, nil
		case "not-seen":
		default:
			return false, fmt.Errorf("mesh-echo saw in %s/%s printed %q", ref.Namespace, p, out)
		}
	}
	return false, nil
}

// Probe implements Driver: it reports whether the kubelet's own readiness
// probe (GET /healthz, every second) reaches the echo server now, which is
// the path the mesh must keep open for it (Istio rewrites probes to its
// agent, Linkerd authorizes them by default).
func (d *Driver) Probe(ctx context.Context, ref mp.WorkloadRef) (mp.Outcome, error) {
	start := time.Now()
	pods, err := d.serverPods(ctx, ref)
	if err != nil {
		return mp.Outcome{}, err
	}
	pod := podRef{ref.Namespace, pods[0]}
	count := func() (int, error) {
		out, err := d.run(ctx, pod, echoContainer, d.o.ExecOverhead, "mesh-echo", "probes", "--dir", meshecho.DefaultDir)
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(string(out)))
	}
	before, err := count()
	if err != nil {
		return mp.Outcome{}, err
	}
	deadline := time.Now().Add(d.o.ProbeWait)
	for {
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return mp.Outcome{}, err
		}
		n, err := count()
		if err != nil {
			return mp.Outcome{}, err
		}
		if n > before {
			return mp.Outcome{HTTPStatus: 200, Body: fmt.Sprintf("%d kubelet probe(s) reached %s", n-before, pod.Name),
				ServerSaw: true, Elapsed: time.Since(start)}, nil
		}
		if time.Now().After(deadline) {
			why := d.podsWhy(ctx, pod.Namespace, WorkloadLabel+"="+ref.Name, false)
			return mp.Outcome{Err: mp.ErrTimeout, Elapsed: time.Since(start),
				Detail: fmt.Sprintf("no kubelet probe reached the echo server of %s within %s (%s)", pod.Name, d.o.ProbeWait, why)}, nil
		}
	}
}

// Open implements Driver: a `mesh-echo open` process in the client pod
// holds the connection; its stdin and stdout carry the lines.
func (d *Driver) Open(ctx context.Context, r mp.Request) (mp.Conn, error) {
	cli, _, addr, err := d.target(r)
	if err != nil {
		return nil, err
	}
	if r.Protocol != mp.TCP {
		return nil, fmt.Errorf("Open needs a TCP port; %s:%d is %s", r.To, r.Port, r.Protocol)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = defaultRequestTimeout
	}
	// The exec outlives Open: it ends when the Conn is closed (stdin EOF),
	// or with the connection.
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := &conn{cancel: cancel, in: inW, lines: make(chan string, 16), done: make(chan struct{})}
	stderr := &syncBuffer{}
	go func() {
		c.execErr = d.exec.Exec(ectx, ExecRequest{Namespace: cli.Namespace, Pod: cli.Name, Container: clientContainer,
			Command: []string{EchoBinary, "mesh-echo", "open", "--addr", addr, "--timeout", timeout.String()},
			Stdin:   inR, Stdout: outW, Stderr: stderr})
		outW.Close()
		inR.Close()
		close(c.done)
	}()
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	first, err := c.next(ctx, timeout+d.o.ExecOverhead)
	if err == nil {
		var rep meshecho.OpenReply
		if rep, err = meshecho.ParseOpenReply(first); err == nil {
			switch {
			case rep.OK:
				return c, nil
			case rep.Err != nil:
				err = rep.Err
			default:
				err = fmt.Errorf("unexpected first line %q", first)
			}
		}
	}
	c.Close()
	if s := oneLine(stderr.String()); s != "" && mp.Classify(err) == mp.ErrOther {
		err = fmt.Errorf("%w (stderr: %s)", err, s)
	}
	return nil, err
}

// syncBuffer is a stderr the exec goroutine writes while Open may read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type conn struct {
	cancel  context.CancelFunc
	in      *io.PipeWriter
	lines   chan string
	done    chan struct{}
	execErr error

	mu     sync.Mutex
	broken error
	once   sync.Once
}

// next reads the next line of the open stream within timeout.
func (c *conn) next(ctx context.Context, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-c.lines:
		if !ok {
			<-c.done
			if c.execErr != nil {
				return "", fmt.Errorf("the client's exec ended: %v", c.execErr)
			}
			return "", errors.New("the client's exec ended without a reply")
		}
		return l, nil
	case <-t.C:
		return "", fmt.Errorf("no reply within %s: %w", timeout, os.ErrDeadlineExceeded)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Echo implements meshpolicy.Conn.
func (c *conn) Echo(ctx context.Context, line string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return "", c.broken
	}
	if strings.ContainsAny(line, "\r\n") {
		return "", errors.New("a line cannot contain a newline")
	}
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		c.broken = fmt.Errorf("the client's exec ended: %w", err)
		return "", c.broken
	}
	timeout := defaultRequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	l, err := c.next(ctx, timeout)
	if err != nil {
		// A late reply would answer the next line: the stream is done.
		c.broken = err
		return "", err
	}
	rep, err := meshecho.ParseOpenReply(l)
	switch {
	case err != nil:
		c.broken = err
	case rep.Err != nil:
		c.broken = rep.Err
	default:
		return rep.Line, nil
	}
	return "", c.broken
}

// Close implements meshpolicy.Conn: stdin EOF ends the client process; the
// exec is cut if it does not end promptly.
func (c *conn) Close() error {
	c.once.Do(func() {
		c.in.Close()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
		c.cancel()
		// Drain so the reader goroutine ends.
		go func() {
			for range c.lines {
			}
		}()
	})
	return nil
}
