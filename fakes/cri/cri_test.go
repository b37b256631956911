package cri

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestStockCRIClient drives the reference runtime the way crictl does: a plain
// cri-api gRPC client over a unix socket (runp, create, start, exec, stop, rm).
func TestStockCRIClient(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	r, err := Start("unix://"+sock, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rt, img := runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if v, err := rt.Version(ctx, &runtimeapi.VersionRequest{}); err != nil || v.RuntimeName != RuntimeName {
		t.Fatalf("Version: %v %v", v, err)
	}
	if _, err := img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}}); err != nil {
		t.Fatal(err)
	}
	sbCfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Uid: "u", Namespace: "n"}}
	sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, SandboxConfig: sbCfg,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
			Command: []string{"sleep", "3600"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ct.ContainerId}); err != nil {
		t.Fatal(err)
	}
	out, err := rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ct.ContainerId, Cmd: []string{"sh", "-c", "echo hi; exit 3"}})
	if err != nil || string(out.Stdout) != "hi\n" || out.ExitCode != 3 {
		t.Fatalf("ExecSync: %+v %v", out, err)
	}
	ex, err := rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: ct.ContainerId, Cmd: []string{"true"}, Stdout: true})
	if err != nil || !strings.HasPrefix(ex.Url, "http://127.0.0.1:") {
		t.Fatalf("Exec: %v %v", ex, err)
	}
	st, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ct.ContainerId})
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("ContainerStatus: %v %v", st, err)
	}
	if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ct.ContainerId}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	l, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(l.Containers) != 0 {
		t.Fatalf("containers left after RemovePodSandbox: %v %v", l, err)
	}
}
