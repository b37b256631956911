// Command images builds gauntlet's test images as OCI archives, without a
// registry:
//
//	go run ./hack/images --out DIR
//
// writes DIR/pause.oci.tar (localhost/gauntlet/pause:1.0),
// DIR/busybox.oci.tar (localhost/gauntlet/busybox:1.35) and DIR/images.yaml
// (a critest test-images file); with --mesh-echo it writes only
// DIR/mesh-echo.oci.tar (localhost/gauntlet/mesh-echo:dev, the gauntlet
// binary for the Kubernetes mesh driver's pods). Import them with
// `ctr -n k8s.io images import DIR/X.oci.tar` (containerd) or from
// `oci-archive:DIR/X.oci.tar` (CRI-O, containers/image).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gauntlet-conformance/gauntlet/internal/testimages"
)

func main() {
	out := flag.String("out", "", "directory to write the archives and images.yaml to (required)")
	busybox := flag.String("busybox", testimages.DefaultBusybox, "static busybox binary (Debian: apt-get install -y busybox-static)")
	pausePkg := flag.String("pause-pkg", testimages.PausePackage, "Go package built as the pause image's /pause")
	goCmd := flag.String("go", "go", "go command used to build the pause binary")
	meshEcho := flag.Bool("mesh-echo", false, "build only the mesh echo image: DIR/"+testimages.MeshEchoArchive+" ("+testimages.MeshEchoRef+", the gauntlet binary as /gauntlet) for the Kubernetes mesh driver")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./hack/images --out DIR [--busybox PATH] [--pause-pkg PKG] [--go GO]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *meshEcho {
		b, err := testimages.BuildMeshEcho(ctx, *out, testimages.Config{Go: *goCmd})
		if err != nil {
			fmt.Fprintf(os.Stderr, "hack/images: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("%s %s %s\n", b.Path, b.Ref, b.Digest)
		return
	}
	res, err := testimages.Build(ctx, *out, testimages.Config{Go: *goCmd, PausePkg: *pausePkg, Busybox: *busybox})
	if err != nil {
		fmt.Fprintf(os.Stderr, "hack/images: %v\n", err)
		os.Exit(1)
	}
	for _, b := range []testimages.Built{res.Pause, res.Busybox} {
		fmt.Printf("%s %s %s\n", b.Path, b.Ref, b.Digest)
	}
	fmt.Println(res.ImagesFile)
}
