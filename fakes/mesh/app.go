package mesh

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gauntlet-conformance/gauntlet/internal/meshecho"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The nonce's wire names: the echo contract is meshecho's.
const (
	NonceHeader = meshecho.NonceHeader
	nonceMD     = meshecho.NonceMetadata
)

// app is a workload's application: real echo servers on loopback (HTTP,
// TCP line echo, gRPC health) that record every nonce that reaches them, so
// the mesh can say whether a denied request ever got through.
type app struct {
	name string // ns/name, in echoes

	mu   sync.Mutex
	seen map[string]bool

	http  *http.Server
	httpL net.Listener
	tcpL  net.Listener
	grpc  *grpc.Server
	grpcL net.Listener
	wg    sync.WaitGroup
	conns map[net.Conn]bool // open TCP echo connections, closed on close
}

func (a *app) record(nonce string) {
	if nonce == "" {
		return
	}
	a.mu.Lock()
	a.seen[nonce] = true
	a.mu.Unlock()
}

func (a *app) saw(nonce string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[nonce]
}

func startApp(name string) (*app, error) {
	a := &app{name: name, seen: map[string]bool{}}
	var err error
	listen := func() net.Listener {
		if err != nil {
			return nil
		}
		var l net.Listener
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return l
	}
	a.httpL, a.tcpL, a.grpcL = listen(), listen(), listen()
	if err != nil {
		a.close()
		return nil, err
	}
	a.http = &http.Server{Handler: meshecho.HTTPEcho(a.name, a.record, nil), ReadHeaderTimeout: 5 * time.Second}
	a.grpc = grpc.NewServer()
	healthpb.RegisterHealthServer(a.grpc, meshecho.GRPCEcho(a.record))
	a.wg.Add(3)
	go func() { defer a.wg.Done(); a.http.Serve(a.httpL) }()
	go func() { defer a.wg.Done(); a.grpc.Serve(a.grpcL) }()
	go func() { defer a.wg.Done(); a.serveTCP() }()
	return a, nil
}

// serveTCP echoes lines: the first line is the nonce.
func (a *app) serveTCP() {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := a.tcpL.Accept()
		if err != nil {
			return
		}
		a.mu.Lock()
		if a.conns == nil {
			a.conns = map[net.Conn]bool{}
		}
		a.conns[c] = true
		a.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				a.mu.Lock()
				delete(a.conns, c)
				a.mu.Unlock()
				c.Close()
			}()
			r := bufio.NewReader(c)
			first := true
			for {
				c.SetDeadline(time.Now().Add(time.Minute))
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimSpace(line)
				if first {
					a.record(line)
					first = false
				}
				if _, err := fmt.Fprintf(c, "echo %s\n", line); err != nil {
					return
				}
			}
		}()
	}
}

func (a *app) close() {
	if a.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		a.http.Shutdown(ctx)
		cancel()
		a.http.Close()
	}
	if a.grpc != nil {
		a.grpc.Stop()
	}
	for _, l := range []net.Listener{a.httpL, a.tcpL, a.grpcL} {
		if l != nil {
			l.Close()
		}
	}
	a.mu.Lock()
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}
