// Package busybox is a deterministic stand-in for the busybox userland the
// streaming suite runs in containers, so the reference runtime needs no real
// processes: a small sh (lists, and/or, background jobs, for/while/if, quoting,
// $VAR/$$/$?, the redirects the suite uses) and the applets the suite calls
// (echo printf cat sleep exit kill true false read wait head wc stty ps nc
// httpd). Output bytes, exit codes and signal deaths (128+N) follow busybox.
package busybox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Netns is a pod's network namespace: in-memory listeners keyed by port.
type Netns struct {
	mu        sync.Mutex
	listeners map[int]*listener
}

// NewNetns returns an empty namespace.
func NewNetns() *Netns { return &Netns{listeners: map[int]*listener{}} }

// Listen opens port.
func (n *Netns) Listen(port int) (net.Listener, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.listeners[port]; ok {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	}
	l := &listener{ns: n, port: port, conns: make(chan net.Conn), done: make(chan struct{})}
	n.listeners[port] = l
	return l, nil
}

// Dial connects to port; ECONNREFUSED when nobody listens.
func (n *Netns) Dial(ctx context.Context, port int) (net.Conn, error) {
	n.mu.Lock()
	l := n.listeners[port]
	n.mu.Unlock()
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: addr(port), Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	if l == nil {
		return nil, refused
	}
	a, b := connPair(port)
	select {
	case l.conns <- b:
		return a, nil
	case <-l.done:
		return nil, refused
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Ports lists the listening ports, sorted.
func (n *Netns) Ports() []int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]int, 0, len(n.listeners))
	for p := range n.listeners {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

type addr int

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return fmt.Sprintf("127.0.0.1:%d", int(a)) }

type listener struct {
	ns    *Netns
	port  int
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.ns.mu.Lock()
		if l.ns.listeners[l.port] == l {
			delete(l.ns.listeners, l.port)
		}
		l.ns.mu.Unlock()
	})
	return nil
}

func (l *listener) Addr() net.Addr { return addr(l.port) }

// pipeConn is one end of an in-memory full-duplex connection with half-close.
type pipeConn struct {
	r    *io.PipeReader
	w    *io.PipeWriter
	port int
}

func connPair(port int) (*pipeConn, *pipeConn) {
	r1, w1 := io.Pipe()
	r2, w2 := io.Pipe()
	return &pipeConn{r: r1, w: w2, port: port}, &pipeConn{r: r2, w: w1, port: port}
}

func (c *pipeConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *pipeConn) Write(b []byte) (int, error) { return c.w.Write(b) }

// CloseWrite half-closes: the peer reads EOF.
func (c *pipeConn) CloseWrite() error { return c.w.Close() }

func (c *pipeConn) Close() error {
	c.w.Close()
	c.r.CloseWithError(net.ErrClosed)
	return nil
}

func (c *pipeConn) LocalAddr() net.Addr              { return addr(c.port) }
func (c *pipeConn) RemoteAddr() net.Addr             { return addr(0) }
func (c *pipeConn) SetDeadline(time.Time) error      { return errors.ErrUnsupported }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return errors.ErrUnsupported }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return errors.ErrUnsupported }
