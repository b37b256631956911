package streaming

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/internal/cricli"
	"github.com/gauntlet-conformance/gauntlet/internal/critarget"
	"github.com/gauntlet-conformance/gauntlet/internal/spdyconn"
)

// DefaultImage is used when no --test-images-file names one (critest's busybox).
const DefaultImage = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"

// Ports the fixture container listens on (busybox nc/httpd), and ports that
// must be closed / denied.
const (
	EchoPort     int32 = 7777 // nc -ll -p 7777 -e cat
	HTTPPort     int32 = 8080 // httpd -f -p 8080
	ClosedPort   int32 = 7779
	HostEchoPort int32 = 37777 // host-network sandbox
)

// TestImages is critest's --test-images-file format (keys we use).
type TestImages struct {
	DefaultTestContainerImage string `json:"defaultTestContainerImage"`
	WebServerTestImage        string `json:"webServerTestImage"`
}

// LoadTestImages reads a test-images-file.
func LoadTestImages(path string) (TestImages, error) {
	var ti TestImages
	b, err := os.ReadFile(path)
	if err != nil {
		return ti, fmt.Errorf("--test-images-file: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &ti); err != nil {
		// critest files carry more keys than we use; accept them.
		if err2 := yaml.Unmarshal(b, &ti); err2 != nil {
			return ti, fmt.Errorf("--test-images-file %s: %w", path, err2)
		}
	}
	if ti.DefaultTestContainerImage == "" {
		return ti, fmt.Errorf("--test-images-file %s: defaultTestContainerImage is empty", path)
	}
	return ti, nil
}

// Env is the target a run talks to, plus its fixtures.
type Env struct {
	Target   conformance.Target
	Cfg      critarget.Settings
	Client   *cricli.Client
	Image    *cricli.Client // the CRI image service (the runtime's unless --image-endpoint)
	Tracker  *cricli.Tracker
	ImageRef string

	fixOnce sync.Once
	fix     *Fixture
	fixErr  error
	hostMu  sync.Mutex
	host    *Fixture
}

// Fixture is the shared sandbox and long-running container most checks use.
type Fixture struct {
	SandboxID     string
	SandboxConfig *runtimeapi.PodSandboxConfig
	ContainerID   string
	HostNetwork   bool
}

// FixtureCommand keeps the container alive and listening for port-forward.
func fixtureCommand(echo, http int32) []string {
	return []string{"sh", "-c", fmt.Sprintf("nc -ll -p %d -e cat & httpd -f -p %d -h /tmp & exec sleep 86400", echo, http)}
}

// NewEnv dials the target's CRI endpoint (the suite's Setup). Errors wrap
// cricli.ErrEndpoint when the runtime cannot be reached.
func NewEnv(ctx context.Context, t conformance.Target) (*Env, error) {
	cfg, _ := t.Settings.(critarget.Settings)
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Minute // the library's fixed TTL
	}
	if cfg.StreamCreationTimeout == 0 {
		cfg.StreamCreationTimeout = 30 * time.Second
	}
	if t.Endpoint == "" {
		return nil, errors.New("the target names no CRI endpoint")
	}
	e := &Env{Target: t, Cfg: cfg, ImageRef: DefaultImage}
	if cfg.TestImagesFile != "" {
		ti, err := LoadTestImages(cfg.TestImagesFile)
		if err != nil {
			return nil, err
		}
		e.ImageRef = ti.DefaultTestContainerImage
	}
	c, err := cricli.Dial(ctx, t.Endpoint, cfg.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	e.Client, e.Image = c, c
	if cfg.ImageEndpoint != "" && cfg.ImageEndpoint != t.Endpoint {
		ic, err := cricli.Dial(ctx, cfg.ImageEndpoint, cfg.ConnectTimeout)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("--image-endpoint: %w", err)
		}
		e.Image = ic
	}
	e.Tracker = c.NewTracker(fmt.Sprintf("run-%d", time.Now().UnixNano()))
	return e, nil
}

// Close removes everything the run created.
func (e *Env) Close(ctx context.Context) error {
	var errs []error
	if e.Tracker != nil {
		errs = append(errs, e.Tracker.Cleanup(ctx))
	}
	if e.Image != nil && e.Image != e.Client {
		errs = append(errs, e.Image.Close())
	}
	if e.Client != nil {
		errs = append(errs, e.Client.Close())
	}
	return errors.Join(errs...)
}

// pairingBound is how long C12 and F6 give a runtime to give up on a
// stream pair after its creation timeout: 10 s of slack for real runtimes,
// proportionally less for short stated timeouts (the embedded target).
func (e *Env) pairingBound() time.Duration {
	slack := min(10*time.Second, max(2*time.Second, e.Cfg.StreamCreationTimeout))
	return e.Cfg.StreamCreationTimeout + slack
}

// Has reports whether the target declares a feature.
func (e *Env) Has(f conformance.Feature) bool { return e.Target.Has(f) }

// Fixture returns the shared sandbox + container, creating them once.
func (e *Env) Fixture(ctx context.Context) (*Fixture, error) {
	e.fixOnce.Do(func() {
		e.fix, e.fixErr = e.newFixture(ctx, "gauntlet-streaming", false, EchoPort, HTTPPort)
	})
	return e.fix, e.fixErr
}

// HostFixture returns a host-network sandbox + container (created on first use).
func (e *Env) HostFixture(ctx context.Context) (*Fixture, error) {
	e.hostMu.Lock()
	defer e.hostMu.Unlock()
	if e.host != nil {
		return e.host, nil
	}
	f, err := e.newFixture(ctx, "gauntlet-hostnet", true, HostEchoPort, HostEchoPort+1)
	if err != nil {
		return nil, err
	}
	e.host = f
	return f, nil
}

func (e *Env) newFixture(ctx context.Context, name string, hostNet bool, echo, http int32) (*Fixture, error) {
	if err := e.Image.EnsureImage(ctx, e.ImageRef); err != nil {
		return nil, err
	}
	sb, sbCfg, err := e.Tracker.RunSandbox(ctx, cricli.SandboxOptions{Name: name, HostNetwork: hostNet})
	if err != nil {
		return nil, err
	}
	ct, err := e.Tracker.StartContainer(ctx, sb, sbCfg, cricli.ContainerOptions{Name: "main", Image: e.ImageRef, Command: fixtureCommand(echo, http)})
	if err != nil {
		return nil, err
	}
	f := &Fixture{SandboxID: sb, SandboxConfig: sbCfg, ContainerID: ct, HostNetwork: hostNet}
	// The listeners start asynchronously; wait until nc answers.
	if err := waitListening(ctx, e, f, echo); err != nil {
		return nil, fmt.Errorf("fixture %s: %w", name, err)
	}
	return f, nil
}

// NewContainer starts an extra container in the shared sandbox (attach checks).
func (e *Env) NewContainer(ctx context.Context, o ContainerSpec) (string, error) {
	fx, err := e.Fixture(ctx)
	if err != nil {
		return "", err
	}
	return e.Tracker.StartContainer(ctx, fx.SandboxID, fx.SandboxConfig, cricli.ContainerOptions{
		Name: o.Name, Image: e.ImageRef, Command: o.Command, Stdin: o.Stdin, StdinOnce: o.StdinOnce, TTY: o.TTY,
	})
}

// ContainerSpec describes an extra container.
type ContainerSpec struct {
	Name      string
	Command   []string
	Stdin     bool
	StdinOnce bool
	TTY       bool
}

var nameSeq struct {
	sync.Mutex
	n int
}

// UniqueName returns prefix-N, unique within the process.
func UniqueName(prefix string) string {
	nameSeq.Lock()
	defer nameSeq.Unlock()
	nameSeq.n++
	return prefix + "-" + strconv.Itoa(nameSeq.n)
}

// clientTLS is how the harness verifies https stream URLs: the system roots
// plus --stream-ca-file (or the embedded runtime's CA). G2 reports a
// certificate that does not verify; the other checks then fail to connect.
func (e *Env) clientTLS() *tls.Config {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if len(e.Cfg.StreamCA) > 0 {
		roots.AppendCertsFromPEM(e.Cfg.StreamCA)
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// spdyOptions are the raw SPDY client's options for this target.
func (e *Env) spdyOptions() spdyconn.Options {
	if len(e.Cfg.StreamCA) == 0 {
		return spdyconn.Options{}
	}
	return spdyconn.Options{TLSConfig: e.clientTLS()}
}
