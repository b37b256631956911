// Package cri is Gauntlet's reference container runtime: a CRI v1 gRPC server with
// in-memory sandboxes, containers and images whose streaming endpoint is the real
// k8s.io/cri-streaming library (the one containerd and CRI-O embed), so the suite
// measures the library's behaviour. Containers run a built-in busybox stand-in
// (fakes/cri/busybox) instead of real processes. Named faults (faults.go) make it
// misbehave one way at a time so every check can be proven to fail.
package cri

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/gauntlet-conformance/gauntlet/fakes/cri/busybox"
)

// RuntimeName and RuntimeVersion are what Version reports.
const (
	RuntimeName    = "gauntlet-reference"
	RuntimeVersion = "0.1.0"
)

type sandbox struct {
	id          string
	config      *runtimeapi.PodSandboxConfig
	state       runtimeapi.PodSandboxState
	createdAt   int64
	netns       *busybox.Netns
	hostNetwork bool
}

type container struct {
	id        string
	sandboxID string
	config    *runtimeapi.ContainerConfig
	imageRef  string
	createdAt int64

	mu         sync.Mutex
	state      runtimeapi.ContainerState
	startedAt  int64
	finishedAt int64
	exitCode   int32

	machine *busybox.Machine
	cancel  context.CancelFunc
	done    chan struct{} // closed when the main process exits
	stdin   *stdinPipe    // nil unless config.Stdin
	stdout  *broadcaster
	stderr  *broadcaster
	term    *terminal
}

func (c *container) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == runtimeapi.ContainerState_CONTAINER_RUNNING
}

// state is the whole in-memory runtime.
type state struct {
	mu         sync.Mutex
	sandboxes  map[string]*sandbox
	containers map[string]*container
	images     map[string]*runtimeapi.Image
	hostNetns  *busybox.Netns
	nextID     atomic.Uint64
}

func newState() *state {
	return &state{
		sandboxes:  map[string]*sandbox{},
		containers: map[string]*container{},
		images:     map[string]*runtimeapi.Image{},
		hostNetns:  busybox.NewNetns(),
	}
}

func (s *state) newID(prefix string) string {
	return fmt.Sprintf("%s%012d", prefix, s.nextID.Add(1))
}

// lookupPrefix resolves an ID or a unique prefix of one, as real runtimes do.
func lookupPrefix[T any](m map[string]T, id string) (T, bool) {
	var zero T
	if v, ok := m[id]; ok {
		return v, true
	}
	if id == "" {
		return zero, false
	}
	var found T
	n := 0
	for k, v := range m {
		if strings.HasPrefix(k, id) {
			found, n = v, n+1
		}
	}
	if n == 1 {
		return found, true
	}
	return zero, false
}

// runtimeService implements runtimeapi.RuntimeServiceServer.
type runtimeService struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	r *Runtime
}

func (s *runtimeService) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: RuntimeName, RuntimeVersion: RuntimeVersion, RuntimeApiVersion: "v1"}, nil
}

func (s *runtimeService) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}}, nil
}

func (s *runtimeService) UpdateRuntimeConfig(context.Context, *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

func (s *runtimeService) RunPodSandbox(_ context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "sandbox config must include metadata.name")
	}
	st := s.r.state
	sb := &sandbox{
		id:        st.newID("sb"),
		config:    cfg,
		state:     runtimeapi.PodSandboxState_SANDBOX_READY,
		createdAt: time.Now().UnixNano(),
	}
	if cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE {
		sb.hostNetwork, sb.netns = true, st.hostNetns
	} else {
		sb.netns = busybox.NewNetns()
	}
	st.mu.Lock()
	st.sandboxes[sb.id] = sb
	st.mu.Unlock()
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: sb.id}, nil
}

func (s *runtimeService) sandbox(id string) (*sandbox, error) {
	s.r.state.mu.Lock()
	defer s.r.state.mu.Unlock()
	sb, ok := lookupPrefix(s.r.state.sandboxes, id)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "pod sandbox %q not found", id)
	}
	return sb, nil
}

func (s *runtimeService) container(id string) (*container, error) {
	s.r.state.mu.Lock()
	defer s.r.state.mu.Unlock()
	c, ok := lookupPrefix(s.r.state.containers, id)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "container %q not found", id)
	}
	return c, nil
}

func (s *runtimeService) containersOf(sandboxID string) []*container {
	s.r.state.mu.Lock()
	defer s.r.state.mu.Unlock()
	var out []*container
	for _, c := range s.r.state.containers {
		if c.sandboxID == sandboxID {
			out = append(out, c)
		}
	}
	return out
}

func (s *runtimeService) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	sb, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return &runtimeapi.StopPodSandboxResponse{}, nil // stop is idempotent in CRI
		}
		return nil, err
	}
	for _, c := range s.containersOf(sb.id) {
		c.stop(0)
	}
	s.r.state.mu.Lock()
	sb.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	s.r.state.mu.Unlock()
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (s *runtimeService) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	sb, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return &runtimeapi.RemovePodSandboxResponse{}, nil
		}
		return nil, err
	}
	for _, c := range s.containersOf(sb.id) {
		c.stop(0)
		s.r.state.mu.Lock()
		delete(s.r.state.containers, c.id)
		s.r.state.mu.Unlock()
	}
	s.r.state.mu.Lock()
	delete(s.r.state.sandboxes, sb.id)
	s.r.state.mu.Unlock()
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (s *runtimeService) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	s.r.state.mu.Lock()
	defer s.r.state.mu.Unlock()
	return &runtimeapi.PodSandboxStatusResponse{Status: sb.status()}, nil
}

func (sb *sandbox) status() *runtimeapi.PodSandboxStatus {
	mode := runtimeapi.NamespaceMode_POD
	ip := "10.88.0.2"
	if sb.hostNetwork {
		mode, ip = runtimeapi.NamespaceMode_NODE, "127.0.0.1"
	}
	return &runtimeapi.PodSandboxStatus{
		Id:        sb.id,
		Metadata:  sb.config.GetMetadata(),
		State:     sb.state,
		CreatedAt: sb.createdAt,
		Network:   &runtimeapi.PodSandboxNetworkStatus{Ip: ip},
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: &runtimeapi.NamespaceOption{Network: mode},
		}},
		Labels:      sb.config.GetLabels(),
		Annotations: sb.config.GetAnnotations(),
	}
}

func (s *runtimeService) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	s.r.state.mu.Lock()
	defer s.r.state.mu.Unlock()
	f := req.GetFilter()
	var items []*runtimeapi.PodSandbox
	for _, sb := range s.r.state.sandboxes {
		if f.GetId() != "" && !strings.HasPrefix(sb.id, f.GetId()) {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != sb.state {
			continue
		}
		if !labelsMatch(sb.config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		items = append(items, &runtimeapi.PodSandbox{
			Id: sb.id, Metadata: sb.config.GetMetadata(), State: sb.state, CreatedAt: sb.createdAt,
			Labels: sb.config.GetLabels(), Annotations: sb.config.GetAnnotations(),
		})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Id < items[j].Id })
	return &runtimeapi.ListPodSandboxResponse{Items: items}, nil
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (s *runtimeService) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	sb, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "container config must include metadata.name")
	}
	imgRef := cfg.GetImage().GetImage()
	if _, ok := s.r.images.lookup(imgRef); !ok {
		return nil, status.Errorf(codes.NotFound, "image %q not found", imgRef)
	}
	c := &container{
		id:        s.r.state.newID("ct"),
		sandboxID: sb.id,
		config:    cfg,
		imageRef:  imgRef,
		createdAt: time.Now().UnixNano(),
		state:     runtimeapi.ContainerState_CONTAINER_CREATED,
		machine:   busybox.NewMachine(sb.netns),
		done:      make(chan struct{}),
		stdout:    newBroadcaster(),
		stderr:    newBroadcaster(),
		term:      newTerminal(),
	}
	if cfg.GetStdin() {
		c.stdin = newStdinPipe()
	}
	s.r.state.mu.Lock()
	s.r.state.containers[c.id] = c
	s.r.state.mu.Unlock()
	return &runtimeapi.CreateContainerResponse{ContainerId: c.id}, nil
}

func (s *runtimeService) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	c, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.state != runtimeapi.ContainerState_CONTAINER_CREATED {
		c.mu.Unlock()
		return nil, status.Errorf(codes.FailedPrecondition, "container %q is not in created state", c.id)
	}
	argv := append(append([]string{}, c.config.GetCommand()...), c.config.GetArgs()...)
	if len(argv) == 0 {
		argv = []string{"sh"}
	}
	pctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.state = runtimeapi.ContainerState_CONTAINER_RUNNING
	c.startedAt = time.Now().UnixNano()
	c.mu.Unlock()

	stdio := busybox.Stdio{Stdout: c.stdout, Stderr: c.stderr}
	if c.stdin != nil {
		stdio.Stdin = c.stdin
	}
	if c.config.GetTty() {
		stdio.Stderr = c.stdout
		stdio.TTY = c.term
	}
	go func() {
		code := c.machine.Run(pctx, argv, stdio)
		c.mu.Lock()
		c.state = runtimeapi.ContainerState_CONTAINER_EXITED
		c.finishedAt = time.Now().UnixNano()
		c.exitCode = int32(code)
		c.mu.Unlock()
		c.stdout.close()
		c.stderr.close()
		close(c.done)
	}()
	return &runtimeapi.StartContainerResponse{}, nil
}

// stop kills the container's main process and every exec in it.
func (c *container) stop(timeout time.Duration) {
	c.mu.Lock()
	cancel, st := c.cancel, c.state
	if st == runtimeapi.ContainerState_CONTAINER_CREATED {
		c.state = runtimeapi.ContainerState_CONTAINER_EXITED
		c.finishedAt = time.Now().UnixNano()
		close(c.done)
	}
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.machine.KillAll()
	if c.stdin != nil {
		c.stdin.Close()
	}
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

func (s *runtimeService) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	c, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	c.stop(time.Duration(req.GetTimeout()) * time.Second)
	return &runtimeapi.StopContainerResponse{}, nil
}

func (s *runtimeService) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	c, err := s.container(req.GetContainerId())
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return &runtimeapi.RemoveContainerResponse{}, nil
		}
		return nil, err
	}
	c.stop(0)
	s.r.state.mu.Lock()
	delete(s.r.state.containers, c.id)
	s.r.state.mu.Unlock()
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (c *container) status() *runtimeapi.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &runtimeapi.ContainerStatus{
		Id:          c.id,
		Metadata:    c.config.GetMetadata(),
		State:       c.state,
		CreatedAt:   c.createdAt,
		StartedAt:   c.startedAt,
		FinishedAt:  c.finishedAt,
		ExitCode:    c.exitCode,
		Image:       c.config.GetImage(),
		ImageRef:    c.imageRef,
		Labels:      c.config.GetLabels(),
		Annotations: c.config.GetAnnotations(),
	}
	if c.state == runtimeapi.ContainerState_CONTAINER_EXITED {
		st.Reason = "Completed"
		if c.exitCode != 0 {
			st.Reason = "Error"
		}
	}
	return st
}

func (s *runtimeService) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatusResponse{Status: c.status()}, nil
}

func (s *runtimeService) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	s.r.state.mu.Lock()
	all := make([]*container, 0, len(s.r.state.containers))
	for _, c := range s.r.state.containers {
		all = append(all, c)
	}
	s.r.state.mu.Unlock()
	f := req.GetFilter()
	var items []*runtimeapi.Container
	for _, c := range all {
		st := c.status()
		if f.GetId() != "" && !strings.HasPrefix(c.id, f.GetId()) {
			continue
		}
		if f.GetPodSandboxId() != "" && !strings.HasPrefix(c.sandboxID, f.GetPodSandboxId()) {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != st.State {
			continue
		}
		if !labelsMatch(c.config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		items = append(items, &runtimeapi.Container{
			Id: c.id, PodSandboxId: c.sandboxID, Metadata: st.Metadata, Image: st.Image, ImageRef: st.ImageRef,
			State: st.State, CreatedAt: st.CreatedAt, Labels: st.Labels, Annotations: st.Annotations,
		})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Id < items[j].Id })
	return &runtimeapi.ListContainersResponse{Containers: items}, nil
}

func (s *runtimeService) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	c, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if !c.running() {
		return nil, status.Errorf(codes.FailedPrecondition, "container %q is not running", c.id)
	}
	if t := req.GetTimeout(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	var out, errOut limitedBuffer
	code := c.machine.Run(ctx, req.GetCmd(), busybox.Stdio{Stdout: &out, Stderr: &errOut})
	return &runtimeapi.ExecSyncResponse{Stdout: out.Bytes(), Stderr: errOut.Bytes(), ExitCode: int32(code)}, nil
}

func (s *runtimeService) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	return s.r.streams.getExec(req)
}

func (s *runtimeService) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	return s.r.streams.getAttach(req)
}

func (s *runtimeService) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	return s.r.streams.getPortForward(req)
}

// limitedBuffer collects ExecSync output up to 16 MiB (the CRI message size bound).
type limitedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 16<<20 - len(b.buf); room > 0 {
		if len(p) > room {
			b.buf = append(b.buf, p[:room]...)
		} else {
			b.buf = append(b.buf, p...)
		}
	}
	return len(p), nil
}

func (b *limitedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// imageService implements runtimeapi.ImageServiceServer: any reference can be
// "pulled"; nothing is downloaded.
type imageService struct {
	runtimeapi.UnimplementedImageServiceServer
	r *Runtime
}

type imageStore struct {
	mu     sync.Mutex
	images map[string]*runtimeapi.Image
}

func normalizeRef(ref string) string {
	if !strings.Contains(ref, ":") && !strings.Contains(ref, "@") {
		return ref + ":latest"
	}
	return ref
}

func (st *imageStore) lookup(ref string) (*runtimeapi.Image, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if img, ok := st.images[normalizeRef(ref)]; ok {
		return img, true
	}
	for _, img := range st.images { // by image ID
		if img.Id == ref {
			return img, true
		}
	}
	return nil, false
}

func (st *imageStore) add(ref string) *runtimeapi.Image {
	ref = normalizeRef(ref)
	st.mu.Lock()
	defer st.mu.Unlock()
	if img, ok := st.images[ref]; ok {
		return img
	}
	img := &runtimeapi.Image{
		Id:       "sha256:" + fmt.Sprintf("%064x", len(st.images)+1),
		RepoTags: []string{ref},
		Size:     1 << 20,
		Spec:     &runtimeapi.ImageSpec{Image: ref},
	}
	st.images[ref] = img
	return img
}

func (s *imageService) ListImages(context.Context, *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	s.r.images.mu.Lock()
	defer s.r.images.mu.Unlock()
	var out []*runtimeapi.Image
	for _, img := range s.r.images.images {
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return &runtimeapi.ListImagesResponse{Images: out}, nil
}

func (s *imageService) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	img, ok := s.r.images.lookup(req.GetImage().GetImage())
	if !ok {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return &runtimeapi.ImageStatusResponse{Image: img}, nil
}

func (s *imageService) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, status.Error(codes.InvalidArgument, "image reference is empty")
	}
	img := s.r.images.add(ref)
	return &runtimeapi.PullImageResponse{ImageRef: img.Id}, nil
}

func (s *imageService) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref := normalizeRef(req.GetImage().GetImage())
	s.r.images.mu.Lock()
	delete(s.r.images.images, ref)
	s.r.images.mu.Unlock()
	return &runtimeapi.RemoveImageResponse{}, nil
}

func (s *imageService) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{{
		Timestamp: time.Now().UnixNano(), FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: "/fake"},
		UsedBytes: &runtimeapi.UInt64Value{Value: 1 << 20}, InodesUsed: &runtimeapi.UInt64Value{Value: 1},
	}}}, nil
}

// parsePort is a strict decimal port parser for policy strings.
func parsePort(s string) (int32, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return int32(n), nil
}
