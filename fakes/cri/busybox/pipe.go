package busybox

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// pipeCapacity matches Linux's default pipe buffer, so a writer blocks
// (back-pressure) instead of the pipe growing without bound.
const pipeCapacity = 64 << 10

var (
	errEPIPE       = syscall.EPIPE
	errInterrupted = errors.New("interrupted")
)

// bytePipe is a one-way, bounded, in-memory byte stream. Both ends wait on a
// caller-supplied channel so a killed process never stays blocked in it.
type bytePipe struct {
	mu      sync.Mutex
	buf     []byte
	rClosed bool // reader gone: writes fail with EPIPE
	wClosed bool // writer gone: reads drain the buffer, then io.EOF
	wake    chan struct{}
}

func newBytePipe() *bytePipe { return &bytePipe{wake: make(chan struct{})} }

// broadcast wakes every waiter; callers hold mu.
func (p *bytePipe) broadcast() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// wait releases mu until the pipe changes, done closes or the deadline
// passes; it returns with mu held.
func (p *bytePipe) wait(done <-chan struct{}, deadline time.Time) error {
	ch := p.wake
	p.mu.Unlock()
	defer p.mu.Lock()
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
		return nil
	case <-done:
		return errInterrupted
	case <-timeout:
		return os.ErrDeadlineExceeded
	}
}

func (p *bytePipe) read(done <-chan struct{}, deadline time.Time, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.rClosed {
			return 0, io.ErrClosedPipe
		}
		if len(p.buf) > 0 {
			n := copy(b, p.buf)
			p.buf = p.buf[n:]
			if len(p.buf) == 0 {
				p.buf = nil // let the backing array go
			}
			p.broadcast()
			return n, nil
		}
		if p.wClosed {
			return 0, io.EOF
		}
		if err := p.wait(done, deadline); err != nil {
			return 0, err
		}
	}
}

// write copies all of b, blocking while the pipe is full.
func (p *bytePipe) write(done <-chan struct{}, deadline time.Time, b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for {
		if p.wClosed {
			return n, io.ErrClosedPipe
		}
		if p.rClosed {
			return n, errEPIPE
		}
		if n == len(b) {
			return n, nil
		}
		if room := pipeCapacity - len(p.buf); room > 0 {
			k := min(room, len(b)-n)
			p.buf = append(p.buf, b[n:n+k]...)
			n += k
			p.broadcast()
			continue
		}
		if err := p.wait(done, deadline); err != nil {
			return n, err
		}
	}
}

func (p *bytePipe) closeRead() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.rClosed {
		p.rClosed = true
		p.buf = nil
		p.broadcast()
	}
}

func (p *bytePipe) closeWrite() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.wClosed {
		p.wClosed = true
		p.broadcast()
	}
}

// kick wakes waiters so they re-read state such as a changed deadline.
func (p *bytePipe) kick() {
	p.mu.Lock()
	p.broadcast()
	p.mu.Unlock()
}
