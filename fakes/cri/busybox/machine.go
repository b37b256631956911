package busybox

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// Terminal gives the current tty size; nil means no tty.
type Terminal interface{ Size() (width, height uint16) }

// Stdio is a process's standard streams; nil members behave like /dev/null.
type Stdio struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	TTY    Terminal
}

// Process is an entry of the process table.
type Process struct {
	PID     int
	Cmdline string
}

// Machine is one container: a process table over a shared Netns.
type Machine struct {
	ns      *Netns
	mu      sync.Mutex
	nextPID int
	procs   map[int]*proc
	root    context.Context
	killAll context.CancelFunc
}

type proc struct {
	pid     int
	cmdline string
	cancel  context.CancelFunc
	mu      sync.Mutex
	signal  syscall.Signal
}

// NewMachine returns a container over ns.
func NewMachine(ns *Netns) *Machine {
	ctx, cancel := context.WithCancel(context.Background())
	return &Machine{ns: ns, procs: map[int]*proc{}, root: ctx, killAll: cancel}
}

// Processes lists running processes by PID.
func (m *Machine) Processes() []Process {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Process, 0, len(m.procs))
	for _, p := range m.procs {
		out = append(out, Process{PID: p.pid, Cmdline: p.cmdline})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// KillAll kills every process; later Runs start fresh.
func (m *Machine) KillAll() {
	m.mu.Lock()
	cancel := m.killAll
	m.root, m.killAll = context.WithCancel(context.Background())
	for _, p := range m.procs {
		p.kill(syscall.SIGKILL)
	}
	m.mu.Unlock()
	cancel()
}

func (p *proc) kill(sig syscall.Signal) {
	p.mu.Lock()
	if p.signal == 0 {
		p.signal = sig
	}
	p.mu.Unlock()
	p.cancel()
}

func (m *Machine) signal(pid int, sig syscall.Signal) bool {
	m.mu.Lock()
	p := m.procs[pid]
	m.mu.Unlock()
	if p == nil {
		return false
	}
	p.kill(sig)
	return true
}

// Run runs argv as a new process and returns its exit status (128+signal when
// killed; ctx cancellation counts as SIGKILL).
func (m *Machine) Run(ctx context.Context, argv []string, stdio Stdio) int {
	return m.spawn(ctx, argv, newIO(stdio))
}

// spawn runs argv in a new process with already-wrapped streams.
func (m *Machine) spawn(parent context.Context, argv []string, io *procIO) int {
	if len(argv) == 0 {
		return 0
	}
	m.mu.Lock()
	root := m.root
	m.nextPID++
	ctx, cancel := context.WithCancel(parent)
	p := &proc{pid: m.nextPID, cmdline: strings.Join(argv, " "), cancel: cancel}
	m.procs[p.pid] = p
	m.mu.Unlock()
	stop := context.AfterFunc(root, func() { p.kill(syscall.SIGKILL) })
	defer func() {
		stop()
		cancel()
		m.mu.Lock()
		delete(m.procs, p.pid)
		m.mu.Unlock()
	}()
	code := m.exec(ctx, p, argv, io)
	p.mu.Lock()
	sig := p.signal
	p.mu.Unlock()
	if sig != 0 {
		return 128 + int(sig)
	}
	if ctx.Err() != nil {
		return 128 + int(syscall.SIGKILL)
	}
	return code
}

// procIO holds a process's streams: a cancellable shared stdin and writers
// that apply onlcr on a tty and turn write errors into SIGPIPE.
type procIO struct {
	in   *stdinReader
	out  io.Writer
	err  io.Writer
	tty  Terminal
	pipe bool // a write failed
}

func newIO(s Stdio) *procIO {
	p := &procIO{in: newStdinReader(s.Stdin), out: s.Stdout, err: s.Stderr, tty: s.TTY}
	if p.out == nil {
		p.out = io.Discard
	}
	if p.err == nil {
		p.err = io.Discard
	}
	return p
}

func (p *procIO) with(out, err io.Writer, in *stdinReader) *procIO {
	c := *p
	c.out, c.err, c.in = out, err, in
	return &c
}

var errPipe = errors.New("broken pipe")

// write writes to w with tty translation; a failure marks SIGPIPE.
func (p *procIO) write(w io.Writer, b []byte) error {
	if p.tty != nil {
		b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	}
	for len(b) > 0 {
		n := len(b)
		if n > 32<<10 {
			n = 32 << 10
		}
		if _, err := w.Write(b[:n]); err != nil {
			p.pipe = true
			return errPipe
		}
		b = b[n:]
	}
	return nil
}

// stdinReader lets blocking reads of a process's stdin honour cancellation:
// one pump goroutine reads the source; readers wait on it or on their context.
type stdinReader struct {
	mu   sync.Mutex
	cond chan struct{} // signalled on new data/EOF
	buf  []byte
	err  error
	src  io.Reader
	once sync.Once
}

func newStdinReader(r io.Reader) *stdinReader {
	s := &stdinReader{cond: make(chan struct{}, 1), src: r}
	if r == nil {
		s.err = io.EOF
	}
	return s
}

func (s *stdinReader) start() {
	s.once.Do(func() {
		if s.src == nil {
			return
		}
		go func() {
			b := make([]byte, 32<<10)
			for {
				n, err := s.src.Read(b)
				s.mu.Lock()
				s.buf = append(s.buf, b[:n]...)
				if err != nil {
					s.err = err
				}
				s.mu.Unlock()
				select {
				case s.cond <- struct{}{}:
				default:
				}
				if err != nil {
					return
				}
			}
		}()
	})
}

// next returns buffered bytes up to max (all when max <= 0), waiting for data.
func (s *stdinReader) next(ctx context.Context, upToNewline bool) ([]byte, error) {
	s.start()
	for {
		s.mu.Lock()
		if len(s.buf) > 0 {
			n := len(s.buf)
			if upToNewline {
				i := bytes.IndexByte(s.buf, '\n')
				if i < 0 && s.err == nil {
					s.mu.Unlock()
					goto wait
				}
				if i >= 0 {
					n = i + 1
				}
			}
			out := append([]byte(nil), s.buf[:n]...)
			s.buf = s.buf[n:]
			s.mu.Unlock()
			return out, nil
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return nil, err
		}
		s.mu.Unlock()
	wait:
		select {
		case <-s.cond:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
