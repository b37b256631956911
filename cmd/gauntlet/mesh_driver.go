package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/fakes/mesh"
	"github.com/gauntlet-conformance/gauntlet/fakes/mesh/meshtarget"
	"github.com/gauntlet-conformance/gauntlet/faults"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/internal/meshpolicy/meshexec"
	"github.com/gauntlet-conformance/gauntlet/suites/meshauthz"
)

// `gauntlet mesh-driver` serves the embedded reference mesh over the
// meshexec protocol on stdin/stdout: a driver for `gauntlet run meshauthz
// --mesh-driver`, for demos and tests (e.g. a gRPC-only target), and the
// reference for driver authors.

func init() {
	extraCommands["mesh-driver"] = meshDriverCommand
}

// meshDriverStartTimeout bounds a --mesh-driver's start and hello.
const meshDriverStartTimeout = 2 * time.Minute

func meshDriverCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gauntlet mesh-driver", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are one line (below); -h prints the usage
	protocols := fs.String("protocols", "HTTP,TCP,GRPC", "protocols the reference mesh serves, comma-separated (HTTP, TCP, GRPC)")
	var ext []string
	for _, f := range meshauthz.Features {
		if _, proto := protocolOf(f.Name); !proto {
			ext = append(ext, string(f.Name))
		}
	}
	features := fs.String("features", "", "extensions the reference mesh installs and declares in its hello, comma-separated (default: all): "+strings.Join(ext, ","))
	faultList := fs.String("faults", "", "reference mesh faults active from the start, comma-separated (gauntlet catalogue meshauthz lists them): a red target for demos")
	usage := func() {
		fmt.Fprintln(stderr, "usage: gauntlet mesh-driver [--protocols GRPC] [--features ...] [--faults ...]\n"+
			"Serves the embedded reference mesh as a meshexec driver on stdin/stdout (log: stderr); exits when stdin closes.")
		fs.SetOutput(stderr)
		fs.PrintDefaults()
	}
	fail := func(msg string) int {
		fmt.Fprintf(stderr, "gauntlet mesh-driver: %s\n", msg)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return exitOK
		}
		return fail(err.Error() + " (gauntlet mesh-driver -h lists the flags)")
	}
	if fs.NArg() > 0 {
		return fail(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	declared, err := conformance.ParseFeatures(*features, meshauthz.Features)
	if err != nil {
		return fail("--features: " + err.Error())
	}
	if *features == "" {
		for _, f := range ext {
			declared = append(declared, conformance.Feature(f))
		}
	}
	names := make([]string, 0, len(declared))
	for _, f := range declared {
		if _, proto := protocolOf(f); proto {
			return fail(fmt.Sprintf("--features %s: name the protocols with --protocols", f))
		}
		names = append(names, string(f))
	}
	for _, s := range strings.Split(*protocols, ",") {
		p, ok := mp.ParseProtocol(strings.TrimSpace(s))
		if !ok {
			return fail(fmt.Sprintf("--protocols: unknown protocol %q (known: HTTP, TCP, GRPC)", s))
		}
		declared = append(declared, meshauthz.ProtocolFeature(p))
	}
	o := meshtarget.MeshOptions(declared)
	for _, s := range strings.Split(*faultList, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !faults.Mesh.Has(faults.Fault(s)) {
				return fail(fmt.Sprintf("--faults: unknown mesh fault %q", s))
			}
			o.Faults = append(o.Faults, faults.Fault(s))
		}
	}
	m, err := mesh.Start(o)
	if err != nil {
		return fail(err.Error())
	}
	defer m.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stderr, "gauntlet mesh-driver: serving the reference mesh (protocols %v, features %s) on stdin/stdout\n",
		m.Protocols(), strings.Join(names, ","))
	if err := meshexec.Serve(ctx, declaring{Mesh: m, features: names}, os.Stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "gauntlet mesh-driver: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// declaring is the reference mesh declaring its extensions in its hello.
type declaring struct {
	*mesh.Mesh
	features []string
}

func (d declaring) Features() []string { return d.features }

func (d declaring) Name() string { return "gauntlet reference mesh (gauntlet mesh-driver)" }

func protocolOf(f conformance.Feature) (mp.Protocol, bool) {
	for _, p := range mp.AllProtocols {
		if meshauthz.ProtocolFeature(p) == f {
			return p, true
		}
	}
	return "", false
}

// startMeshDriver starts --mesh-driver and builds the target: features from
// --features when given, else from the driver's hello.
func startMeshDriver(ctx context.Context, command, logPath string, declared []conformance.Feature, settings meshauthz.Settings) (conformance.Target, error) {
	t := conformance.Target{Features: declared}
	argv := strings.Fields(command)
	if _, err := exec.LookPath(argv[0]); err != nil {
		return t, usageError{fmt.Sprintf("--mesh-driver %q: %s is not an executable", command, argv[0])}
	}
	var logFile *os.File
	o := meshexec.Options{}
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return t, usageError{"--mesh-driver-log: " + err.Error()}
		}
		logFile, o.Stderr = f, f
	}
	closeLog := func() {
		if logFile != nil {
			logFile.Close()
		}
	}
	sctx, cancel := context.WithTimeout(ctx, meshDriverStartTimeout)
	defer cancel()
	c, err := meshexec.StartWith(sctx, argv, o)
	if err != nil {
		closeLog()
		return t, usageError{fmt.Sprintf("--mesh-driver %q: %v", command, err)}
	}
	stop := func() error {
		err := c.Close()
		closeLog()
		return err
	}
	if len(declared) == 0 {
		declared, err = conformance.ParseFeatures(strings.Join(c.Features(), ","), meshauthz.Features)
		if err != nil {
			stop()
			return t, usageError{fmt.Sprintf("--mesh-driver %q declares features gauntlet does not know (%v): name the features with --features", command, err)}
		}
	}
	settings.Driver = c
	return conformance.Target{
		Name:     fmt.Sprintf("%s (mesh driver %s)", c.Name(), argv[0]),
		Endpoint: "exec:" + command,
		Features: declared,
		Settings: settings,
		Close:    stop,
	}, nil
}

// withProtocolFeatures completes a meshauthz target's features with the
// protocols its driver serves; a target whose --features name a protocol
// the driver does not serve is closed, and the error is a usage error.
func withProtocolFeatures(t conformance.Target) (conformance.Target, error) {
	s, ok := t.Settings.(meshauthz.Settings)
	if !ok || s.Driver == nil {
		return t, nil
	}
	fs, err := meshauthz.TargetFeatures(t.Features, s.Driver)
	if err != nil {
		if t.Close != nil {
			t.Close()
		}
		return conformance.Target{}, usageError{"--features: " + err.Error()}
	}
	t.Features = fs
	return t, nil
}
