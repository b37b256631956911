package testimages

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The mesh echo image: the gauntlet binary as /gauntlet, which the
// Kubernetes mesh driver (internal/meshkube) runs as its echo workloads
// (`gauntlet mesh-echo serve`) and client pods (`mesh-echo idle`, then
// exec'd requests). meshkube.DefaultEchoImage names it.
const (
	MeshEchoRef     = "localhost/gauntlet/mesh-echo:dev"
	MeshEchoArchive = "mesh-echo.oci.tar"
	// MeshEchoPackage is the Go package built as /gauntlet.
	MeshEchoPackage = "github.com/gauntlet-conformance/gauntlet/cmd/gauntlet"
)

// MeshEcho builds the mesh echo image from MeshEchoPackage (a static
// linux binary for this machine's architecture, as a local kind node runs).
func MeshEcho(ctx context.Context, cfg Config) (v1.Image, error) {
	cfg = cfg.withDefaults()
	bin, err := buildStatic(ctx, cfg, MeshEchoPackage, "gauntlet")
	if err != nil {
		return nil, err
	}
	var t tree
	t.file("gauntlet", 0o755, bin)
	// Mount points of the pod's volumes and a writable-looking /tmp; the
	// driver mounts an emptyDir for the echo server's records.
	t.dir("var/run/gauntlet", 0o755)
	t.dir("tmp", 0o1777)
	return newImage(t, func(c *v1.Config) {
		c.Entrypoint = []string{"/gauntlet"}
		c.Cmd = []string{"mesh-echo", "idle"}
		c.User = "65532:65532"
		c.WorkingDir = "/"
	}, "mesh-echo: CGO_ENABLED=0 go build "+MeshEchoPackage)
}

// BuildMeshEcho writes the mesh echo image to outDir/MeshEchoArchive.
func BuildMeshEcho(ctx context.Context, outDir string, cfg Config) (Built, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return Built{}, err
	}
	img, err := MeshEcho(ctx, cfg)
	if err != nil {
		return Built{}, err
	}
	b := Built{Ref: MeshEchoRef, Path: filepath.Join(outDir, MeshEchoArchive)}
	b.Digest, err = WriteArchive(b.Path, img, MeshEchoRef)
	return b, err
}

func buildStatic(ctx context.Context, cfg Config, pkg, name string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "gauntlet-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, cfg.Go, "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=", "-o", out, pkg)
	cmd.Dir = cfg.GoDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building %s (%s): %v: %s", name, strings.Join(cmd.Args, " "), err, bytes.TrimSpace(msg))
	}
	return os.ReadFile(out)
}
