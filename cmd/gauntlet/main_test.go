package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/fakes/cri"
	"github.com/gauntlet-conformance/gauntlet/internal/cricli"
)

// TestMain lets the tests run the CLI as a child process (the test binary
// re-executed with GAUNTLET_TEST_MAIN=1), so signals and exit codes are real.
func TestMain(m *testing.M) {
	if os.Getenv("GAUNTLET_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func gauntlet(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "GAUNTLET_TEST_MAIN=1")
	return cmd
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// Bad input gets one line naming what and how to fix it, exit 2, at once.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("checks: [nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	otherSuite := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(otherSuite, []byte("suite: meshauthz\ntarget: x\nchecks: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unknownID := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknownID, []byte("suite: streaming\ntarget: x\nchecks:\n  Z99: {reason: r, link: l}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing socket", []string{"run", "streaming", "--runtime-endpoint", "unix:///nonexistent.sock"}, "unix:///nonexistent.sock"},
		{"bad scheme", []string{"run", "streaming", "--runtime-endpoint", "http://x"}, "http://x"},
		{"unknown flag", []string{"run", "streaming", "--no-such-flag"}, "no-such-flag"},
		{"unknown capability", []string{"run", "streaming", "--capabilities", "warp-drive"}, "warp-drive"},
		{"unreadable expectations", []string{"run", "streaming", "--expectations", filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
		{"malformed expectations", []string{"run", "streaming", "--expectations", bad}, "bad.yaml"},
		{"stream CA not PEM", []string{"run", "streaming", "--runtime-endpoint", "unix:///nonexistent.sock", "--stream-ca-file", bad}, "bad.yaml"},
		{"real-runtime flag without endpoint", []string{"run", "streaming", "--runtime-pid", "1"}, "--runtime-endpoint"},
		{"unknown suite", []string{"run", "warp"}, "available: "},
		{"suite expectations for another suite", []string{"run", "streaming", "--expectations", otherSuite}, "not \"streaming\""},
		{"unknown check in expectations", []string{"run", "streaming", "--expectations", unknownID}, "Z99"},
		{"bad rerun report", []string{"run", "streaming", "--rerun-failed", bad}, "bad.yaml"},
		{"credprovider fake GCE without a plugin", []string{"run", "credprovider", "--plugin-fake-gce"}, "pass --plugin too"},
		{"unknown fault", []string{"fake-runtime", "--listen", "unix://" + filepath.Join(dir, "s.sock"), "--faults", "no-such-fault"}, "no-such-fault"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := gauntlet(tc.args...)
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v, want < 5s", took)
			}
			if code := exitCode(err); code != 2 {
				t.Errorf("exit code %d, want 2 (stderr %q)", code, stderr.String())
			}
			msg := strings.TrimSpace(stderr.String())
			if !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q does not name %q", msg, tc.want)
			}
			if tc.name == "missing socket" && strings.Count(msg, "\n") > 0 {
				t.Errorf("want one line, got %q", msg)
			}
		})
	}
}

// TestInterruptNeverGreen: SIGINT or SIGTERM in the middle of a check that
// the expectations list as failing ends the run within seconds with exit 3,
// says the run did not finish, reports the checks that never started as
// not-run, and removes every sandbox and container the suite created.
func TestInterruptNeverGreen(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CLI as a child process")
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			interruptRun(t, sig)
		})
	}
}

func interruptRun(t *testing.T, sig syscall.Signal) {
	dir := t.TempDir()
	endpoint := "unix://" + filepath.Join(dir, "cri.sock")
	r, err := cri.Start(endpoint, cri.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	client, err := cricli.Dial(ctx, endpoint, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	exp := filepath.Join(dir, "exp.yaml")
	if err := os.WriteFile(exp, []byte("suite: streaming\ntarget: reference\nchecks:\n  C12: {reason: the library keeps the connection, link: https://example.test}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	// C12 waits creation timeout + 5 s for the runtime: the interrupt lands
	// inside it; with --parallel 1 the others have not started.
	cmd := gauntlet("run", "streaming", "--runtime-endpoint", endpoint, "--focus", `\[C12\]`, "--focus", `\[C1\]`, "--focus", `\[D1\]`,
		"--parallel", "1", "--stream-creation-timeout", "5s", "--expectations", exp, "--report-dir", filepath.Join(dir, "reports"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// Wait until the fixture exists and C12 is running.
	for {
		sbs, err := client.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err == nil && len(sbs.Items) > 0 {
			cs, err := client.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
			if err == nil && len(cs.Containers) > 0 {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the run ended before the fixture existed: %v\n%s", err, out.String())
		case <-ctx.Done():
			t.Fatalf("no fixture after 90s\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	time.Sleep(2 * time.Second)
	start := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if code := exitCode(err); code != 3 {
			t.Errorf("an interrupted run exited %d, want 3\n%s", code, out.String())
		}
		t.Logf("exited %d %v after %s", exitCode(err), time.Since(start), sig)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill() //nolint:errcheck
		t.Fatalf("still running 30s after %s\n%s", sig, out.String())
	}
	for _, want := range []string{"did not finish", "not-run:", "interrupted:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, out.String())
		}
	}
	sbs, err := client.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := client.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sbs.Items) != 0 || len(cs.Containers) != 0 {
		t.Errorf("after %s %d sandboxes and %d containers remain\n%s", sig, len(sbs.Items), len(cs.Containers), out.String())
	}
}

// TestGreenRunReadsGreen: the embedded run exits 0, lists expected failures
// as xfail and prints no FAIL line; its JSON report drives --rerun-failed.
func TestGreenRunReadsGreen(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CLI as a child process")
	}
	dir := t.TempDir()
	var out bytes.Buffer
	cmd := gauntlet("run", "streaming", "--focus", `\[(A1|A10|C11|B1)\]`, "--report-dir", dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("exit %d\n%s", exitCode(err), out.String())
	}
	if strings.Contains(out.String(), "FAIL") {
		t.Errorf("a green run printed FAIL:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "xfail  [C11]") {
		t.Errorf("C11 not shown as xfail:\n%s", out.String())
	}
	out.Reset()
	cmd = gauntlet("run", "streaming", "--rerun-failed", filepath.Join(dir, "streaming.json"), "--report-dir", dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "nothing to rerun") {
		t.Errorf("rerun of a green report: exit %d\n%s", exitCode(err), out.String())
	}
}

func TestList(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"run", "streaming", "--list", "--label-filter", "hostile"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, id := range []string{"G3 ", "G4 ", "D11 "} {
		if !strings.Contains(out.String(), id) {
			t.Errorf("--list --label-filter hostile misses %s:\n%s", id, out.String())
		}
	}
	if strings.Contains(out.String(), "A1 ") {
		t.Errorf("--list ignores the label filter:\n%s", out.String())
	}
}

// TestCommittedExpectations: every expectations file in the repository
// names a registered suite and only checks (and cases) that suite has.
func TestCommittedExpectations(t *testing.T) {
	files, err := filepath.Glob("../../expectations/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no expectations files found: %v", err)
	}
	for _, f := range files {
		x, err := conformance.LoadExpectations(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		entry, ok := suites[x.Suite]
		if !ok {
			t.Errorf("%s: suite %q is not registered (have %v)", f, x.Suite, suiteNames())
			continue
		}
		if err := x.Validate(x.Suite, entry.Suite.Infos()); err != nil {
			t.Error(err)
		}
	}
}

// TestCatalogueDocs: docs/checks/SUITE.md is what `gauntlet catalogue SUITE`
// prints (regenerate with `make docs`).
func TestCatalogueDocs(t *testing.T) {
	for _, name := range suiteNames() {
		var out, errb bytes.Buffer
		if code := run([]string{"catalogue", name}, &out, &errb); code != 0 {
			t.Fatalf("catalogue %s: exit %d: %s", name, code, errb.String())
		}
		want, err := os.ReadFile(filepath.Join("../../docs/checks", name+".md"))
		if err != nil {
			t.Errorf("%v: run `make docs`", err)
			continue
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("docs/checks/%s.md is stale: run `make docs`", name)
		}
	}
}
