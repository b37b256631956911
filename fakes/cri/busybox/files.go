package busybox

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// chunkSize bounds every single write to a caller's writer, so a 64 MiB
// stream goes out in pieces and nothing buffers a whole stream.
const chunkSize = 32 << 10

// file is an open file description. ctx is the calling process's: every
// blocking operation gives up when it is cancelled (errInterrupted).
type file interface {
	read(ctx context.Context, b []byte) (int, error)
	write(ctx context.Context, b []byte) (int, error)
	close()
}

// ofile is a reference-counted open file, shared by dup'd and inherited
// descriptors; the file closes when the last descriptor goes, which is what
// makes a pipe reader see EOF only after every writer has exited.
type ofile struct {
	refs       atomic.Int32
	f          file
	canRead    bool
	canWrite   bool
	appendOnly bool
}

func newOfile(f file, r, w bool) *ofile {
	o := &ofile{f: f, canRead: r, canWrite: w}
	o.refs.Store(1)
	return o
}

func (o *ofile) ref() *ofile { o.refs.Add(1); return o }

func (o *ofile) unref() {
	if o.refs.Add(-1) == 0 {
		o.f.close()
	}
}

// fdTable is a process's descriptors 0-9.
type fdTable struct {
	mu sync.Mutex
	f  [10]*ofile
}

func (t *fdTable) get(fd int) *ofile {
	if fd < 0 || fd >= len(t.f) {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.f[fd]
}

// set installs o (whose reference the table takes over) at fd, closing the
// previous file there; o may be nil to close fd.
func (t *fdTable) set(fd int, o *ofile) {
	t.mu.Lock()
	old := t.f[fd]
	t.f[fd] = o
	t.mu.Unlock()
	if old != nil {
		old.unref()
	}
}

// clone is fork(2)'s copy of the table.
func (t *fdTable) clone() *fdTable {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := &fdTable{}
	for i, o := range t.f {
		if o != nil {
			c.f[i] = o.ref()
		}
	}
	return c
}

func (t *fdTable) closeAll() {
	t.mu.Lock()
	fs := t.f
	t.f = [10]*ofile{}
	t.mu.Unlock()
	for _, o := range fs {
		if o != nil {
			o.unref()
		}
	}
}

func (t *fdTable) read(ctx context.Context, fd int, b []byte) (int, error) {
	o := t.get(fd)
	if o == nil || !o.canRead {
		return 0, syscall.EBADF
	}
	return o.f.read(ctx, b)
}

func (t *fdTable) write(ctx context.Context, fd int, b []byte) (int, error) {
	o := t.get(fd)
	if o == nil || !o.canWrite {
		return 0, syscall.EBADF
	}
	return o.f.write(ctx, b)
}

// ttyOf returns the terminal behind fd, if it is one (isatty).
func (t *fdTable) ttyOf(fd int) *tty {
	if o := t.get(fd); o != nil {
		if e, ok := o.f.(*ttyEnd); ok {
			return e.t
		}
	}
	return nil
}

// strerror spells errors the way libc does.
func strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		if s != "" {
			return strings.ToUpper(s[:1]) + s[1:]
		}
	}
	return err.Error()
}

// nullFile is /dev/null, and a missing Stdin/Stdout.
type nullFile struct{}

func (nullFile) read(context.Context, []byte) (int, error)      { return 0, io.EOF }
func (nullFile) write(_ context.Context, b []byte) (int, error) { return len(b), nil }
func (nullFile) close()                                         {}

// zeroFile is /dev/zero.
type zeroFile struct{}

func (zeroFile) read(ctx context.Context, b []byte) (int, error) {
	if ctx.Err() != nil {
		return 0, errInterrupted
	}
	clear(b)
	return len(b), nil
}
func (zeroFile) write(_ context.Context, b []byte) (int, error) { return len(b), nil }
func (zeroFile) close()                                         {}

// randFile is /dev/urandom: a fixed-seed generator, so runs are reproducible.
type randFile struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func newRandFile() *randFile {
	return &randFile{r: rand.NewChaCha8([32]byte{'g', 'a', 'u', 'n', 't', 'l', 'e', 't'})}
}

func (f *randFile) read(ctx context.Context, b []byte) (int, error) {
	if ctx.Err() != nil {
		return 0, errInterrupted
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.r.Read(b)
}
func (f *randFile) write(_ context.Context, b []byte) (int, error) { return len(b), nil }
func (f *randFile) close()                                         {}

// pipeReadEnd and pipeWriteEnd are the two ends of `|` and `$(...)` pipes.
type pipeReadEnd struct{ p *bytePipe }
type pipeWriteEnd struct{ p *bytePipe }

func (e pipeReadEnd) read(ctx context.Context, b []byte) (int, error) {
	return e.p.read(ctx.Done(), time.Time{}, b)
}
func (pipeReadEnd) write(context.Context, []byte) (int, error) { return 0, syscall.EBADF }
func (e pipeReadEnd) close()                                   { e.p.closeRead() }

func (pipeWriteEnd) read(context.Context, []byte) (int, error) { return 0, syscall.EBADF }
func (e pipeWriteEnd) write(ctx context.Context, b []byte) (int, error) {
	return e.p.write(ctx.Done(), time.Time{}, b)
}
func (e pipeWriteEnd) close() { e.p.closeWrite() }

// connFile is an accepted connection used as a process's stdin/stdout
// (nc -e); it closes when the last process holding it exits.
type connFile struct{ c *conn }

func (f connFile) read(ctx context.Context, b []byte) (int, error) {
	n, err := f.c.rd.read(ctx.Done(), time.Time{}, b)
	if errors.Is(err, io.ErrClosedPipe) {
		err = io.EOF
	}
	return n, err
}
func (f connFile) write(ctx context.Context, b []byte) (int, error) {
	n, err := f.c.wr.write(ctx.Done(), time.Time{}, b)
	if errors.Is(err, io.ErrClosedPipe) {
		err = errEPIPE
	}
	return n, err
}
func (f connFile) close() { f.c.Close() }

// outSink is a caller's Stdout or Stderr. Writes are serialized (processes
// share it), chunked, and refused once the Run that owns it has returned.
type outSink struct {
	mu       *sync.Mutex
	w        io.Writer
	detached atomic.Bool
}

func (s *outSink) put(ctx context.Context, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k := min(len(b)-n, chunkSize)
		s.mu.Lock()
		if s.detached.Load() {
			s.mu.Unlock()
			return n, errEPIPE
		}
		if ctx != nil && ctx.Err() != nil {
			s.mu.Unlock()
			return n, errInterrupted
		}
		w, err := s.w.Write(b[n : n+k])
		s.mu.Unlock()
		if w > k || w < 0 {
			w = 0
		}
		n += w
		if err != nil || w < k {
			// Any failure of the stream looks like a closed pipe to the
			// process.
			return n, errEPIPE
		}
	}
	return n, nil
}

// detachWait bounds how long Run waits for a write already inside the
// caller's writer (one stuck on a client that stopped reading must not keep
// Run from returning).
const detachWait = time.Second

// detach refuses all further writes and waits (boundedly) for one in flight.
func (s *outSink) detach() {
	s.detached.Store(true)
	deadline := time.Now().Add(detachWait)
	for !s.mu.TryLock() {
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	s.mu.Unlock()
}

// outFile is an outSink as a non-tty file.
type outFile struct{ s *outSink }

func (outFile) read(context.Context, []byte) (int, error) { return 0, syscall.EBADF }
func (f outFile) write(ctx context.Context, b []byte) (int, error) {
	return f.s.put(ctx, b)
}
func (outFile) close() {}

// pumpReader is a caller's Stdin, shared by all processes of a Run. It reads
// the caller's stream only when a process wants data, and keeps what one
// process did not consume for the next (so `read x; cat` splits a stream the
// way a shared file descriptor does). At most one goroutine is ever blocked
// in the caller's Read.
type pumpReader struct {
	src     io.Reader
	mu      sync.Mutex
	buf     []byte
	err     error
	pending bool
	wake    chan struct{}
}

func newPumpReader(src io.Reader) *pumpReader {
	return &pumpReader{src: src, wake: make(chan struct{})}
}

func (r *pumpReader) fill() {
	tmp := make([]byte, chunkSize)
	n, err := r.src.Read(tmp)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, tmp[:n]...)
	if err != nil {
		r.err = err
	}
	r.pending = false
	close(r.wake)
	r.wake = make(chan struct{})
}

func (r *pumpReader) read(ctx context.Context, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	for {
		if len(r.buf) > 0 {
			n := copy(b, r.buf)
			r.buf = r.buf[n:]
			if len(r.buf) == 0 {
				r.buf = nil
			}
			r.mu.Unlock()
			return n, nil
		}
		if r.err != nil {
			r.mu.Unlock()
			return 0, io.EOF
		}
		if !r.pending {
			r.pending = true
			go r.fill()
		}
		ch := r.wake
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, errInterrupted
		}
		r.mu.Lock()
	}
}
func (r *pumpReader) write(context.Context, []byte) (int, error) { return 0, syscall.EBADF }
func (r *pumpReader) close()                                     {}

// memFS is the container's writable filesystem: regular files only, in a
// fixed set of directories (a busybox image's top-level layout).
type memFS struct {
	mu    sync.Mutex
	files map[string]*memFile
	dirs  map[string]bool
}

type memFile struct {
	data  []byte
	mtime time.Time
}

func newMemFS() *memFS {
	dirs := map[string]bool{}
	for _, d := range []string{"/", "/bin", "/dev", "/etc", "/home", "/proc", "/root", "/sys", "/tmp",
		"/usr", "/usr/bin", "/usr/sbin", "/sbin", "/var", "/var/tmp", "/var/www", "/run"} {
		dirs[d] = true
	}
	return &memFS{files: map[string]*memFile{}, dirs: dirs}
}

func cleanPath(p string) string { return path.Clean("/" + p) }

func (fs *memFS) stat(p string) (isDir, exists bool) {
	p = cleanPath(p)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.dirs[p] {
		return true, true
	}
	_, ok := fs.files[p]
	return false, ok
}

func (fs *memFS) contents(p string) ([]byte, error) {
	p = cleanPath(p)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.dirs[p] {
		return nil, syscall.EISDIR
	}
	f, ok := fs.files[p]
	if !ok {
		return nil, syscall.ENOENT
	}
	return f.data, nil
}

// create opens p for writing, truncating unless appending.
func (fs *memFS) create(p string, appendMode bool) (file, error) {
	p = cleanPath(p)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.dirs[p] {
		return nil, syscall.EISDIR
	}
	if !fs.dirs[path.Dir(p)] {
		return nil, errNonexistentDir
	}
	f, ok := fs.files[p]
	if !ok || !appendMode {
		f = &memFile{}
		fs.files[p] = f
	}
	f.mtime = time.Now()
	return &memWriter{fs: fs, f: f}, nil
}

var errNonexistentDir = errors.New("nonexistent directory")

type memWriter struct {
	fs *memFS
	f  *memFile
}

func (w *memWriter) read(context.Context, []byte) (int, error) { return 0, syscall.EBADF }
func (w *memWriter) write(ctx context.Context, b []byte) (int, error) {
	if ctx.Err() != nil {
		return 0, errInterrupted
	}
	w.fs.mu.Lock()
	defer w.fs.mu.Unlock()
	w.f.data = append(w.f.data, b...)
	w.f.mtime = time.Now()
	return len(b), nil
}
func (w *memWriter) close() {}

// memReader reads a snapshot of a file's contents.
type memReader struct {
	mu   sync.Mutex
	data []byte
}

func (r *memReader) read(ctx context.Context, b []byte) (int, error) {
	if ctx.Err() != nil {
		return 0, errInterrupted
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.data)
	r.data = r.data[n:]
	return n, nil
}
func (r *memReader) write(context.Context, []byte) (int, error) { return 0, syscall.EBADF }
func (r *memReader) close()                                     {}

// openFile opens path the way open(2) would inside the container: device
// nodes, /dev/std*, /dev/fd/N, /dev/tty, or the in-memory filesystem. t is
// the opener's descriptor table (for /dev/stdin and friends).
func (m *Machine) openFile(t *fdTable, p string, write, appendMode bool) (*ofile, error) {
	switch cleanPath(p) {
	case "/dev/null":
		return newOfile(nullFile{}, true, true), nil
	case "/dev/zero":
		return newOfile(zeroFile{}, true, true), nil
	case "/dev/urandom", "/dev/random":
		return newOfile(newRandFile(), true, true), nil
	case "/dev/stdin":
		return dupOf(t, 0)
	case "/dev/stdout":
		return dupOf(t, 1)
	case "/dev/stderr":
		return dupOf(t, 2)
	case "/dev/tty":
		for fd := 0; fd < 3; fd++ {
			if tt := t.ttyOf(fd); tt != nil {
				return dupOf(t, fd)
			}
		}
		return nil, syscall.ENXIO
	}
	if rest, ok := strings.CutPrefix(cleanPath(p), "/dev/fd/"); ok {
		if fd, err := strconv.Atoi(rest); err == nil {
			return dupOf(t, fd)
		}
	}
	if strings.HasPrefix(cleanPath(p), "/dev/") || strings.HasPrefix(cleanPath(p), "/proc/") || strings.HasPrefix(cleanPath(p), "/sys/") {
		if write {
			return nil, syscall.EACCES
		}
		return nil, syscall.ENOENT
	}
	if write {
		f, err := m.fs.create(p, appendMode)
		if err != nil {
			return nil, err
		}
		o := newOfile(f, false, true)
		o.appendOnly = appendMode
		return o, nil
	}
	data, err := m.fs.contents(p)
	if err != nil {
		return nil, err
	}
	return newOfile(&memReader{data: data}, true, false), nil
}

func dupOf(t *fdTable, fd int) (*ofile, error) {
	o := t.get(fd)
	if o == nil {
		return nil, syscall.ENOENT
	}
	return o.ref(), nil
}
