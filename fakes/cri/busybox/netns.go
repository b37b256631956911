package busybox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// listenBacklog is how many connections may wait for Accept, like the
// backlog argument of listen(2).
const listenBacklog = 128

// firstEphemeralPort is where Listen(0) and client ports start
// (Linux's ip_local_port_range default).
const firstEphemeralPort = 32768

// Netns is a pod's network namespace: in-memory TCP-like listeners keyed by
// port on 127.0.0.1. Containers of one sandbox share a Netns; the fake
// runtime's PortForward calls Dial. No real sockets are involved.
type Netns struct {
	mu        sync.Mutex
	listeners map[int]*listener
	nextPort  int
}

// NewNetns returns an empty network namespace.
func NewNetns() *Netns {
	return &Netns{listeners: map[int]*listener{}, nextPort: firstEphemeralPort}
}

func loopback(port int) *net.TCPAddr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port} }

// Listen binds port (0 picks a free ephemeral port). It fails with an error
// wrapping syscall.EADDRINUSE if the port is taken.
func (n *Netns) Listen(port int) (net.Listener, error) {
	if port < 0 || port > 65535 {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: loopback(port), Err: os.NewSyscallError("bind", syscall.EINVAL)}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if port == 0 {
		for i := 0; i < 65536-firstEphemeralPort; i++ {
			p := n.nextPort
			n.nextPort++
			if n.nextPort > 65535 {
				n.nextPort = firstEphemeralPort
			}
			if n.listeners[p] == nil {
				port = p
				break
			}
		}
		if port == 0 {
			return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: loopback(0), Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
		}
	}
	if n.listeners[port] != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: loopback(port), Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	}
	l := &listener{ns: n, port: port, queue: make(chan *conn, listenBacklog), closed: make(chan struct{})}
	n.listeners[port] = l
	return l, nil
}

// Ports lists the listening ports, ascending.
func (n *Netns) Ports() []int {
	n.mu.Lock()
	defer n.mu.Unlock()
	ports := make([]int, 0, len(n.listeners))
	for p := range n.listeners {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return ports
}

// ErrConnRefused is what Dial returns (wrapped in a *net.OpError) when nothing
// listens on the port; errors.Is(err, syscall.ECONNREFUSED) also holds.
var ErrConnRefused = os.NewSyscallError("connect", syscall.ECONNREFUSED)

// Dial connects to port like connect(2) to 127.0.0.1:port. The returned
// net.Conn supports CloseWrite (half-close), which port-forwarding relies on.
func (n *Netns) Dial(ctx context.Context, port int) (net.Conn, error) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: loopback(port), Err: ErrConnRefused}
	n.mu.Lock()
	l := n.listeners[port]
	local := n.nextPort
	n.nextPort++
	if n.nextPort > 65535 {
		n.nextPort = firstEphemeralPort
	}
	n.mu.Unlock()
	if l == nil {
		return nil, refused
	}
	client, server := newConnPair(loopback(local), loopback(port))
	for {
		switch err := l.enqueue(server); {
		case err == nil:
			return client, nil
		case errors.Is(err, errBacklogFull):
			// A full backlog drops the SYN; the client retries until its
			// context gives up, as TCP would.
			select {
			case <-ctx.Done():
				return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: loopback(port), Err: ctx.Err()}
			case <-l.closed:
				return nil, refused
			case <-time.After(10 * time.Millisecond):
			}
		default:
			return nil, refused
		}
	}
}

var errBacklogFull = errors.New("backlog full")

type listener struct {
	ns     *Netns
	port   int
	mu     sync.Mutex // orders enqueue against Close so no conn is stranded
	queue  chan *conn
	closed chan struct{}
	done   bool
}

func (l *listener) enqueue(c *conn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return net.ErrClosed
	}
	select {
	case l.queue <- c:
		return nil
	default:
		return errBacklogFull
	}
}

func (l *listener) Accept() (net.Conn, error) {
	return l.accept(nil)
}

// accept is Accept that also gives up when done closes (a killed process).
func (l *listener) accept(done <-chan struct{}) (net.Conn, error) {
	select {
	case c := <-l.queue:
		return c, nil
	case <-l.closed:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	case <-done:
		return nil, errInterrupted
	}
}

func (l *listener) Close() error {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return nil
	}
	l.done = true
	close(l.closed)
	l.mu.Unlock()
	l.ns.mu.Lock()
	if l.ns.listeners[l.port] == l {
		delete(l.ns.listeners, l.port)
	}
	l.ns.mu.Unlock()
	// Connections nobody accepted are reset, as the kernel does.
	for {
		select {
		case c := <-l.queue:
			c.Close()
		default:
			return nil
		}
	}
}

func (l *listener) Addr() net.Addr { return loopback(l.port) }

// conn is one end of an in-memory full-duplex stream.
type conn struct {
	rd, wr        *bytePipe
	local, remote net.Addr
	closeOnce     sync.Once
	closed        chan struct{}
	mu            sync.Mutex
	rDeadline     time.Time
	wDeadline     time.Time
}

func newConnPair(clientAddr, serverAddr net.Addr) (client, server *conn) {
	up, down := newBytePipe(), newBytePipe()
	client = &conn{rd: down, wr: up, local: clientAddr, remote: serverAddr, closed: make(chan struct{})}
	server = &conn{rd: up, wr: down, local: serverAddr, remote: clientAddr, closed: make(chan struct{})}
	return client, server
}

func (c *conn) opErr(op string, err error) error {
	if err == io.EOF {
		return err
	}
	switch {
	case errors.Is(err, errInterrupted):
		err = net.ErrClosed
	case errors.Is(err, io.ErrClosedPipe):
		err = net.ErrClosed
	case errors.Is(err, errEPIPE):
		err = os.NewSyscallError(op, syscall.EPIPE)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.local, Addr: c.remote, Err: err}
}

func (c *conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	dl := c.rDeadline
	c.mu.Unlock()
	n, err := c.rd.read(c.closed, dl, b)
	if err != nil {
		return n, c.opErr("read", err)
	}
	return n, nil
}

func (c *conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	dl := c.wDeadline
	c.mu.Unlock()
	n, err := c.wr.write(c.closed, dl, b)
	if err != nil {
		return n, c.opErr("write", err)
	}
	return n, nil
}

// CloseWrite half-closes: the peer reads EOF, this end can still read.
func (c *conn) CloseWrite() error {
	c.wr.closeWrite()
	return nil
}

// CloseRead stops reading; the peer's writes fail with EPIPE.
func (c *conn) CloseRead() error {
	c.rd.closeRead()
	return nil
}

func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.rd.closeRead()
		c.wr.closeWrite()
	})
	return nil
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rDeadline, c.wDeadline = t, t
	c.mu.Unlock()
	c.rd.kick()
	c.wr.kick()
	return nil
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rDeadline = t
	c.mu.Unlock()
	c.rd.kick()
	return nil
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wDeadline = t
	c.mu.Unlock()
	c.wr.kick()
	return nil
}

func (c *conn) String() string { return fmt.Sprintf("conn %v->%v", c.local, c.remote) }
