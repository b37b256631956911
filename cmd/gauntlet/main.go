// Command gauntlet runs Gauntlet's conformance suites and serves its
// reference targets.
//
//	gauntlet run SUITE [flags]        run a suite (embedded reference target unless one is named)
//	gauntlet fake-runtime [flags]     serve the reference CRI runtime
//
// Exit codes: 0 every selected check passed (or failed as expected),
// 1 a check failed, errored or passed unexpectedly, 2 usage or connection
// error, 3 the run did not finish (interrupted, or --timeout expired).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	builtin "github.com/gauntlet-conformance/gauntlet/expectations"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/reports"
)

func usage() string {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, n := range suiteNames() {
		fmt.Fprintf(&b, "  gauntlet run %-14s %s\n", n, suites[n].Doc)
	}
	b.WriteString("  gauntlet fake-runtime         serve the reference CRI runtime on a socket (for crictl/critest)\n")
	b.WriteString("  gauntlet catalogue SUITE      print the suite's check catalogue (Markdown)\n")
	b.WriteString("  gauntlet suites               list the suites\n")
	for n := range extraCommands {
		fmt.Fprintf(&b, "  gauntlet %s\n", n)
	}
	b.WriteString("  gauntlet help                 this text\nRun 'gauntlet run SUITE -h' for flags.")
	return b.String()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a bad invocation or an unreachable target: exit 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 3
)

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage())
		return exitUsage
	}
	var err error
	code := exitOK
	switch args[0] {
	case "run":
		code, err = runSuite(args[1:], stdout, stderr)
	case "fake-runtime":
		err = fakeRuntime(args[1:], stdout, stderr)
	case "suites":
		fmt.Fprintln(stdout, strings.Join(suiteNames(), "\n"))
		return exitOK
	case "catalogue":
		if len(args) != 2 || suites[args[1]].Suite == nil {
			err = usageError{"usage: gauntlet catalogue SUITE (one of " + strings.Join(suiteNames(), ", ") + ")"}
			break
		}
		cat, _ := faults.For(args[1])
		reports.Catalogue(stdout, suites[args[1]].Suite, cat)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage())
		return exitOK
	default:
		if cmd, ok := extraCommands[args[0]]; ok {
			return cmd(args[1:], stdout, stderr)
		}
		err = usageError{fmt.Sprintf("unknown command %q (want run, fake-runtime or help)", args[0])}
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "gauntlet: %v\n", err)
		return exitUsage
	}
	return code
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// runSuite is the one code path every suite runs through.
func runSuite(args []string, stdout, stderr io.Writer) (int, error) {
	names := strings.Join(suiteNames(), ", ")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return exitUsage, usageError{"gauntlet run: name a suite: " + names}
	}
	entry, ok := suites[args[0]]
	if !ok {
		return exitUsage, usageError{fmt.Sprintf("unknown suite %q; available: %s", args[0], names)}
	}
	s := entry.Suite
	fs := flag.NewFlagSet("gauntlet run "+s.SuiteName(), flag.ContinueOnError)
	fs.SetOutput(stderr)
	reportDir := fs.String("report-dir", "reports", "directory for the JUnit XML and JSON reports")
	labels := fs.String("label-filter", "", "label filter (Ginkgo syntax), e.g. '!Slow && websocket'; labels are listed by --list")
	var focus, skip listFlag
	fs.Var(&focus, "focus", "run only checks whose title matches this regexp (repeatable), e.g. '\\[C7\\]'")
	fs.Var(&skip, "skip", "skip checks whose title matches this regexp (repeatable)")
	parallel := fs.Int("parallel", conformance.DefaultParallel(), "checks run at once (checks marked Serial always run alone, after the others)")
	timeout := fs.Duration("timeout", time.Hour, "bound on the whole run; a run that hits it exits 3")
	expFile := fs.String("expectations", "", "known-deviations YAML (default for the embedded target: the built-in reference file; 'none' disables)")
	var featureList string
	known := make([]string, 0, len(s.KnownFeatures()))
	for _, f := range s.KnownFeatures() {
		known = append(known, string(f.Name))
	}
	fs.StringVar(&featureList, "features", "", "declared optional features, comma-separated: "+strings.Join(known, ","))
	list := fs.Bool("list", false, "print ID, name and labels of the selected checks, and exit")
	rerun := fs.String("rerun-failed", "", "a JSON report of an earlier run (REPORT-DIR/SUITE.json): run only what it judged red")
	verbose := fs.Bool("v", false, "print every check's notes and cases")
	makeTarget := entry.Flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, err
		}
		return exitUsage, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return exitUsage, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	sel, err := selector(*labels, focus, skip)
	if err != nil {
		return exitUsage, err
	}
	if *rerun != "" {
		prev, err := reports.ReadJSON(*rerun)
		if err != nil {
			return exitUsage, usageError{"--rerun-failed: " + err.Error()}
		}
		if prev.Suite != s.SuiteName() {
			return exitUsage, usageError{fmt.Sprintf("--rerun-failed %s is a %s report, not %s", *rerun, prev.Suite, s.SuiteName())}
		}
		red := reports.Rerun(prev)
		if len(red) == 0 {
			fmt.Fprintf(stdout, "%s: nothing failed in %s; nothing to rerun\n", s.SuiteName(), *rerun)
			return exitOK, nil
		}
		inner := sel
		sel = func(i conformance.Info) bool { return red[i.ID] && inner(i) }
	}
	if *list {
		for _, c := range s.Infos() {
			if sel(c) {
				fmt.Fprintf(stdout, "%-5s %s  [%s]\n", c.ID, c.Name, strings.Join(c.AllLabels(), ","))
			}
		}
		return exitOK, nil
	}
	declared, err := conformance.ParseFeatures(featureList, s.KnownFeatures())
	if err != nil {
		return exitUsage, usageError{"--features: " + err.Error()}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	target, err := makeTarget(ctx, declared)
	if err != nil {
		return exitUsage, err
	}
	if target.Close != nil {
		defer target.Close()
	}
	exp, err := loadExpectations(*expFile, target.Embedded, entry.Reference)
	if err != nil {
		return exitUsage, err
	}
	if err := exp.Validate(s.SuiteName(), s.Infos()); err != nil {
		return exitUsage, usageError{err.Error()}
	}
	if err := os.MkdirAll(*reportDir, 0o755); err != nil {
		return exitUsage, usageError{"--report-dir: " + err.Error()}
	}
	fmt.Fprintf(stdout, "gauntlet %s against %s (parallel %d)\n", s.SuiteName(), target.Name, *parallel)
	rep, err := s.Execute(ctx, target, conformance.RunOptions{Parallel: *parallel, Select: sel, Timeout: *timeout,
		Progress: stdout, Expectations: exp})
	if err != nil {
		return exitUsage, usageError{err.Error()}
	}
	if *verbose {
		printDetails(stdout, rep)
	}
	reports.Summary(stdout, rep)
	junit, err := reports.WriteJUnit(*reportDir, rep)
	if err != nil {
		fmt.Fprintf(stderr, "gauntlet: JUnit: %v\n", err)
	}
	js, err := reports.WriteJSON(*reportDir, rep)
	if err != nil {
		fmt.Fprintf(stderr, "gauntlet: JSON report: %v\n", err)
	}
	for _, w := range entry.Writers {
		if p, err := w(*reportDir, rep); err != nil {
			fmt.Fprintf(stderr, "gauntlet: %v\n", err)
		} else if p != "" {
			fmt.Fprintf(stdout, "report: %s\n", p)
		}
	}
	fmt.Fprintf(stdout, "JUnit: %s\nJSON: %s\n", junit, js)
	switch {
	case rep.Interrupted != "":
		fmt.Fprintf(stderr, "gauntlet: the run did not finish (%s): never green\n", rep.Interrupted)
		return exitInterrupted, nil
	case !rep.OK():
		return exitFailed, nil
	}
	return exitOK, nil
}

// selector builds the check filter from --label-filter, --focus and --skip.
func selector(labels string, focus, skip []string) (func(conformance.Info) bool, error) {
	match := func([]string) bool { return true }
	if labels != "" {
		f, err := types.ParseLabelFilter(labels)
		if err != nil {
			return nil, usageError{"--label-filter: " + err.Error()}
		}
		match = f
	}
	compile := func(flagName string, l []string) ([]*regexp.Regexp, error) {
		var out []*regexp.Regexp
		for _, p := range l {
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, usageError{fmt.Sprintf("--%s %q: %v", flagName, p, err)}
			}
			out = append(out, re)
		}
		return out, nil
	}
	fo, err := compile("focus", focus)
	if err != nil {
		return nil, err
	}
	sk, err := compile("skip", skip)
	if err != nil {
		return nil, err
	}
	return func(i conformance.Info) bool {
		if !match(i.AllLabels()) {
			return false
		}
		t := i.Title()
		for _, re := range sk {
			if re.MatchString(t) {
				return false
			}
		}
		if len(fo) == 0 {
			return true
		}
		for _, re := range fo {
			if re.MatchString(t) {
				return true
			}
		}
		return false
	}, nil
}

func loadExpectations(path string, embedded bool, reference string) (*conformance.Expectations, error) {
	switch {
	case path == "none":
		return nil, nil
	case path != "":
		x, err := conformance.LoadExpectations(path)
		if err != nil {
			return nil, usageError{err.Error()}
		}
		return x, nil
	case embedded && reference != "":
		b, err := builtin.Builtin(reference)
		if err != nil {
			return nil, err
		}
		return conformance.ParseExpectations(b, "built-in expectations/"+reference+".yaml")
	}
	return nil, nil
}

func printDetails(w io.Writer, r *conformance.Report) {
	for _, res := range r.Results {
		if len(res.Notes) == 0 && len(res.Cases) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s\n", res.Title())
		for _, c := range res.Cases {
			fmt.Fprintf(w, "    case %-28s %-6s %s\n", c.Name, conformance.Word(c.Verdict), conformance.FirstLine(c.Message, 120))
		}
		for _, n := range res.Notes {
			fmt.Fprintf(w, "    %s: %s\n", n.Name, n.Value)
		}
	}
}
