package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/reports"
)

var implFlags = []string{"--implementation-organization", "acme", "--implementation-project", "acme mesh",
	"--implementation-url", "https://acme.example/mesh", "--implementation-version", "v0.0.1-test",
	"--implementation-contact", "@acme/mesh"}

// TestMeshDriverGRPCOnly: `run meshauthz --mesh-driver "gauntlet mesh-driver
// --protocols GRPC"` is green, names the checks it skipped for the protocols
// the driver does not serve, and writes a certification report with a
// partial core.
func TestMeshDriverGRPCOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CLI and a driver as child processes")
	}
	t.Parallel()
	dir := t.TempDir()
	var out bytes.Buffer
	start := time.Now()
	cmd := gauntlet(append([]string{"run", "meshauthz", "--report-dir", dir,
		"--mesh-driver", os.Args[0] + " mesh-driver --protocols GRPC"}, implFlags...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("exit %d\n%s", exitCode(err), out.String())
	}
	t.Logf("took %s", time.Since(start))
	for id, f := range map[string]string{"MA21": "MeshProtocolHTTP", "MA23": "MeshProtocolTCP", "MX24": "MeshProtocolHTTP", "MX26": "MeshProtocolTCP"} {
		found := false
		for _, l := range strings.Split(out.String(), "\n") {
			found = found || (strings.Contains(l, "skip") && strings.Contains(l, "["+id+"]") && strings.Contains(l, f))
		}
		if !found {
			t.Errorf("no skip line for %s naming %s:\n%s", id, f, out.String())
		}
	}
	if strings.Contains(out.String(), "FAIL") {
		t.Errorf("a green run printed FAIL:\n%s", out.String())
	}
	c := readCertification(t, dir)
	core := c.Profiles[0].Core
	if c.Target.Embedded || c.Implementation.Project != "acme mesh" || core.Result != reports.ResultPartial ||
		!slices.Equal(core.SkippedTests, []string{"MA21", "MA23"}) {
		t.Errorf("certification report: target %+v, implementation %+v, core %+v", c.Target, c.Implementation, core)
	}
}

// TestMeshDriverBroken: a driver that exits at startup or prints garbage
// ends the run at once with exit 2 and one line saying why.
func TestMeshDriverBroken(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CLI as a child process")
	}
	t.Parallel()
	tests := []struct {
		name, driver string
		extra        []string
		want         []string
	}{
		{"exits at startup", os.Args[0] + " mesh-driver --protocols SCTP", implFlags, []string{"exit status 2", `unknown protocol "SCTP"`}},
		{"prints garbage", "echo Starting the driver", implFlags, []string{"broke the protocol", "Starting the driver"}},
		{"not an executable", "/nonexistent/mesh-driver", implFlags, []string{"/nonexistent/mesh-driver is not an executable"}},
		{"two meshes", "true", append([]string{"--mesh-kubeconfig", "/nonexistent"}, implFlags...), []string{"--mesh-driver and --mesh-kubeconfig"}},
		{"no implementation", "true", nil, []string{"--mesh-driver", "--implementation-organization"}},
		{"undeclared protocol", os.Args[0] + " mesh-driver --protocols GRPC", append([]string{"--features", "MeshProtocolTCP"}, implFlags...), []string{"MeshProtocolTCP", "serves only GRPC"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"run", "meshauthz", "--report-dir", t.TempDir(), "--mesh-driver", tc.driver}, tc.extra...)
			var stderr bytes.Buffer
			cmd := gauntlet(args...)
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %s", d)
			}
			msg := strings.TrimSpace(stderr.String())
			if exitCode(err) != 2 || strings.Count(msg, "\n") > 0 {
				t.Errorf("exit %d, stderr %q: want exit 2 and one line", exitCode(err), msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr %q does not say %q", msg, w)
				}
			}
		})
	}
}

// TestMeshDriverInterrupt: SIGINT while the suite drives an exec driver
// ends the run with exit 3, after the fixtures were cleaned up through the
// driver, and leaves no driver process behind.
func TestMeshDriverInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CLI and a driver as child processes")
	}
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "driver.pid")
	wrap := filepath.Join(dir, "driver.sh")
	if err := os.WriteFile(wrap, []byte("#!/bin/sh\necho $$ > "+pidFile+"\nexec \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	// The baseline hook holds the run in Prepare, with every fixture
	// deployed, until the interrupt.
	cmd := gauntlet(append([]string{"run", "meshauthz", "--report-dir", filepath.Join(dir, "reports"),
		"--mesh-driver", wrap + " " + os.Args[0] + " mesh-driver", "--baseline-hook", "sleep 60"}, implFlags...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	pid := 0
	deadline := time.Now().Add(30 * time.Second)
	for pid == 0 || !strings.Contains(out.String(), "parallel") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the driver did not start\n%s", out.String())
		}
		if b, err := os.ReadFile(pidFile); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // the fixtures are being deployed, then the hook runs
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if code := exitCode(err); code != 3 {
			t.Errorf("exit %d, want 3\n%s", code, out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running 30 s after SIGINT\n%s", out.String())
	}
	if err := syscall.Kill(pid, 0); err == nil {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the driver (pid %d) survived the interrupted run\n%s", pid, out.String())
	}
	if strings.Contains(out.String(), "cleanup:") {
		t.Errorf("the cleanup through the driver failed:\n%s", out.String())
	}
}
