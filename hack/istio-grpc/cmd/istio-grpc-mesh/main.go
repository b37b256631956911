// Command istio-grpc-mesh is a meshauthz mesh driver whose enforcement is
// real (hack/istio-grpc/istiomesh: Istio's authz translation served over
// xDS to grpc-go xDS servers enforcing RBAC), served over the meshexec
// protocol on stdin/stdout:
//
//	gauntlet run meshauthz --mesh-driver "$(hack/istio-grpc/build.sh)" ...
//
// Flags: -trust-domain (default cluster.local), -root-namespace (default
// istio-system). Logs go to stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gauntlet-conformance/gauntlet/hack/istio-grpc/istiomesh"
	"github.com/gauntlet-conformance/gauntlet/internal/meshpolicy/meshexec"
)

func main() {
	td := flag.String("trust-domain", "cluster.local", "SPIFFE trust domain of workload identities")
	root := flag.String("root-namespace", "istio-system", "Istio's root namespace: where cluster-scope policies live")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [-trust-domain TD] [-root-namespace NS]\n(a meshexec driver: speaks JSON lines on stdin/stdout; run it through gauntlet run meshauthz --mesh-driver)\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "istio-grpc-mesh: unexpected argument %q: this command takes flags only\n", flag.Arg(0))
		os.Exit(2)
	}
	os.Exit(run(*td, *root))
}

func run(td, root string) int {
	// The protocol owns stdout: keep it on a private descriptor and point
	// fd 1 at stderr, so that nothing a library prints (Istio's loggers
	// default to stdout) can corrupt a frame.
	protoFD, err := syscall.Dup(1)
	if err == nil {
		err = syscall.Dup3(2, 1, 0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "istio-grpc-mesh: cannot set stdout aside: %v\n", err)
		return 1
	}
	proto := os.NewFile(uintptr(protoFD), "meshexec-out")
	defer proto.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := istiomesh.New(istiomesh.Options{TrustDomain: td, RootNamespace: root})
	if err != nil {
		fmt.Fprintf(os.Stderr, "istio-grpc-mesh: %v\n", err)
		return 1
	}
	serr := meshexec.Serve(ctx, m, os.Stdin, proto)
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cerr := m.Cleanup(cctx)
	if serr != nil {
		fmt.Fprintf(os.Stderr, "istio-grpc-mesh: %v\n", serr)
		return 1
	}
	if cerr != nil {
		fmt.Fprintf(os.Stderr, "istio-grpc-mesh: cleanup: %v\n", cerr)
		return 1
	}
	return 0
}
