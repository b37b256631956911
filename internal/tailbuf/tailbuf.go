// Package tailbuf keeps the last bytes written to it: the stderr of a child
// process (a consumer, a mesh driver) whose last words explain its death,
// without holding a chatty child's whole output.
package tailbuf

import "sync"

// Buffer is an io.Writer that keeps the last Max bytes; safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

// New returns a Buffer keeping the last max bytes.
func New(max int) *Buffer { return &Buffer{max: max} }

// Write keeps p's tail; it never fails.
func (t *Buffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		// Copy so the dropped head is freed, not pinned by a reslice.
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// String is what is kept.
func (t *Buffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
