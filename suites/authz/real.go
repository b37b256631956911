package authz

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gauntlet-conformance/gauntlet/suites/authz/probe"
)

// WebhookTarget describes a real webhook under test. certFile/keyFile (the
// client certificate the webhook expects) and caFile are optional.
func WebhookTarget(url, certFile, keyFile, caFile string, timeout time.Duration) (*WebhookSettings, error) {
	if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") {
		return nil, fmt.Errorf("--authorizer-webhook %q: want an http(s) URL such as https://127.0.0.1:8443/authorize", url)
	}
	if timeout <= 0 || timeout > 30*time.Second {
		return nil, fmt.Errorf("--authorizer-webhook-timeout %s: want the webhook's configured timeout, in (0, 30s]", timeout)
	}
	c, err := tlsConfig(certFile, keyFile, caFile, "--authorizer-client-cert", "--authorizer-client-key", "--authorizer-ca")
	if err != nil {
		return nil, err
	}
	return &WebhookSettings{Name: "webhook at " + url, URL: url, TLS: c, Timeout: timeout}, nil
}

func tlsConfig(certFile, keyFile, caFile, certFlag, keyFlag, caFlag string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%s and %s go together: pass both or neither", certFlag, keyFlag)
	}
	if certFile != "" {
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%s %s / %s %s: %v", certFlag, certFile, keyFlag, keyFile, err)
		}
		c.Certificates = []tls.Certificate{kp}
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", caFlag, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s %s holds no PEM certificate", caFlag, caFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// RealChain describes a kube-apiserver started with the AuthorizationConfiguration
// that `gauntlet authz-webhooks --dir webhooksDir` wrote: kubeconfig is an
// admin kubeconfig (a system:masters user creates the reviews and reads
// /metrics); apiserverBinary, when set, is the kube-apiserver binary whose
// start-up validation AZ12 exercises.
func RealChain(ctx context.Context, kubeconfig, webhooksDir, apiserverBinary string) (*ChainSettings, *probe.State, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("--authorizer-chain-kubeconfig %s: %v", kubeconfig, err)
	}
	st, err := probe.ReadState(webhooksDir)
	if err != nil {
		return nil, nil, fmt.Errorf("--authorizer-webhooks-dir %s: %v (start `gauntlet authz-webhooks --dir %s` first)", webhooksDir, err, webhooksDir)
	}
	probeTLS, err := tlsConfig(st.ClientCert, st.ClientKey, st.CAFile, "state clientCert", "state clientKey", "state caFile")
	if err != nil {
		return nil, nil, fmt.Errorf("--authorizer-webhooks-dir %s: %v", webhooksDir, err)
	}
	base, err := os.ReadFile(st.ConfigFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--authorizer-webhooks-dir %s: %v", webhooksDir, err)
	}
	if apiserverBinary != "" {
		if fi, err := os.Stat(apiserverBinary); err != nil || fi.Mode()&0o111 == 0 {
			return nil, nil, fmt.Errorf("--authorizer-apiserver-binary %s is not an executable file (build one with hack/k8s/build.sh kube-apiserver)", apiserverBinary)
		}
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("--authorizer-chain-kubeconfig %s: %v", kubeconfig, err)
	}
	cfg := &realConfig{file: st.ConfigFile, base: base, host: strings.TrimSuffix(rc.Host, "/"), http: hc, binary: apiserverBinary}
	version := cfg.version(ctx)
	return &ChainSettings{
		Name: fmt.Sprintf("kube-apiserver %s at %s", version, rc.Host), REST: rc,
		Probes: st.Chain, ProbeTLS: probeTLS, Timing: st.Timing, Config: cfg,
		// fsnotify usually reports a change at once; kube-apiserver also
		// polls the file every minute.
		ReloadWait: 75 * time.Second,
	}, &st, nil
}

// realConfig reaches a real kube-apiserver's configuration file, its
// reload metrics and its binary.
type realConfig struct {
	file, host, binary string
	base               []byte
	http               *http.Client
}

func (c *realConfig) Base() []byte { return append([]byte(nil), c.base...) }

func (c *realConfig) Write(_ context.Context, data []byte) error {
	return probe.WriteFileAtomic(c.file, data)
}

func (c *realConfig) get(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.host+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, strings.TrimSpace(b.String()))
	}
	return b.Bytes(), nil
}

func (c *realConfig) version(ctx context.Context) string {
	b, err := c.get(ctx, "/version")
	if err != nil {
		return "(version unknown)"
	}
	const key = `"gitVersion": "`
	if i := bytes.Index(b, []byte(key)); i >= 0 {
		rest := b[i+len(key):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			return string(rest[:j])
		}
	}
	return "(version unknown)"
}

// reloadMetric is kube-apiserver's count of automatic reloads of the
// authorization configuration, by status (k8s.io/apiserver
// pkg/server/options/authorizationconfig/metrics).
const reloadMetric = "apiserver_authorization_config_controller_automatic_reloads_total"

func (c *realConfig) Reloads(ctx context.Context) (ok, failed int, err error) {
	b, err := c.get(ctx, "/metrics")
	if err != nil {
		return 0, 0, fmt.Errorf("read the reload metrics: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, reloadMetric+"{") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return 0, 0, fmt.Errorf("metric line %q: %v", line, err)
		}
		switch {
		case strings.Contains(line, `status="success"`):
			ok += int(v)
		case strings.Contains(line, `status="failure"`):
			failed += int(v)
		}
	}
	return ok, failed, sc.Err()
}

// authzErrorMarkers are what kube-apiserver prints when it rejects an
// --authorization-config file (field paths of validation errors, or the
// loader's error).
var authzErrorMarkers = []string{"authorizers[", "AuthorizationConfiguration"}

// Startup runs the kube-apiserver binary with data as --authorization-config
// and no etcd it can reach: the configuration is validated while the
// options are (before any storage), so an invalid one makes it exit naming
// the file's fields. A valid one gets further and fails, or keeps waiting
// for etcd, for other reasons; either way it names no authorizer field.
func (c *realConfig) Startup(ctx context.Context, data []byte) (bool, string, error) {
	if c.binary == "" {
		return false, "", ErrNoStartup
	}
	dir, err := os.MkdirTemp("", "gauntlet-az12-")
	if err != nil {
		return false, "", err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "authorization-config.yaml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return false, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.binary, "--authorization-config="+file, "--etcd-servers=http://127.0.0.1:1",
		"--bind-address=127.0.0.1", "--secure-port=0", "--cert-dir="+filepath.Join(dir, "certs"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	text := out.String()
	for _, m := range authzErrorMarkers {
		if i := strings.Index(text, m); i >= 0 {
			if runErr == nil {
				return false, "", fmt.Errorf("kube-apiserver printed an authorization configuration error but exited 0: %s", lineAround(text, i))
			}
			return false, lineAround(text, i), nil
		}
	}
	var ee *exec.ExitError
	if runErr != nil && !errors.As(runErr, &ee) && ctx.Err() == nil {
		return false, "", fmt.Errorf("run %s: %w", c.binary, runErr)
	}
	return true, "", nil
}

// lineAround is the rest of s's line from i (the error, not the log prefix).
func lineAround(s string, i int) string {
	s = s[i:]
	if end := strings.IndexByte(s, '\n'); end >= 0 {
		s = s[:end]
	}
	return s
}
