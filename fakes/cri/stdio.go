package cri

import (
	"io"
	"sync"

	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// broadcaster fans a container's output out to whoever is attached right now.
// Output with nobody attached is dropped (a real runtime writes it to the log).
type broadcaster struct {
	mu     sync.Mutex
	subs   map[int]io.Writer
	next   int
	closed bool
	done   chan struct{}
}

func newBroadcaster() *broadcaster {
	return &broadcaster{subs: map[int]io.Writer{}, done: make(chan struct{})}
}

func (b *broadcaster) Write(p []byte) (int, error) {
	b.mu.Lock()
	subs := make([]struct {
		id int
		w  io.Writer
	}, 0, len(b.subs))
	for id, w := range b.subs {
		subs = append(subs, struct {
			id int
			w  io.Writer
		}{id, w})
	}
	b.mu.Unlock()
	for _, s := range subs {
		if _, err := s.w.Write(p); err != nil {
			b.unsubscribe(s.id) // a detached client must not stall the container
		}
	}
	return len(p), nil
}

// subscribe registers w; the returned func unregisters it.
func (b *broadcaster) subscribe(w io.Writer) (id int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	b.subs[b.next] = w
	return b.next
}

func (b *broadcaster) unsubscribe(id int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, id)
}

func (b *broadcaster) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
}

// stdinPipe is a container's stdin: attached clients write into it, the main
// process reads from it. Close delivers EOF (StdinOnce).
type stdinPipe struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func newStdinPipe() *stdinPipe {
	r, w := io.Pipe()
	return &stdinPipe{r: r, w: w}
}

func (p *stdinPipe) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *stdinPipe) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *stdinPipe) Close() error                { return p.w.Close() }

// terminal holds the current tty size, fed from the stream's resize channel.
type terminal struct {
	mu   sync.Mutex
	w, h uint16
	set  chan struct{} // closed at the first applied resize
	once sync.Once
}

func newTerminal() *terminal { return &terminal{set: make(chan struct{})} }

func (t *terminal) Size() (uint16, uint16) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.w, t.h
}

func (t *terminal) resize(w, h uint16) {
	t.mu.Lock()
	t.w, t.h = w, h
	t.mu.Unlock()
	t.once.Do(func() { close(t.set) })
}

// follow applies resize events until the channel closes. A 0x0 size is
// ignored, as kubelet's runtimes do, unless applyZero (a fault).
func (t *terminal) follow(ch <-chan remotecommandserver.TerminalSize, ignore, applyZero bool) {
	for sz := range ch {
		if ignore {
			continue
		}
		if (sz.Width == 0 || sz.Height == 0) && !applyZero {
			continue
		}
		t.resize(sz.Width, sz.Height)
	}
}
