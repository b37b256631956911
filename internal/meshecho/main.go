package meshecho

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// Usage lists the subcommands.
const Usage = `usage: gauntlet mesh-echo COMMAND (runs inside the pods of the Kubernetes mesh driver)
  serve   [--name NS/NAME] [--dir DIR] [--http :8080] [--tcp :9090] [--grpc :7070]   the echo workload
  idle                                                                         a client pod's main process
  request --protocol HTTP|TCP|GRPC --addr HOST:PORT --nonce N [--timeout 3s]   one request; prints the outcome (JSON)
  open    --addr HOST:PORT [--timeout 3s]                                      a TCP connection driven over stdin/stdout
  saw     [--dir DIR] NONCE                                                    prints "saw" or "not-seen"
  probes  [--dir DIR]                                                          prints how many kubelet probes arrived`

// Main runs a subcommand and returns the exit code: 0 done (a denied
// request is a result, not a failure), 1 the command failed, 2 bad usage.
// dial replaces the network dialer (tests); nil dials for real.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, dial DialFunc) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, Usage)
		return 2
	}
	fs := flag.NewFlagSet("mesh-echo "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", DefaultDir, "record directory")
	fail := func(err error) int {
		fmt.Fprintf(stderr, "mesh-echo %s: %v\n", args[0], err)
		return 1
	}
	parse := func(nargs int) bool {
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != nargs {
			if err == nil {
				fmt.Fprintf(stderr, "mesh-echo %s: want %d argument(s), got %q\n%s\n", args[0], nargs, fs.Args(), Usage)
			}
			return false
		}
		return true
	}
	switch args[0] {
	case "serve":
		name := fs.String("name", "", "ns/name, echoed back")
		h := fs.String("http", fmt.Sprintf(":%d", mp.HTTPPort), "HTTP listen address")
		t := fs.String("tcp", fmt.Sprintf(":%d", mp.TCPPort), "TCP echo listen address")
		g := fs.String("grpc", fmt.Sprintf(":%d", mp.GRPCPort), "gRPC health listen address")
		if !parse(0) {
			return 2
		}
		s := &Server{Name: *name, Dir: *dir, HTTPAddr: *h, TCPAddr: *t, GRPCAddr: *g}
		fmt.Fprintf(stderr, "mesh-echo: serving %s: HTTP %s, TCP %s, gRPC %s, records in %s\n", *name, *h, *t, *g, *dir)
		if err := s.Run(ctx); err != nil {
			return fail(err)
		}
		return 0
	case "idle":
		if !parse(0) {
			return 2
		}
		<-ctx.Done()
		return 0
	case "request":
		proto := fs.String("protocol", "", "HTTP, TCP or GRPC")
		addr := fs.String("addr", "", "host:port")
		nonce := fs.String("nonce", "", "the request's nonce")
		timeout := fs.Duration("timeout", 3*time.Second, "bound on the request")
		if !parse(0) {
			return 2
		}
		p := mp.Protocol(strings.ToUpper(*proto))
		if (p != mp.HTTP && p != mp.TCP && p != mp.GRPC) || *addr == "" || *nonce == "" {
			fmt.Fprintf(stderr, "mesh-echo request: need --protocol HTTP|TCP|GRPC, --addr and --nonce\n")
			return 2
		}
		o := Do(ctx, Request{Protocol: p, Addr: *addr, Nonce: *nonce, Timeout: *timeout}, dial)
		if err := EncodeOutcome(stdout, o); err != nil {
			return fail(err)
		}
		return 0
	case "open":
		addr := fs.String("addr", "", "host:port")
		timeout := fs.Duration("timeout", 3*time.Second, "bound on the dial")
		if !parse(0) {
			return 2
		}
		if *addr == "" {
			fmt.Fprintln(stderr, "mesh-echo open: need --addr")
			return 2
		}
		if err := Open(ctx, *addr, *timeout, dial, stdin, stdout); err != nil {
			return fail(err)
		}
		return 0
	case "saw":
		if !parse(1) {
			return 2
		}
		ok, err := Saw(*dir, fs.Arg(0))
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, map[bool]string{true: "saw", false: "not-seen"}[ok])
		return 0
	case "probes":
		if !parse(0) {
			return 2
		}
		n, err := Probes(*dir)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, n)
		return 0
	}
	fmt.Fprintf(stderr, "mesh-echo: unknown command %q\n%s\n", args[0], Usage)
	return 2
}
