// Package cricli is Gauntlet's CRI client: dialing a runtime endpoint with a
// deadline and clear errors, and creating sandboxes/containers that are always
// cleaned up (they carry a run label so an interrupted run can be swept).
package cricli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunLabel marks everything Gauntlet creates; its value is the run ID.
const RunLabel = "gauntlet.io/run"

// ErrEndpoint wraps every failure to reach the runtime (exit code 2 material).
var ErrEndpoint = errors.New("runtime endpoint")

// Client is a connected CRI client.
type Client struct {
	Endpoint string
	Runtime  runtimeapi.RuntimeServiceClient
	Image    runtimeapi.ImageServiceClient
	conn     *grpc.ClientConn
	Version  *runtimeapi.VersionResponse
}

// ParseEndpoint splits unix:///path, /path and tcp://host:port.
func ParseEndpoint(endpoint string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(endpoint, "unix://"):
		addr = strings.TrimPrefix(endpoint, "unix://")
		if addr == "" {
			return "", "", fmt.Errorf("%w %q: unix:// needs a socket path, e.g. unix:///run/containerd/containerd.sock", ErrEndpoint, endpoint)
		}
		return "unix", addr, nil
	case strings.HasPrefix(endpoint, "/"):
		return "unix", endpoint, nil
	case strings.HasPrefix(endpoint, "tcp://"):
		return "tcp", strings.TrimPrefix(endpoint, "tcp://"), nil
	}
	return "", "", fmt.Errorf("%w %q: want unix:///path/to.sock or tcp://host:port", ErrEndpoint, endpoint)
}

// Dial connects and checks the runtime answers Version within timeout.
func Dial(ctx context.Context, endpoint string, timeout time.Duration) (*Client, error) {
	network, addr, err := ParseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		fi, err := os.Stat(addr)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w %s: no socket at %s (is the runtime running? pass --runtime-endpoint)", ErrEndpoint, endpoint, addr)
		case err != nil:
			return nil, fmt.Errorf("%w %s: %v", ErrEndpoint, endpoint, err)
		case fi.Mode()&os.ModeSocket == 0:
			return nil, fmt.Errorf("%w %s: %s is not a socket", ErrEndpoint, endpoint, addr)
		}
	}
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	conn, err := grpc.NewClient("passthrough:///cri",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrEndpoint, endpoint, err)
	}
	c := &Client{Endpoint: endpoint, conn: conn,
		Runtime: runtimeapi.NewRuntimeServiceClient(conn), Image: runtimeapi.NewImageServiceClient(conn)}
	vctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := c.Runtime.Version(vctx, &runtimeapi.VersionRequest{Version: "v1"})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w %s: Version did not answer within %s: %v", ErrEndpoint, endpoint, timeout, err)
	}
	c.Version = v
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// EnsureImage pulls ref unless the runtime already has it (local test images
// imported into a runtime have no registry to pull from).
func (c *Client) EnsureImage(ctx context.Context, ref string) error {
	st, err := c.Image.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err == nil && st.GetImage() != nil {
		return nil
	}
	if _, err := c.Image.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		return fmt.Errorf("image %s is not present and pulling it failed: %w (import it or set --test-images-file)", ref, err)
	}
	return nil
}

// Tracker creates sandboxes and containers and remembers them for cleanup.
type Tracker struct {
	c     *Client
	RunID string

	mu         sync.Mutex
	sandboxes  []string
	containers []string
}

// NewTracker returns a tracker labelling everything with runID.
func (c *Client) NewTracker(runID string) *Tracker { return &Tracker{c: c, RunID: runID} }

// SandboxOptions describe a pod sandbox.
type SandboxOptions struct {
	Name        string
	HostNetwork bool
}

// RunSandbox creates a pod sandbox.
func (t *Tracker) RunSandbox(ctx context.Context, o SandboxOptions) (string, *runtimeapi.PodSandboxConfig, error) {
	uid := fmt.Sprintf("%s-%s", t.RunID, o.Name)
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: o.Name, Uid: uid, Namespace: "gauntlet", Attempt: 0},
		Labels:       map[string]string{RunLabel: t.RunID},
		LogDirectory: "",
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    "",
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{}},
		},
	}
	if o.HostNetwork {
		cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	} else {
		cfg.Hostname = o.Name // runc refuses a hostname without a private UTS namespace
	}
	resp, err := t.c.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return "", nil, fmt.Errorf("RunPodSandbox %s: %w", o.Name, err)
	}
	t.mu.Lock()
	t.sandboxes = append(t.sandboxes, resp.PodSandboxId)
	t.mu.Unlock()
	return resp.PodSandboxId, cfg, nil
}

// ContainerOptions describe a container.
type ContainerOptions struct {
	Name      string
	Image     string
	Command   []string
	Stdin     bool
	StdinOnce bool
	TTY       bool
}

// StartContainer creates and starts a container in a sandbox.
func (t *Tracker) StartContainer(ctx context.Context, sandboxID string, sbCfg *runtimeapi.PodSandboxConfig, o ContainerOptions) (string, error) {
	cfg := &runtimeapi.ContainerConfig{
		Metadata:  &runtimeapi.ContainerMetadata{Name: o.Name},
		Image:     &runtimeapi.ImageSpec{Image: o.Image, UserSpecifiedImage: o.Image}, // CRI-O >= 1.29 refuses a container without the name the user gave (signature policy)
		Command:   o.Command,
		Labels:    map[string]string{RunLabel: t.RunID},
		Stdin:     o.Stdin,
		StdinOnce: o.StdinOnce,
		Tty:       o.TTY,
		Linux:     &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: sbCfg.GetLinux().GetSecurityContext().GetNamespaceOptions()}},
	}
	resp, err := t.c.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: cfg, SandboxConfig: sbCfg})
	if err != nil {
		return "", fmt.Errorf("CreateContainer %s: %w", o.Name, err)
	}
	t.mu.Lock()
	t.containers = append(t.containers, resp.ContainerId)
	t.mu.Unlock()
	if _, err := t.c.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		return resp.ContainerId, fmt.Errorf("StartContainer %s: %w", o.Name, err)
	}
	return resp.ContainerId, nil
}

// Cleanup stops and removes everything the tracker created. Errors are joined.
func (t *Tracker) Cleanup(ctx context.Context) error {
	t.mu.Lock()
	cs, sbs := t.containers, t.sandboxes
	t.containers, t.sandboxes = nil, nil
	t.mu.Unlock()
	var errs []error
	for _, id := range cs {
		if _, err := t.c.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
			errs = append(errs, fmt.Errorf("StopContainer %s: %w", id, err))
		}
		if _, err := t.c.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			errs = append(errs, fmt.Errorf("RemoveContainer %s: %w", id, err))
		}
	}
	for _, id := range sbs {
		if _, err := t.c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			errs = append(errs, fmt.Errorf("StopPodSandbox %s: %w", id, err))
		}
		if _, err := t.c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			errs = append(errs, fmt.Errorf("RemovePodSandbox %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// Sweep removes every sandbox labelled by Gauntlet (any run), for leftovers
// of an interrupted run. It returns how many sandboxes it removed.
func (c *Client) Sweep(ctx context.Context) (int, error) {
	resp, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, sb := range resp.Items {
		if _, ok := sb.Labels[RunLabel]; !ok {
			continue
		}
		if _, err := c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, err)
		}
		if _, err := c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, err)
		} else {
			n++
		}
	}
	return n, errors.Join(errs...)
}
