package cri

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

var quietKlog sync.Once

// Options configure a reference runtime.
type Options struct {
	// StreamAddr is where the stream server listens; default 127.0.0.1:0.
	StreamAddr string
	// StreamIdleTimeout and StreamCreationTimeout are passed to the library;
	// defaults 30 s and 5 s so the idle (C13) and pairing (C12, F6) checks run quickly.
	StreamIdleTimeout     time.Duration
	StreamCreationTimeout time.Duration
	// TokenTTL is the lifetime of fake-owned tokens (alias-mode faults only: the
	// library's own cache has a fixed 1 minute TTL).
	TokenTTL time.Duration
	// HeaderTimeout is the stream server's request-header read timeout
	// (default 30 s); the embedded target runs with a short one so G5
	// waits seconds.
	HeaderTimeout time.Duration
	// ServeV5 serves v5.channel.k8s.io through the API server's stream translator,
	// as kubelet >= 1.36 does.
	ServeV5 bool
	// Authorize is the KEP-6051 AuthorizeStream hook; nil serves as today.
	Authorize AuthorizeFunc
	// TLS serves streams over https with a certificate from a CA made at
	// start (Runtime.StreamCA). v5 is not served then: the translator would
	// need that CA too.
	TLS bool
	// Faults to inject.
	Faults []faults.Fault
	// Logf receives diagnostics; nil discards them.
	Logf func(format string, args ...any)
}

// DefaultOptions is the reference configuration the embedded run uses.
func DefaultOptions() Options {
	return Options{
		StreamAddr:            "127.0.0.1:0",
		StreamIdleTimeout:     30 * time.Second,
		StreamCreationTimeout: 5 * time.Second,
		TokenTTL:              time.Minute,
		ServeV5:               true,
		Authorize:             DefaultPolicy().Hook(),
	}
}

// Runtime is a running reference runtime: a CRI gRPC server plus stream server.
type Runtime struct {
	opts     Options
	faults   *faultSet
	state    *state
	images   *imageStore
	rs       *runtimeService
	streams  *streams
	grpc     *grpc.Server
	ln       net.Listener
	endpoint string
	sockDir  string

	leakMu sync.Mutex
	leaked [][]byte
	stopLk chan struct{}
}

// Start serves a reference runtime on endpoint ("unix:///path.sock" or
// "tcp://127.0.0.1:0"; empty = a socket in a fresh temp dir).
func Start(endpoint string, opts Options) (*Runtime, error) {
	def := DefaultOptions()
	if opts.StreamAddr == "" {
		opts.StreamAddr = def.StreamAddr
	}
	if opts.StreamIdleTimeout == 0 {
		opts.StreamIdleTimeout = def.StreamIdleTimeout
	}
	if opts.StreamCreationTimeout == 0 {
		opts.StreamCreationTimeout = def.StreamCreationTimeout
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = def.TokenTTL
	}
	if opts.HeaderTimeout == 0 {
		opts.HeaderTimeout = 30 * time.Second
	}
	if os.Getenv("GAUNTLET_FAKE_DEBUG") == "" {
		// The library reports every refused handshake through klog; those
		// refusals are what the suite provokes on purpose.
		quietKlog.Do(func() {
			fs := flag.NewFlagSet("klog", flag.ContinueOnError)
			klog.InitFlags(fs)
			fs.Set("logtostderr", "false")     //nolint:errcheck
			fs.Set("stderrthreshold", "FATAL") //nolint:errcheck
			klog.SetOutput(io.Discard)
		})
	}
	r := &Runtime{opts: opts, faults: newFaultSet(opts.Faults), state: newState(),
		images: &imageStore{images: map[string]*runtimeapi.Image{}}, stopLk: make(chan struct{})}
	r.rs = &runtimeService{r: r}

	network, addr, err := r.listenAddr(endpoint)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		r.cleanupSock()
		return nil, fmt.Errorf("listen on %s: %w", endpoint, err)
	}
	r.ln = ln
	if network == "unix" {
		r.endpoint = "unix://" + addr
	} else {
		r.endpoint = "tcp://" + ln.Addr().String()
	}
	st, err := newStreams(r)
	if err != nil {
		ln.Close()
		r.cleanupSock()
		return nil, err
	}
	r.streams = st
	r.startFront(st) // hostile-peer faults (hostile.go)
	r.grpc = grpc.NewServer(r.grpcOptions()...)
	runtimeapi.RegisterRuntimeServiceServer(r.grpc, r.rs)
	runtimeapi.RegisterImageServiceServer(r.grpc, &imageService{r: r})
	go r.grpc.Serve(ln) //nolint:errcheck // returns on Stop
	return r, nil
}

func (r *Runtime) listenAddr(endpoint string) (network, addr string, err error) {
	switch {
	case endpoint == "":
		dir, err := os.MkdirTemp("", "gauntlet-fake-*")
		if err != nil {
			return "", "", err
		}
		r.sockDir = dir
		return "unix", filepath.Join(dir, "cri.sock"), nil
	case strings.HasPrefix(endpoint, "unix://"):
		p := strings.TrimPrefix(endpoint, "unix://")
		if p == "" {
			return "", "", errors.New("unix:// endpoint needs a path")
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			// A stale socket from a killed daemon: refuse if something answers.
			if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
				c.Close()
				return "", "", fmt.Errorf("%s is in use by a running server", p)
			}
			os.Remove(p)
		}
		return "unix", p, nil
	case strings.HasPrefix(endpoint, "tcp://"):
		return "tcp", strings.TrimPrefix(endpoint, "tcp://"), nil
	}
	return "", "", fmt.Errorf("endpoint %q: want unix:///path or tcp://host:port", endpoint)
}

func (r *Runtime) cleanupSock() {
	if r.sockDir != "" {
		os.RemoveAll(r.sockDir)
	}
}

// Endpoint is the CRI endpoint to dial.
func (r *Runtime) Endpoint() string { return r.endpoint }

// StreamAddr is the stream server's listen address.
func (r *Runtime) StreamAddr() string { return r.streams.ln.Addr().String() }

// Close stops everything, kills every process and removes the socket.
func (r *Runtime) Close() error {
	r.grpc.Stop()
	r.streams.close()
	r.state.mu.Lock()
	cs := make([]*container, 0, len(r.state.containers))
	for _, c := range r.state.containers {
		cs = append(cs, c)
	}
	r.state.mu.Unlock()
	for _, c := range cs {
		c.stop(0)
	}
	close(r.stopLk)
	if strings.HasPrefix(r.endpoint, "unix://") {
		os.Remove(strings.TrimPrefix(r.endpoint, "unix://"))
	}
	r.cleanupSock()
	return nil
}

// Stats is what the fake exposes about its own resource use (C18).
type Stats struct {
	Goroutines  int
	LeakedBytes int
	Containers  int
	Sandboxes   int
}

// Stats reports current resource use. Goroutines are process-wide: the fake
// runs in the harness's process when embedded.
func (r *Runtime) Stats() Stats {
	r.leakMu.Lock()
	leaked := 0
	for _, b := range r.leaked {
		leaked += len(b)
	}
	r.leakMu.Unlock()
	r.state.mu.Lock()
	defer r.state.mu.Unlock()
	return Stats{Goroutines: runtime.NumGoroutine(), LeakedBytes: leaked,
		Containers: len(r.state.containers), Sandboxes: len(r.state.sandboxes)}
}

// leak is fault leak-on-attach: a goroutine and 64 KiB that live until Close.
func (r *Runtime) leak() {
	b := make([]byte, 64<<10)
	r.leakMu.Lock()
	r.leaked = append(r.leaked, b)
	r.leakMu.Unlock()
	go func() { <-r.stopLk }()
}

func (r *Runtime) logf(format string, args ...any) {
	if r.opts.Logf != nil {
		r.opts.Logf(format, args...)
	} else if os.Getenv("GAUNTLET_FAKE_DEBUG") != "" {
		log.Printf(format, args...)
	}
}

// Serve runs a reference runtime until ctx is done (the fake-runtime daemon).
func Serve(ctx context.Context, endpoint string, opts Options) error {
	r, err := Start(endpoint, opts)
	if err != nil {
		return err
	}
	defer r.Close()
	<-ctx.Done()
	return nil
}

var _ http.Handler = (*streams)(nil)

// Options returns the options the runtime runs with (defaults filled in).
func (r *Runtime) Options() Options { return r.opts }
