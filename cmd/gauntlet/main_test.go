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
		{"stream CA not PEM", []string{"run", "streaming", "--stream-ca-file", bad}, "bad.yaml"},
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

// TestInterruptCleansUp: SIGINT in the middle of a spec ends the run within
// seconds and removes every sandbox and container the suite created.
func TestInterruptCleansUp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CLI as a child process")
	}
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

	var out bytes.Buffer
	// C12 waits 40 s for the runtime: the interrupt lands inside the spec.
	cmd := gauntlet("run", "streaming", "--runtime-endpoint", endpoint, "--focus", `\[C12\]`,
		"--expectations", "none", "--report-dir", filepath.Join(dir, "reports"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// Wait until the fixture exists and the spec is running.
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
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if code := exitCode(err); code == 0 {
			t.Errorf("an interrupted run exited 0")
		}
		t.Logf("exited %d %v after SIGINT", exitCode(err), time.Since(start))
	case <-time.After(30 * time.Second):
		cmd.Process.Kill() //nolint:errcheck
		t.Fatalf("still running 30s after SIGINT\n%s", out.String())
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
		t.Errorf("after SIGINT %d sandboxes and %d containers remain\n%s", len(sbs.Items), len(cs.Containers), out.String())
	}
}
