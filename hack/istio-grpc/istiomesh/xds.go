package istiomesh

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"istio.io/istio/pkg/istio-agent/grpcxds"
)

// controlPlane is the mesh's istiod stand-in: a go-control-plane ADS server
// on loopback holding one snapshot per workload (one xDS node per workload,
// as each proxyless pod has its own bootstrap and node ID).
type controlPlane struct {
	cache   cachev3.SnapshotCache
	grpc    *grpc.Server
	lis     net.Listener
	done    chan struct{}
	version int64

	mu    sync.Mutex
	acked map[string]string // node ID -> last ACKed LDS version
	nacks map[string]string // node ID -> error detail of a NACK since the last push
	last  map[string]*listener.Listener
	wake  chan struct{}
}

func startControlPlane() (*controlPlane, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("xDS server: %w", err)
	}
	cp := &controlPlane{lis: lis, done: make(chan struct{}), acked: map[string]string{}, nacks: map[string]string{},
		last: map[string]*listener.Listener{}, wake: make(chan struct{})}
	cp.cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	cb := serverv3.CallbackFuncs{StreamRequestFunc: func(_ int64, req *discoverygrpc.DiscoveryRequest) error {
		// A request that carries a version and no error detail ACKs it;
		// one with an error detail NACKs the last response.
		if req.GetTypeUrl() != resource.ListenerType || (req.GetErrorDetail() == nil && req.GetVersionInfo() == "") {
			return nil
		}
		cp.mu.Lock()
		if d := req.GetErrorDetail(); d != nil {
			cp.nacks[req.GetNode().GetId()] = d.GetMessage()
		} else {
			cp.acked[req.GetNode().GetId()] = req.GetVersionInfo()
		}
		close(cp.wake)
		cp.wake = make(chan struct{})
		cp.mu.Unlock()
		return nil
	}}
	srv := serverv3.NewServer(context.Background(), cp.cache, cb)
	cp.grpc = grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(cp.grpc, srv)
	go func() { defer close(cp.done); cp.grpc.Serve(lis) }()
	return cp, nil
}

func (cp *controlPlane) addr() string { return cp.lis.Addr().String() }

func (cp *controlPlane) stop() {
	cp.grpc.Stop()
	<-cp.done
}

// push sets node's listener if it changed and returns the snapshot
// version to wait for ("" when nothing changed).
func (cp *controlPlane) push(ctx context.Context, node string, l *listener.Listener) (string, error) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if prev, ok := cp.last[node]; ok && proto.Equal(prev, l) {
		return "", nil
	}
	cp.version++
	v := strconv.FormatInt(cp.version, 10)
	snap, err := cachev3.NewSnapshot(v, map[resource.Type][]types.Resource{resource.ListenerType: {l}})
	if err != nil {
		return "", err
	}
	if err := cp.cache.SetSnapshot(ctx, node, snap); err != nil {
		return "", err
	}
	cp.last[node] = l
	delete(cp.nacks, node)
	return v, nil
}

// nackError is a workload rejecting its listener.
type nackError struct{ node, detail string }

func (e *nackError) Error() string {
	return fmt.Sprintf("grpc-go (node %s) rejected its listener: %s", e.node, e.detail)
}

// waitACK waits until every node in want ACKed at least its version.
func (cp *controlPlane) waitACK(ctx context.Context, want map[string]string) error {
	for {
		cp.mu.Lock()
		var missing []string
		for node, v := range want {
			if d, ok := cp.nacks[node]; ok {
				cp.mu.Unlock()
				return &nackError{node: node, detail: d}
			}
			got, _ := strconv.ParseInt(cp.acked[node], 10, 64)
			w, _ := strconv.ParseInt(v, 10, 64)
			if got < w {
				missing = append(missing, node)
			}
		}
		wake := cp.wake
		cp.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			sort.Strings(missing)
			return fmt.Errorf("%d workloads did not ACK their listener (first: %s): %w", len(missing), missing[0], context.Cause(ctx))
		case <-wake:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// listenerName is the resource a grpc-go xDS server listening on addr asks
// for, given Istio's server_listener_resource_name_template.
func listenerName(addr string) string { return grpcxds.ServerListenerNamePrefix + addr }

// certProvider is the file_watcher instance in every bootstrap; Istio's
// grpcgen names it "default" (certificate "default", roots "ROOTCA").
const certProvider = "default"
