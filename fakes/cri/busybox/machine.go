package busybox

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// Terminal gives the current tty size; nil means no tty.
type Terminal interface{ Size() (width, height uint16) }

// Stdio is what a runtime connects to a new process.
type Stdio struct {
	Stdin  io.Reader // nil: no stdin, reads see EOF like /dev/null (blocks forever on a tty)
	Stdout io.Writer // nil: discard
	Stderr io.Writer // nil: discard
	TTY    Terminal  // nil: not a tty; otherwise stdin/stdout/stderr are a terminal
}

// Process is one entry of a Machine's process table, as `ps` shows it.
type Process struct {
	PID     int
	Cmdline string // argv joined by spaces, like /proc/PID/cmdline in ps
}

// Machine is one container's view: its own process table and files, and the
// sandbox's shared Netns.
type Machine struct {
	ns *Netns
	fs *memFS

	mu      sync.Mutex
	nextPID int
	procs   map[int]*proc
}

// NewMachine returns a machine with an empty process table over ns (nil: a
// private namespace).
func NewMachine(ns *Netns) *Machine {
	if ns == nil {
		ns = NewNetns()
	}
	return &Machine{ns: ns, fs: newMemFS(), nextPID: 1, procs: map[int]*proc{}}
}

// Signal numbers (Linux x86-64) and exit statuses 128+N.
const (
	sigHUP  = 1
	sigINT  = 2
	sigQUIT = 3
	sigKILL = 9
	sigPIPE = 13
	sigTERM = 15
)

type sigset uint64

func (s sigset) has(sig int) bool { return sig > 0 && sig < 64 && s&(1<<sig) != 0 }
func sigmask(sigs ...int) sigset {
	var s sigset
	for _, n := range sigs {
		s |= 1 << n
	}
	return s
}

// killedBy is the cancellation cause of a process context.
type killedBy int

func (k killedBy) Error() string { return fmt.Sprintf("killed by signal %d", int(k)) }

// proc is a process: a goroutine running an applet under ctx. Killing it
// cancels ctx; foreground children derive their ctx from it.
type proc struct {
	m      *Machine
	pid    int
	parent *proc
	bg     bool   // started with & (or daemonized): not in the foreground group
	ignore sigset // signals with SIG_IGN disposition
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}

	mu      sync.Mutex
	argv    []string
	exited  bool
	status  int
	sig     int // signal that killed it, 0 if it exited
	fds     *fdTable
	closers []func()
}

// spawn registers a new process. parentCtx is the parent's ctx for a
// foreground child, or a background ctx for jobs and top-level processes. It
// returns nil if the spawning process has already been killed (so KillAll
// cannot race with a fork).
func (m *Machine) spawn(parent *proc, parentCtx context.Context, argv []string, bg bool, ignore sigset) *proc {
	ctx, cancel := context.WithCancelCause(parentCtx)
	p := &proc{m: m, parent: parent, bg: bg, ignore: ignore, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), argv: slices.Clone(argv)}
	m.mu.Lock()
	if parent != nil && parent.ctx.Err() != nil {
		m.mu.Unlock()
		cancel(nil)
		return nil
	}
	p.pid = m.nextPID
	m.nextPID++
	m.procs[p.pid] = p
	m.mu.Unlock()
	context.AfterFunc(ctx, func() {
		sig := sigKILL
		if k, ok := context.Cause(ctx).(killedBy); ok {
			sig = int(k)
		}
		p.finish(128+sig, sig)
	})
	return p
}

// finish records the exit, closes the process's files and removes it from
// the table. Only the first call counts.
func (p *proc) finish(status, sig int) {
	p.mu.Lock()
	if p.exited {
		p.mu.Unlock()
		return
	}
	p.exited, p.status, p.sig = true, status, sig
	fds, closers := p.fds, p.closers
	p.fds, p.closers = nil, nil
	p.mu.Unlock()
	p.cancel(killedBy(sigKILL)) // releases ctx; foreground leftovers die
	if fds != nil {
		fds.closeAll()
	}
	for _, c := range closers {
		c()
	}
	m := p.m
	m.mu.Lock()
	delete(m.procs, p.pid)
	var rest []*proc
	if p.pid == 1 {
		// The PID namespace dies with its init.
		for _, q := range m.procs {
			rest = append(rest, q)
		}
	}
	m.mu.Unlock()
	close(p.done)
	for _, q := range rest {
		q.cancel(killedBy(sigKILL))
	}
}

// exit is the normal end of the process's goroutine. A process that was
// signalled before it got here died of the signal.
func (p *proc) exit(status int) {
	if p.ctx.Err() != nil {
		sig := sigKILL
		if k, ok := context.Cause(p.ctx).(killedBy); ok {
			sig = int(k)
		}
		p.finish(128+sig, sig)
		return
	}
	p.finish(status&0xff, 0)
}

// onExit registers cleanup (closing listeners, connections) for when the
// process dies, however it dies. If it is already dead, f runs now.
func (p *proc) onExit(f func()) {
	p.mu.Lock()
	if p.exited {
		p.mu.Unlock()
		f()
		return
	}
	p.closers = append(p.closers, f)
	p.mu.Unlock()
}

// setFiles hands the process its descriptor table (closed when it dies).
func (p *proc) setFiles(t *fdTable) {
	p.mu.Lock()
	if p.exited {
		p.mu.Unlock()
		t.closeAll()
		return
	}
	p.fds = t
	p.mu.Unlock()
}

func (p *proc) setArgv(argv []string) {
	p.mu.Lock()
	p.argv = slices.Clone(argv)
	p.mu.Unlock()
}

func (p *proc) getArgv() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.argv)
}

func (p *proc) getIgnore() sigset {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ignore
}

func (p *proc) setIgnore(s sigset) {
	p.mu.Lock()
	p.ignore = s
	p.mu.Unlock()
}

// files is the process's descriptor table (nil once it has exited).
func (p *proc) files() *fdTable {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fds
}

// swapFiles installs t as the process's table and returns the old one, for
// exec: the caller closes it. If the process is gone, t is closed instead.
func (p *proc) swapFiles(t *fdTable) *fdTable {
	p.mu.Lock()
	if p.exited {
		p.mu.Unlock()
		t.closeAll()
		return nil
	}
	old := p.fds
	p.fds = t
	p.mu.Unlock()
	return old
}

func (p *proc) cmdline() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.argv, " ")
}

func (p *proc) alive() bool { return p.ctx.Err() == nil }

// result is the wait status as a shell sees it: code, or 128+signal.
func (p *proc) result() (status, sig int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, p.sig
}

// Signal dispositions that terminate (the default action of every signal we
// know except these).
var harmlessSignals = map[int]bool{17: true, 18: true, 19: true, 20: true, 21: true, 22: true, 23: true, 28: true}

// deliver sends sig. fromInside marks signals raised inside the machine (kill,
// tty, SIGPIPE): PID 1 ignores those unless it has a handler, as the kernel
// does for a PID namespace's init. It reports whether the process existed.
func (p *proc) deliver(sig int, fromInside bool) bool {
	if !p.alive() {
		return false
	}
	switch {
	case sig == 0:
	case sig != sigKILL && p.getIgnore().has(sig):
	case fromInside && p.pid == 1:
	case harmlessSignals[sig]:
		// SIGCHLD/SIGCONT/SIGWINCH/SIGURG are ignored by default; stopping
		// (SIGSTOP/SIGTSTP/SIGTTIN/SIGTTOU) is not emulated.
	default:
		p.cancel(killedBy(sig))
	}
	return true
}

func (m *Machine) lookup(pid int) *proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.procs[pid]
}

func (m *Machine) snapshot() []*proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := make([]*proc, 0, len(m.procs))
	for _, p := range m.procs {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *proc) int { return a.pid - b.pid })
	return ps
}

// descends reports whether p is top or below it; with fgOnly, the chain must
// not cross a background job.
func descends(p, top *proc, fgOnly bool) bool {
	for q := p; q != nil; q = q.parent {
		if q == top {
			return true
		}
		if fgOnly && q.bg {
			return false
		}
	}
	return false
}

// signalGroup delivers sig to top and its descendants (only the foreground
// ones if fgOnly, as a tty's ^C reaches the foreground process group).
func (m *Machine) signalGroup(top *proc, sig int, fgOnly, fromInside bool) {
	for _, p := range m.snapshot() {
		if descends(p, top, fgOnly) {
			p.deliver(sig, fromInside)
		}
	}
}

// Processes lists the running processes by PID.
func (m *Machine) Processes() []Process {
	ps := m.snapshot()
	out := make([]Process, 0, len(ps))
	for _, p := range ps {
		out = append(out, Process{PID: p.pid, Cmdline: p.cmdline()})
	}
	return out
}

// KillAll SIGKILLs every process (container stop/remove). It holds the table
// lock while cancelling so a concurrent fork either is killed here or sees its
// parent dead and does not start.
func (m *Machine) KillAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.procs {
		p.cancel(killedBy(sigKILL))
	}
}

// Run runs argv as a new process and returns its exit status the way a
// runtime reports it: the exit code, or 128+signal when killed. Cancelling
// ctx kills the process and all its descendants (137). An unknown command
// prints "sh: NAME: not found" and returns 127. When Run returns, the
// process's Stdout/Stderr are detached: background jobs it left behind get
// EPIPE (SIGPIPE) if they write to them later, and never touch the caller's
// writers after Run has returned.
func (m *Machine) Run(ctx context.Context, argv []string, stdio Stdio) int {
	if len(argv) == 0 {
		argv = []string{"sh"}
	}
	sess := newSession(stdio)
	defer sess.close()
	p := m.spawn(nil, context.Background(), argv, false, 0)
	sess.fg = p
	fds := sess.files()
	p.setFiles(fds)
	stop := context.AfterFunc(ctx, func() { m.signalGroup(p, sigKILL, false, false) })
	defer stop()
	sess.start()
	go func() {
		p.exit(execArgv(p, fds, argv, baseEnviron()))
	}()
	<-p.done
	status, _ := p.result()
	return status
}
