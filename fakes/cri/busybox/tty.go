package busybox

import (
	"bytes"
	"context"
	"io"
	"sync"
)

// tty emulates the slave side of a pty: a canonical-mode line discipline for
// input and onlcr for output. It is deliberately small: echo, \r->\n (icrnl),
// erase (DEL, ^H), kill-line (^U), ^D as end of file, and ^C / ^\ raising
// SIGINT / SIGQUIT in the foreground processes (isig). Echoed control
// characters are shown as ^X, like ECHOCTL.
type tty struct {
	term Terminal
	src  io.Reader // caller's Stdin, nil if none
	out  *outSink  // where echo goes (the terminal screen)
	sess *session

	mu                               sync.Mutex
	echo, icanon, isig, icrnl, onlcr bool
	line, ready                      []byte
	eofs                             int  // pending ^D end-of-file reads
	hup                              bool // input side gone
	wake                             chan struct{}
	stopped                          bool
}

func newTTY(term Terminal, src io.Reader, out *outSink, sess *session) *tty {
	return &tty{term: term, src: src, out: out, sess: sess, wake: make(chan struct{}),
		echo: true, icanon: true, isig: true, icrnl: true, onlcr: true}
}

func (t *tty) broadcast() {
	close(t.wake)
	t.wake = make(chan struct{})
}

// pump feeds the caller's stdin through the line discipline. A real pty
// processes (and echoes) input whether or not anyone reads, so this runs for
// the whole Run.
func (t *tty) pump() {
	buf := make([]byte, 4096)
	for {
		n, err := t.src.Read(buf)
		if n > 0 {
			t.input(buf[:n])
		}
		t.mu.Lock()
		stopped := t.stopped
		if err != nil {
			t.hup = true
			if len(t.line) > 0 {
				t.ready = append(t.ready, t.line...)
				t.line = nil
			}
			t.broadcast()
		}
		t.mu.Unlock()
		if err != nil || stopped {
			return
		}
	}
}

func ctlEcho(c byte) []byte {
	if c < 32 && c != '\n' && c != '\t' {
		return []byte{'^', c + '@'}
	}
	if c == 0x7f {
		return []byte{'^', '?'}
	}
	return []byte{c}
}

func (t *tty) input(b []byte) {
	var echo []byte
	var sigs []int
	t.mu.Lock()
	for _, c := range b {
		if t.icrnl && c == '\r' {
			c = '\n'
		}
		if t.isig && (c == 0x03 || c == 0x1c) {
			sig := sigINT
			if c == 0x1c {
				sig = sigQUIT
			}
			sigs = append(sigs, sig)
			t.line, t.ready = nil, nil
			if t.echo {
				echo = append(echo, ctlEcho(c)...)
			}
			continue
		}
		if !t.icanon {
			t.ready = append(t.ready, c)
			if t.echo {
				echo = append(echo, c)
			}
			continue
		}
		switch c {
		case 0x7f, 0x08: // erase
			if len(t.line) > 0 {
				t.line = t.line[:len(t.line)-1]
				if t.echo {
					echo = append(echo, '\b', ' ', '\b')
				}
			}
		case 0x15: // ^U kill line
			if t.echo {
				for range t.line {
					echo = append(echo, '\b', ' ', '\b')
				}
			}
			t.line = nil
		case 0x04: // ^D: flush the line; on an empty line, end of file
			if len(t.line) == 0 {
				t.eofs++
			} else {
				t.ready = append(t.ready, t.line...)
				t.line = nil
			}
		case '\n':
			t.ready = append(t.ready, t.line...)
			t.ready = append(t.ready, '\n')
			t.line = nil
			if t.echo {
				echo = append(echo, '\n')
			}
		default:
			t.line = append(t.line, c)
			if t.echo {
				echo = append(echo, ctlEcho(c)...)
			}
		}
	}
	t.broadcast()
	onlcr := t.onlcr
	t.mu.Unlock()
	if len(echo) > 0 {
		if onlcr {
			echo = bytes.ReplaceAll(echo, []byte{'\n'}, []byte{'\r', '\n'})
		}
		t.out.put(nil, echo) //nolint:errcheck // echo to a gone screen is lost, as on a hung-up pty
	}
	for _, sig := range sigs {
		if fg := t.sess.fg; fg != nil {
			fg.m.signalGroup(fg, sig, true, true)
		}
	}
}

func (t *tty) read(ctx context.Context, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	t.mu.Lock()
	for {
		if len(t.ready) > 0 {
			data := t.ready
			if t.icanon {
				if i := bytes.IndexByte(data, '\n'); i >= 0 {
					data = data[:i+1] // a canonical read returns at most one line
				}
			}
			n := copy(b, data)
			t.ready = t.ready[n:]
			t.mu.Unlock()
			return n, nil
		}
		if t.eofs > 0 {
			t.eofs--
			t.mu.Unlock()
			return 0, io.EOF
		}
		if t.hup {
			t.mu.Unlock()
			return 0, io.EOF
		}
		ch := t.wake
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, errInterrupted
		}
		t.mu.Lock()
	}
}

func (t *tty) write(ctx context.Context, s *outSink, b []byte) (int, error) {
	t.mu.Lock()
	onlcr := t.onlcr
	t.mu.Unlock()
	if !onlcr || bytes.IndexByte(b, '\n') < 0 {
		return s.put(ctx, b)
	}
	// Translate per input chunk so a big write never doubles in memory.
	n := 0
	for n < len(b) {
		k := min(len(b)-n, chunkSize/2)
		out := bytes.ReplaceAll(b[n:n+k], []byte{'\n'}, []byte{'\r', '\n'})
		if _, err := s.put(ctx, out); err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// ttyEnd is a descriptor open on the terminal; stderr may write to its own
// sink (the caller normally passes the same writer for both).
type ttyEnd struct {
	t *tty
	s *outSink
}

func (e *ttyEnd) read(ctx context.Context, b []byte) (int, error) { return e.t.read(ctx, b) }
func (e *ttyEnd) write(ctx context.Context, b []byte) (int, error) {
	return e.t.write(ctx, e.s, b)
}
func (e *ttyEnd) close() {}

// size is the window size (TIOCGWINSZ): width, height.
func (t *tty) size() (uint16, uint16) {
	if t.term == nil {
		return 0, 0
	}
	return t.term.Size()
}

// session is the I/O of one Run: the caller's streams wrapped as files.
type session struct {
	stdio Stdio
	out   *outSink
	err   *outSink
	in    file
	tty   *tty
	fg    *proc
}

func newSession(stdio Stdio) *session {
	s := &session{stdio: stdio}
	outMu := &sync.Mutex{}
	errMu := outMu
	if stdio.TTY == nil {
		errMu = &sync.Mutex{} // separate streams must not block each other
	}
	if stdio.Stdout != nil {
		s.out = &outSink{mu: outMu, w: stdio.Stdout}
	}
	if stdio.Stderr != nil {
		s.err = &outSink{mu: errMu, w: stdio.Stderr}
	}
	if stdio.TTY != nil {
		screen := s.out
		if screen == nil {
			screen = &outSink{mu: outMu, w: io.Discard}
			s.out = screen
		}
		if s.err == nil {
			s.err = &outSink{mu: outMu, w: io.Discard}
		}
		s.tty = newTTY(stdio.TTY, stdio.Stdin, screen, s)
		return s
	}
	if stdio.Stdin != nil {
		s.in = newPumpReader(stdio.Stdin)
	} else {
		s.in = nullFile{}
	}
	return s
}

// files is the new process's descriptor table: 0, 1, 2.
func (s *session) files() *fdTable {
	t := &fdTable{}
	if s.tty != nil {
		term := newOfile(&ttyEnd{t: s.tty, s: s.out}, true, true)
		t.f[0] = term
		t.f[1] = term.ref()
		t.f[2] = newOfile(&ttyEnd{t: s.tty, s: s.err}, true, true)
		return t
	}
	t.f[0] = newOfile(s.in, true, false)
	if s.out != nil {
		t.f[1] = newOfile(outFile{s.out}, false, true)
	} else {
		t.f[1] = newOfile(nullFile{}, false, true)
	}
	if s.err != nil {
		t.f[2] = newOfile(outFile{s.err}, false, true)
	} else {
		t.f[2] = newOfile(nullFile{}, false, true)
	}
	return t
}

func (s *session) start() {
	if s.tty != nil && s.tty.src != nil {
		go s.tty.pump()
	}
}

// close detaches the caller's streams: nothing is written to them after Run
// returns, and terminal readers see a hang-up.
func (s *session) close() {
	if s.out != nil {
		s.out.detach()
	}
	if s.err != nil {
		s.err.detach()
	}
	if t := s.tty; t != nil {
		t.mu.Lock()
		t.stopped = true
		t.hup = true
		t.broadcast()
		t.mu.Unlock()
	}
}
