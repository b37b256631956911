package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/fakes/cri"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/cricli"
	"github.com/gauntlet-conformance/gauntlet/internal/critarget"
	"github.com/gauntlet-conformance/gauntlet/internal/reference"
	"github.com/gauntlet-conformance/gauntlet/suites/streaming"
)

func init() {
	registerSuite(suiteEntry{
		Suite:     streaming.Suite,
		Doc:       "CRI Exec/Attach/PortForward streaming (embedded reference runtime unless --runtime-endpoint)",
		Flags:     streamingFlags,
		Reference: "streaming-reference",
	})
}

// streamingFlags are critest-compatible where they overlap.
func streamingFlags(fs *flag.FlagSet) targetFunc {
	endpoint := fs.String("runtime-endpoint", "", "CRI runtime endpoint (unix:///path or tcp://host:port); empty: the embedded reference runtime")
	imageEndpoint := fs.String("image-endpoint", "", "CRI image service endpoint (default: the runtime endpoint)")
	images := fs.String("test-images-file", "", "critest-format YAML naming defaultTestContainerImage")
	caps := fs.String("capabilities", "", "declared optional features (same as --features, kept for critest-style scripts)")
	creation := fs.Duration("stream-creation-timeout", 30*time.Second, "the runtime's stream creation timeout")
	idle := fs.Duration("stream-idle-timeout", 0, "the runtime's stream idle timeout, if known (enables C13)")
	pid := fs.Int("runtime-pid", 0, "PID of the runtime daemon: enables resource-growth checks (C18, G3, G4, D11)")
	streamCA := fs.String("stream-ca-file", "", "PEM CA bundle that https stream URLs must verify against, besides the system roots (G2)")
	return func(ctx context.Context, declared []conformance.Feature) (conformance.Target, error) {
		more, err := conformance.ParseFeatures(*caps, streaming.Features)
		if err != nil {
			return conformance.Target{}, usageError{"--capabilities: " + err.Error()}
		}
		declared = append(declared, more...)
		if *images != "" {
			if _, err := streaming.LoadTestImages(*images); err != nil {
				return conformance.Target{}, usageError{err.Error()}
			}
		}
		if *endpoint == "" {
			if *imageEndpoint != "" || *pid != 0 || *streamCA != "" {
				return conformance.Target{}, usageError{"--image-endpoint, --runtime-pid and --stream-ca-file describe a real runtime: pass --runtime-endpoint too"}
			}
			t, _, err := reference.Streaming(reference.StreamingOptions())
			if err != nil {
				return t, fmt.Errorf("start the reference runtime: %w", err)
			}
			t.Features = append(t.Features, declared...)
			return t, nil
		}
		set := critarget.Settings{ImageEndpoint: *imageEndpoint, TestImagesFile: *images,
			StreamCreationTimeout: *creation, StreamIdleTimeout: *idle}
		t := conformance.Target{Name: *endpoint, Endpoint: *endpoint, Features: declared}
		if *streamCA != "" {
			b, err := os.ReadFile(*streamCA)
			if err != nil {
				return t, usageError{"--stream-ca-file: " + err.Error()}
			}
			if !x509.NewCertPool().AppendCertsFromPEM(b) {
				return t, usageError{fmt.Sprintf("--stream-ca-file %s holds no PEM certificate: pass the CA that issued the runtime's stream certificate", *streamCA)}
			}
			set.StreamCA = b
		}
		if *idle > 0 {
			t.Features = append(t.Features, streaming.FeatureIdleTimeout)
		}
		if *pid > 0 {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", *pid)); err != nil {
				return t, usageError{fmt.Sprintf("--runtime-pid %d: no such process: pass the runtime daemon's PID", *pid)}
			}
			t.Features = append(t.Features, streaming.FeatureProcessStats)
			t.Process = conformance.ProcWatcher{PID: *pid}
		}
		t.Settings = set
		// Fail fast, in seconds, with the endpoint named.
		for flagName, ep := range map[string]string{"--runtime-endpoint": *endpoint, "--image-endpoint": *imageEndpoint} {
			if ep == "" {
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c, err := cricli.Dial(dctx, ep, 4*time.Second)
			cancel()
			if err != nil {
				return t, usageError{fmt.Sprintf("%s: %v", flagName, err)}
			}
			c.Close()
		}
		return t, nil
	}
}

// fakeRuntime serves the reference runtime as a daemon (for crictl/critest).
func fakeRuntime(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gauntlet fake-runtime", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "unix:///tmp/gauntlet-fake.sock", "CRI endpoint to serve")
	faultList := fs.String("faults", "", "comma-separated faults to inject (see --list-faults)")
	list := fs.Bool("list-faults", false, "print the fault catalogue and exit")
	policy := fs.String("deny", "", "AuthorizeStream deny rules cmd=SUBSTR,container=ID,port=N (default: the Gauntlet contract)")
	noHook := fs.Bool("no-authorize", false, "run without the AuthorizeStream hook")
	noV5 := fs.Bool("no-v5", false, "do not serve v5.channel.k8s.io")
	idle := fs.Duration("stream-idle-timeout", 0, "stream idle timeout (default 30s)")
	creation := fs.Duration("stream-creation-timeout", 0, "stream creation timeout (default 5s)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if *list {
		for _, f := range faults.Streaming.All() {
			fmt.Fprintf(stdout, "%-30s %-12s %s\n", f.Name, f.Layer, f.Doc)
		}
		return nil
	}
	opts := cri.DefaultOptions()
	fl, err := faults.Streaming.Parse(*faultList)
	if err != nil {
		return usageError{"--faults: " + err.Error()}
	}
	opts.Faults = fl
	if *policy != "" {
		p, err := cri.ParsePolicy(*policy)
		if err != nil {
			return usageError{"--deny: " + err.Error()}
		}
		opts.Authorize = p.Hook()
	}
	if *noHook {
		opts.Authorize = nil
	}
	opts.ServeV5 = !*noV5
	if *idle > 0 {
		opts.StreamIdleTimeout = *idle
	}
	if *creation > 0 {
		opts.StreamCreationTimeout = *creation
	}
	if _, _, err := cricli.ParseEndpoint(*listen); err != nil {
		return usageError{"--listen: " + err.Error()}
	}
	r, err := cri.Start(*listen, opts)
	if err != nil {
		return err
	}
	defer r.Close()
	fmt.Fprintf(stdout, "gauntlet reference runtime serving CRI on %s (streams on %s)\n", r.Endpoint(), r.StreamAddr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	return nil
}
