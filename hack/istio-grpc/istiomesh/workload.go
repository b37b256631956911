package istiomesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gauntlet-conformance/gauntlet/internal/meshecho"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/internal/spiffeca"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/xds"
)

// NonceMetadata carries a request's nonce (the echo contract, meshecho).
const NonceMetadata = meshecho.NonceMetadata

// workload is one proxyless gRPC pod: a grpc-go xDS server with its own
// bootstrap (node ID, the control plane's address, a file_watcher
// certificate provider over its SVID files), listening on its own
// loopback address at the gRPC container port, serving the gRPC health
// echo that records nonces.
type workload struct {
	ref    mp.WorkloadRef
	sa     string
	ports  []mp.Port
	ip     string
	addr   string // ip:container port, what the listener is named after
	node   string
	labels map[string]string // guarded by Mesh.mu

	srv     *xds.GRPCServer
	lis     net.Listener
	done    chan struct{}
	serving chan struct{}
	once    sync.Once

	mu      sync.Mutex
	seen    map[string]bool
	mode    connectivity.ServingMode
	modeErr error
}

// bootstrap is the grpc-go xDS bootstrap of a workload, as Istio's agent
// writes it for a proxyless pod (pkg/istio-agent/grpcxds): the xDS server,
// the node, the file_watcher certificate provider "default" and the
// server listener name template.
func bootstrap(xdsAddr, node string, f spiffeca.Files) ([]byte, error) {
	return json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      xdsAddr,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{"id": node},
		"certificate_providers": map[string]any{certProvider: map[string]any{
			"plugin_name": "file_watcher",
			"config": map[string]any{
				"certificate_file":    f.Cert,
				"private_key_file":    f.Key,
				"ca_certificate_file": f.Root,
				"refresh_interval":    "900s",
			},
		}},
		"server_listener_resource_name_template": listenerName("%s"),
	})
}

func (w *workload) record(nonce string) {
	if nonce == "" {
		return
	}
	w.mu.Lock()
	w.seen[nonce] = true
	w.mu.Unlock()
}

func (w *workload) saw(nonce string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[nonce]
}

// start serves the workload; the control plane must already hold its
// listener. It returns once grpc-go reports the listener serving.
func (w *workload) start(ctx context.Context, boot []byte) error {
	w.seen = map[string]bool{}
	w.serving = make(chan struct{})
	w.done = make(chan struct{})
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return err
	}
	srv, err := xds.NewGRPCServer(grpc.Creds(creds), xds.BootstrapContentsForTesting(boot),
		xds.ServingModeCallback(func(_ net.Addr, a xds.ServingModeChangeArgs) {
			w.mu.Lock()
			w.mode, w.modeErr = a.Mode, a.Err
			w.mu.Unlock()
			if a.Mode == connectivity.ServingModeServing {
				w.once.Do(func() { close(w.serving) })
			}
		}))
	if err != nil {
		return fmt.Errorf("xDS server of %s: %w", w.ref, err)
	}
	w.srv = srv
	healthpb.RegisterHealthServer(srv, meshecho.GRPCEcho(w.record))
	go func() { defer close(w.done); srv.Serve(w.lis) }()
	select {
	case <-w.serving:
		return nil
	case <-ctx.Done():
		w.mu.Lock()
		mode, merr := w.mode, w.modeErr
		w.mu.Unlock()
		return fmt.Errorf("xDS server of %s on %s not serving (mode %v, %v): %w", w.ref, w.addr, mode, merr, context.Cause(ctx))
	}
}

func (w *workload) stop() {
	if w.srv != nil {
		w.srv.Stop()
		<-w.done
	} else if w.lis != nil {
		w.lis.Close()
	}
}

// addrs hands out loopback addresses: each workload is a pod with its own
// IP, so every one listens on the real container port (7070) and RBAC's
// destinationPort sees the port policies name. The /16 is random per
// process so that concurrent runs rarely collide (a taken address is
// skipped).
type addrs struct {
	mu   sync.Mutex
	a, b byte
	next int
}

func newAddrs(seed int64) *addrs {
	return &addrs{a: byte(10 + seed%240), b: byte((seed / 240) % 256), next: 1}
}

// listen binds the next free loopback address on port.
func (as *addrs) listen(port int) (net.Listener, string, error) {
	as.mu.Lock()
	defer as.mu.Unlock()
	var lastErr error
	for tries := 0; tries < 64; tries++ {
		n := as.next
		as.next++
		if n >= 254*256 {
			return nil, "", errors.New("loopback addresses exhausted")
		}
		ip := fmt.Sprintf("127.%d.%d.%d", as.a, byte(int(as.b)+n/254), 1+n%254)
		l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err == nil {
			return l, ip, nil
		}
		lastErr = err
	}
	return nil, "", fmt.Errorf("no free loopback address for port %d: %w", port, lastErr)
}

// waitClosed is a tiny helper for Cleanup's deadline.
func waitClosed(ctx context.Context, f func()) error {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(10 * time.Second):
		return errors.New("stopping the workloads took more than 10s")
	}
}
