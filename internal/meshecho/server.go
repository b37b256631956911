// Package meshecho is what runs inside the pods of the Kubernetes mesh
// driver (internal/meshkube): the echo workload and the client that makes
// one request to it, both as subcommands of the gauntlet binary
// (`gauntlet mesh-echo serve|request|open|saw|probes|idle`), so that one
// image serves both sides.
//
// The echo contract is the reference mesh's (fakes/mesh): HTTP on 8080
// answers "echo <ns/name> <nonce>" and records the X-Gauntlet-Nonce
// header, TCP on 9090 echoes lines and records the first, gRPC health on
// 7070 records the x-gauntlet-nonce metadata. Records are files in a
// directory of the server's container, so the driver asks "did the server
// see nonce N" by exec'ing `mesh-echo saw N` in that container: no network
// path, hence nothing a mesh could intercept, deny or fake.
package meshecho

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// Wire names of the nonce (the same as fakes/mesh).
const (
	NonceHeader   = "X-Gauntlet-Nonce"
	NonceMetadata = "x-gauntlet-nonce"
)

// DefaultDir is where the server records nonces (an emptyDir in the pod).
const DefaultDir = "/var/run/gauntlet"

// maxNonce bounds a recorded nonce (it becomes a file name).
const maxNonce = 100

// Server is an echo workload.
type Server struct {
	// Name is echoed back ("ns/name").
	Name string
	// Dir holds the records (created if missing).
	Dir string
	// Listen addresses (":8080", ...).
	HTTPAddr, TCPAddr, GRPCAddr string
	// Ready, when set, receives the bound listener addresses (tests).
	Ready func(http, tcp, grpc net.Addr)

	mu     sync.Mutex
	probes int
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("record dir: %w", err)
	}
	var ls []net.Listener
	for _, a := range []string{s.HTTPAddr, s.TCPAddr, s.GRPCAddr} {
		l, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return err
		}
		ls = append(ls, l)
	}
	if s.Ready != nil {
		s.Ready(ls[0].Addr(), ls[1].Addr(), ls[2].Addr())
	}
	// Only the kubelet asks /healthz (its readiness probe; the driver never
	// does): every hit counts, whatever a mesh's probe rewriting (Istio's
	// agent) does to its headers.
	hs := &http.Server{Handler: HTTPEcho(s.Name, s.record, s.countProbe), ReadHeaderTimeout: 10 * time.Second}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, GRPCEcho(s.record))

	var wg sync.WaitGroup
	conns := &connSet{m: map[net.Conn]bool{}}
	wg.Add(3)
	go func() { defer wg.Done(); hs.Serve(ls[0]) }()
	go func() { defer wg.Done(); s.serveTCP(ls[1], conns) }()
	go func() { defer wg.Done(); gs.Serve(ls[2]) }()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	hs.Shutdown(sctx)
	cancel()
	hs.Close()
	gs.Stop()
	ls[1].Close()
	conns.closeAll()
	wg.Wait()
	return nil
}

// record notes a nonce; a nonce that cannot be a file name is ignored
// (the driver never sends one).
func (s *Server) record(nonce string) {
	if nonce == "" || len(nonce) > maxNonce {
		return
	}
	f, err := os.OpenFile(nonceFile(s.Dir, nonce), os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		f.Close()
	}
}

func (s *Server) countProbe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probes++
	tmp := filepath.Join(s.Dir, ".probes.tmp")
	if os.WriteFile(tmp, []byte(strconv.Itoa(s.probes)), 0o644) == nil {
		os.Rename(tmp, filepath.Join(s.Dir, "probes"))
	}
}

func nonceFile(dir, nonce string) string {
	return filepath.Join(dir, "n-"+hex.EncodeToString([]byte(nonce)))
}

// Saw reports whether the server recording into dir saw nonce.
func Saw(dir, nonce string) (bool, error) {
	if nonce == "" || len(nonce) > maxNonce {
		return false, fmt.Errorf("bad nonce %q", nonce)
	}
	if _, err := os.Stat(dir); err != nil {
		return false, fmt.Errorf("no echo server records here: %w", err)
	}
	_, err := os.Stat(nonceFile(dir, nonce))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, err
}

// Probes is how many kubelet probes (GET /healthz) reached the server
// recording into dir.
func Probes(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "probes"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// serveTCP echoes lines; the first line of a connection is its nonce.
func (s *Server) serveTCP(l net.Listener, conns *connSet) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		conns.add(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conns.remove(c)
			r := bufio.NewReader(c)
			first := true
			for {
				// An idle connection is kept for a while: MX26 holds one
				// open across a policy change (several convergence bounds).
				c.SetDeadline(time.Now().Add(10 * time.Minute))
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimSpace(line)
				if first {
					s.record(line)
					first = false
				}
				if _, err := fmt.Fprintf(c, "echo %s\n", line); err != nil {
					return
				}
			}
		}()
	}
}

type connSet struct {
	mu sync.Mutex
	m  map[net.Conn]bool
}

func (s *connSet) add(c net.Conn) {
	s.mu.Lock()
	s.m[c] = true
	s.mu.Unlock()
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
	c.Close()
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.m {
		c.Close()
	}
}

// HTTPEcho is the echo contract's HTTP side, shared by every mesh target's
// workloads: GET /healthz records the nonce, calls probe (may be nil) and
// answers "ok"; any other path records the nonce and answers
// "echo <name> <nonce>".
func HTTPEcho(name string, record func(nonce string), probe func()) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		record(r.Header.Get(NonceHeader))
		if probe != nil {
			probe()
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n := r.Header.Get(NonceHeader)
		record(n)
		fmt.Fprintf(w, "echo %s %s\n", name, n)
	})
	return mux
}

// GRPCEcho is the echo contract's gRPC side: the standard health service,
// recording the x-gauntlet-nonce metadata of every Check that reaches it.
func GRPCEcho(record func(nonce string)) healthpb.HealthServer {
	return &health{record: record}
}

type health struct {
	healthpb.UnimplementedHealthServer
	record func(string)
}

func (h *health) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(NonceMetadata); len(v) > 0 {
			h.record(v[0])
		}
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}
