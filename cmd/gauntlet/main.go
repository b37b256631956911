// Command gauntlet runs Gauntlet's conformance suites and serves its
// reference targets.
//
//	gauntlet run streaming [flags]          run the streaming suite
//	gauntlet fake-runtime --listen unix:///path.sock [--faults a,b]
//
// Exit codes: 0 every required check passed (or failed as expected),
// 1 a check failed or passed unexpectedly, 2 usage or connection error.
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
	"strings"
	"syscall"
	"time"

	builtin "github.com/gauntlet-conformance/gauntlet/expectations"
	"github.com/gauntlet-conformance/gauntlet/fakes/cri"
	"github.com/gauntlet-conformance/gauntlet/internal/cricli"
	"github.com/gauntlet-conformance/gauntlet/internal/expectations"
	"github.com/gauntlet-conformance/gauntlet/internal/report"
	"github.com/gauntlet-conformance/gauntlet/suites/streaming"
	"github.com/onsi/ginkgo/v2/types"
)

const usage = `usage:
  gauntlet run streaming [flags]    run the CRI streaming suite (embedded reference runtime unless --runtime-endpoint)
  gauntlet fake-runtime [flags]     serve the reference runtime on a CRI socket
  gauntlet help                     this text
Run 'gauntlet run streaming -h' or 'gauntlet fake-runtime -h' for flags.`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a bad invocation: exit 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	var err error
	code := 0
	switch args[0] {
	case "run":
		code, err = runSuite(args[1:], stdout, stderr)
	case "fake-runtime":
		err = fakeRuntime(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		err = usageError{fmt.Sprintf("unknown command %q (want run or fake-runtime)", args[0])}
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "gauntlet: %v\n", err)
		return 2
	}
	return code
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func runSuite(args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return 2, usageError{"gauntlet run: name a suite: streaming"}
	}
	suite := args[0]
	switch suite {
	case "streaming":
	case "credprovider", "meshauthz":
		return 2, usageError{fmt.Sprintf("suite %q is not implemented yet; available: streaming", suite)}
	default:
		return 2, usageError{fmt.Sprintf("unknown suite %q; available: streaming", suite)}
	}
	fs := flag.NewFlagSet("gauntlet run streaming", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("runtime-endpoint", "", "CRI runtime endpoint (unix:///path or tcp://host:port); empty: embedded reference runtime")
	fs.String("image-endpoint", "", "CRI image endpoint (default: the runtime endpoint)")
	images := fs.String("test-images-file", "", "critest-format YAML naming defaultTestContainerImage")
	reportDir := fs.String("report-dir", "reports", "directory for JUnit XML")
	labels := fs.String("label-filter", "", "Ginkgo label filter, e.g. '!Slow && websocket'")
	var focus, skip listFlag
	fs.Var(&focus, "focus", "run only specs matching this regexp (repeatable), e.g. '\\[C7\\]'")
	fs.Var(&skip, "skip", "skip specs matching this regexp (repeatable)")
	caps := fs.String("capabilities", "", "declared optional features, comma-separated: v5,authorize-stream,no-authorize-stream,process-stats,host-network,tls-streaming")
	timeout := fs.Duration("timeout", time.Hour, "overall suite timeout")
	expFile := fs.String("expectations", "", "known-deviations YAML (default for the embedded runtime: the built-in reference expectations; 'none' disables)")
	creation := fs.Duration("stream-creation-timeout", 30*time.Second, "the runtime's stream creation timeout")
	idle := fs.Duration("stream-idle-timeout", 0, "the runtime's stream idle timeout, if known (enables C13)")
	pid := fs.Int("runtime-pid", 0, "PID of the runtime daemon: enables resource-growth checks (C18)")
	streamCA := fs.String("stream-ca-file", "", "PEM CA bundle that https stream URLs must verify against, besides the system roots (G2)")
	verbose := fs.Bool("v", false, "verbose Ginkgo output")
	list := fs.Bool("list", false, "print the IDs of the checks --label-filter selects, one per line, and exit")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, err
		}
		return 2, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return 2, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *list {
		match := func([]string) bool { return true }
		if *labels != "" {
			f, err := types.ParseLabelFilter(*labels)
			if err != nil {
				return 2, usageError{"--label-filter: " + err.Error()}
			}
			match = f
		}
		for _, c := range streaming.Checks() {
			if match(c.AllLabels()) {
				fmt.Fprintln(stdout, c.ID)
			}
		}
		return 0, nil
	}
	features, err := streaming.ParseCapabilities(*caps)
	if err != nil {
		return 2, usageError{"--capabilities: " + err.Error()}
	}
	if *images != "" {
		if _, err := streaming.LoadTestImages(*images); err != nil {
			return 2, err
		}
	}
	if *streamCA != "" {
		b, err := os.ReadFile(*streamCA)
		if err != nil {
			return 2, usageError{"--stream-ca-file: " + err.Error()}
		}
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			return 2, usageError{fmt.Sprintf("--stream-ca-file %s holds no PEM certificate: pass the CA that issued the runtime's stream certificate", *streamCA)}
		}
	}
	exp, err := loadExpectations(*expFile, *endpoint == "")
	if err != nil {
		return 2, err
	}
	if unknown := exp.Unknown(func(id string) bool { _, ok := streaming.Lookup(id); return ok }); len(unknown) > 0 {
		return 2, usageError{fmt.Sprintf("--expectations %s lists unknown check IDs %v", exp.Path, unknown)}
	}
	if *endpoint != "" {
		// Fail fast, in seconds, with the endpoint named.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := cricli.Dial(ctx, *endpoint, 4*time.Second)
		cancel()
		if err != nil {
			return 2, err
		}
		c.Close()
	}
	if err := os.MkdirAll(*reportDir, 0o755); err != nil {
		return 2, fmt.Errorf("--report-dir: %w", err)
	}
	rep, err := streaming.Run(streaming.RunOptions{
		Config: streaming.Config{RuntimeEndpoint: *endpoint, TestImagesFile: *images, Capabilities: features,
			StreamCreationTimeout: *creation, StreamIdleTimeout: *idle, RuntimePID: *pid, StreamCAFile: *streamCA},
		RunID:       fmt.Sprintf("run-%d", time.Now().UnixNano()),
		ReportDir:   *reportDir,
		LabelFilter: *labels,
		Focus:       focus,
		Skip:        skip,
		Timeout:     *timeout,
		Verbose:     *verbose,
	})
	if err != nil {
		return 2, err
	}
	js := exp.Judge(rep.Outcomes)
	fmt.Fprintf(stdout, "\ntarget: %s\n", rep.Target)
	if exp != nil {
		fmt.Fprintf(stdout, "expectations: %s\n", exp.Path)
	}
	report.Summary(stdout, "streaming", js, streaming.Categories)
	if rep.JUnitPath != "" {
		fmt.Fprintf(stdout, "JUnit: %s\n", rep.JUnitPath)
	}
	if len(js) == 0 {
		fmt.Fprintln(stderr, "gauntlet: no check ran (setup failed or everything was filtered out)")
		return 1, nil
	}
	if !expectations.OK(js) {
		return 1, nil
	}
	return 0, nil
}

func loadExpectations(path string, embedded bool) (*expectations.File, error) {
	switch {
	case path == "none":
		return nil, nil
	case path != "":
		return expectations.Load(path)
	case embedded:
		b, err := builtin.Builtin("reference")
		if err != nil {
			return nil, err
		}
		return expectations.Parse(b, "built-in expectations/reference.yaml")
	}
	return nil, nil
}

func fakeRuntime(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gauntlet fake-runtime", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "unix:///tmp/gauntlet-fake.sock", "CRI endpoint to serve")
	faults := fs.String("faults", "", "comma-separated faults to inject (see --list-faults)")
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
		for _, f := range cri.Faults() {
			fmt.Fprintf(stdout, "%-30s %s\n", f, f.Describe())
		}
		return nil
	}
	opts := cri.DefaultOptions()
	fl, err := cri.ParseFaults(*faults)
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
