package kind

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// run.sh cannot run here (no Docker), so these tests run it against stub
// tools on PATH that log their arguments: the order of the steps, the
// flags gauntlet gets, the exit status, and that the cluster is deleted
// on success, on failure and on SIGINT.

// stubs writes the stub tools into dir. Every stub logs "NAME ARGS" to
// $STUB_LOG. `go build -o F` writes a fake gauntlet at F that logs, sleeps
// $STUB_GAUNTLET_SLEEP and exits $STUB_GAUNTLET_RC; `go run ./hack/images`
// writes the archive; $STUB_FAIL names a "tool subcommand" that fails.
func stubs(t *testing.T, dir string) {
	t.Helper()
	common := `#!/bin/bash
echo "$(basename "$0") $*" >> "$STUB_LOG"
if [[ -n ${STUB_FAIL:-} && "$(basename "$0") $1" == "$STUB_FAIL" ]]; then echo "stub: $STUB_FAIL fails" >&2; exit 1; fi
`
	files := map[string]string{
		"docker":  common,
		"kubectl": common,
		"kind": common + `case "$1 $2" in
"get clusters") [[ -n ${STUB_EXISTING:-} ]] && echo "$STUB_EXISTING"; exit 0 ;;
esac
`,
		"istioctl": common + `[[ $1 == version ]] && echo "client version: 1.29.1"
exit 0
`,
		"linkerd": common + `[[ $1 == version ]] && echo "stable-2.18.0"
exit 0
`,
		"go": common + `case $1 in
build)
	out=$3
	cat > "$out" <<'GAUNTLET'
#!/bin/bash
echo "gauntlet $*" >> "$STUB_LOG"
sleep "${STUB_GAUNTLET_SLEEP:-0}"
exit "${STUB_GAUNTLET_RC:-0}"
GAUNTLET
	chmod +x "$out" ;;
run)
	mkdir -p "$4" && : > "$4/mesh-echo.oci.tar" ;;
esac
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

type result struct {
	code int
	log  []string
	out  string
}

// runScript runs run.sh with the stubs first on PATH (then the system's,
// for bash, mktemp, awk, ...).
func runScript(t *testing.T, env []string, interrupt time.Duration, args ...string) result {
	t.Helper()
	bin := t.TempDir()
	stubs(t, bin)
	logf := filepath.Join(t.TempDir(), "log")
	cmd := exec.Command("bash", append([]string{"run.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/bin:/bin", "STUB_LOG="+logf, "TMPDIR="+t.TempDir(),
		"REPORTS="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if interrupt > 0 {
		// Ctrl-C: SIGINT to the whole process group, as a terminal does.
		time.Sleep(interrupt)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("run.sh did not finish:\n%s", out.String())
	}
	b, _ := os.ReadFile(logf)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return result{code: cmd.ProcessState.ExitCode(), log: lines, out: out.String()}
}

func (r result) has(prefix string) bool {
	for _, l := range r.log {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func (r result) index(prefix string) int {
	for i, l := range r.log {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	return -1
}

func TestRunIstio(t *testing.T) {
	r := runScript(t, []string{"STUB_GAUNTLET_RC=1"}, 0, "istio", "--parallel", "4")
	if r.code != 1 {
		t.Fatalf("exit %d, want gauntlet's 1\n%s", r.code, r.out)
	}
	order := []string{"kind create cluster --name gauntlet-istio --config", "istioctl install -y", "kubectl -n istio-system rollout status",
		"go build -o", "go run ./hack/images --out", "kind load image-archive", "gauntlet run meshauthz", "kind delete cluster --name gauntlet-istio"}
	last := -1
	for _, step := range order {
		i := r.index(step)
		if i <= last {
			t.Fatalf("step %q missing or out of order in:\n%s", step, strings.Join(r.log, "\n"))
		}
		last = i
	}
	run := r.log[r.index("gauntlet run meshauthz")]
	for _, want := range []string{"--mesh-kubeconfig ", "--mesh-api istio", "--features AuthorizationPolicySPIFFE,", "AuthorizationPolicyDeny",
		"--implementation-organization Istio", "--implementation-url https://istio.io", "--implementation-version 1.29.1",
		"--implementation-contact https://github.com/istio/istio/issues", "--report-dir ", "--parallel 4"} {
		if !strings.Contains(run, want) {
			t.Errorf("gauntlet invocation lacks %q: %s", want, run)
		}
	}
}

func TestRunLinkerdFeaturesFromEnv(t *testing.T) {
	r := runScript(t, []string{"FEATURES=AuthorizationPolicyHTTP403"}, 0, "linkerd")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.out)
	}
	for _, want := range []string{"linkerd install --crds", "linkerd check --wait", "kind delete cluster --name gauntlet-linkerd"} {
		if !r.has(want) {
			t.Errorf("no %q in:\n%s", want, strings.Join(r.log, "\n"))
		}
	}
	run := r.log[r.index("gauntlet run meshauthz")]
	if !strings.Contains(run, "--mesh-api linkerd --features AuthorizationPolicyHTTP403 ") || !strings.Contains(run, "--implementation-version stable-2.18.0") {
		t.Errorf("gauntlet invocation: %s", run)
	}
}

func TestFailedInstallDeletesTheCluster(t *testing.T) {
	r := runScript(t, []string{"STUB_FAIL=istioctl install"}, 0, "istio")
	if r.code != 1 || !r.has("kind delete cluster") || r.has("gauntlet ") {
		t.Fatalf("exit %d, want 1 with the cluster deleted and no run:\n%s\n%s", r.code, strings.Join(r.log, "\n"), r.out)
	}
}

func TestInterruptDeletesTheCluster(t *testing.T) {
	r := runScript(t, []string{"STUB_GAUNTLET_SLEEP=30"}, 2*time.Second, "istio")
	if r.code != 130 || !r.has("kind delete cluster --name gauntlet-istio") {
		t.Fatalf("exit %d, want 130 with the cluster deleted:\n%s\n%s", r.code, strings.Join(r.log, "\n"), r.out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"no-mesh", nil, nil},
		{"unknown-mesh", nil, []string{"cilium"}},
		{"existing-cluster", []string{"STUB_EXISTING=gauntlet-istio"}, []string{"istio"}},
	} {
		r := runScript(t, tc.env, 0, tc.args...)
		if r.code != 2 || r.has("kind create") || r.has("kind delete") {
			t.Errorf("%s: exit %d, want 2 and no cluster created or deleted:\n%s\n%s", tc.name, r.code, strings.Join(r.log, "\n"), r.out)
		}
	}
}

func TestMissingToolIsAUsageError(t *testing.T) {
	bin := t.TempDir()
	stubs(t, bin)
	os.Remove(filepath.Join(bin, "kind"))
	cmd := exec.Command("bash", "run.sh", "istio")
	cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/bin:/bin", "STUB_LOG="+filepath.Join(t.TempDir(), "log"))
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "kind not found") {
		t.Errorf("without kind: exit %d (%v), want 2 naming kind:\n%s", code, err, out)
	}
}
