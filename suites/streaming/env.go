package streaming

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"

	"github.com/gauntlet-conformance/gauntlet/fakes/cri"
	"github.com/gauntlet-conformance/gauntlet/internal/cricli"
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

// Config is what a run is pointed at.
type Config struct {
	RuntimeEndpoint       string
	ImageEndpoint         string
	TestImagesFile        string
	Capabilities          []Feature
	StreamCreationTimeout time.Duration // the runtime's; 30 s in containerd and CRI-O
	StreamIdleTimeout     time.Duration // the runtime's, when stated (feature idle-timeout)
	TokenTTL              time.Duration // the runtime's token lifetime; 1 min in the library
	RuntimePID            int           // enables process-stats from /proc
	ConnectTimeout        time.Duration
	// StreamCAFile is a PEM bundle the stream server's certificate must
	// verify against, in addition to the system roots (G2, https streams).
	StreamCAFile string
	// FakeOptions override the embedded reference runtime's options (tests).
	FakeOptions *cri.Options
}

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

// ParseCapabilities parses "v5,authorize-stream".
func ParseCapabilities(s string) ([]Feature, error) {
	var out []Feature
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if _, ok := KnownFeatures[Feature(f)]; !ok {
			known := make([]string, 0, len(KnownFeatures))
			for k := range KnownFeatures {
				known = append(known, string(k))
			}
			return nil, fmt.Errorf("unknown capability %q (known: %s)", f, strings.Join(known, ", "))
		}
		out = append(out, Feature(f))
	}
	return out, nil
}

// Env is the target a run talks to, plus its fixtures.
type Env struct {
	Cfg      Config
	Client   *cricli.Client
	Tracker  *cricli.Tracker
	Image    string
	Fake     *cri.Runtime // the embedded reference runtime, when no endpoint was given
	Embedded bool
	features map[Feature]bool
	// Note records an observation in the report (informational checks).
	Note func(name, value string)

	fixOnce sync.Once
	fix     *Fixture
	fixErr  error
	hostMu  sync.Mutex
	host    *Fixture
	// streamCA is PEM the stream certificate may chain to (G2).
	streamCA []byte
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

// NewEnv dials the runtime, or starts the embedded reference runtime when no
// endpoint is configured. Errors wrap cricli.ErrEndpoint when the runtime
// cannot be reached.
func NewEnv(ctx context.Context, cfg Config, runID string) (*Env, error) {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Minute
	}
	if cfg.StreamCreationTimeout == 0 {
		cfg.StreamCreationTimeout = 30 * time.Second
	}
	e := &Env{Cfg: cfg, Image: DefaultImage, features: map[Feature]bool{}, Note: func(string, string) {}}
	if cfg.TestImagesFile != "" {
		ti, err := LoadTestImages(cfg.TestImagesFile)
		if err != nil {
			return nil, err
		}
		e.Image = ti.DefaultTestContainerImage
	}
	endpoint := cfg.RuntimeEndpoint
	if endpoint == "" {
		opts := cri.DefaultOptions()
		if cfg.FakeOptions != nil {
			opts = *cfg.FakeOptions
		}
		fake, err := cri.Start("", opts)
		if err != nil {
			return nil, fmt.Errorf("start the reference runtime: %w", err)
		}
		e.Fake, e.Embedded = fake, true
		endpoint = fake.Endpoint()
		e.Cfg.StreamCreationTimeout = opts.StreamCreationTimeout
		e.Cfg.StreamIdleTimeout = opts.StreamIdleTimeout
		e.Cfg.TokenTTL = time.Minute // the library's fixed TTL
		if opts.OwnTokens() && opts.TokenTTL != 0 {
			e.Cfg.TokenTTL = opts.TokenTTL
		}
		for _, f := range []Feature{FeatureProcessStats, FeatureIdleTimeout, FeatureHostNetwork} {
			e.features[f] = true
		}
		if opts.ServeV5 && !opts.TLS {
			e.features[FeatureV5] = true
		}
		if opts.TLS {
			e.features[FeatureTLS] = true
			e.streamCA = fake.StreamCA()
		}
		if opts.Authorize != nil {
			e.features[FeatureAuthorizeStream] = true
		} else {
			e.features[FeatureNoAuthorize] = true
		}
	}
	for _, f := range cfg.Capabilities {
		e.features[f] = true
	}
	if cfg.StreamCAFile != "" {
		b, err := os.ReadFile(cfg.StreamCAFile)
		if err != nil {
			if e.Fake != nil {
				e.Fake.Close()
			}
			return nil, fmt.Errorf("--stream-ca-file: %w", err)
		}
		e.streamCA = append(e.streamCA, b...)
	}
	if cfg.StreamIdleTimeout > 0 {
		e.features[FeatureIdleTimeout] = true
	}
	if cfg.RuntimePID > 0 {
		e.features[FeatureProcessStats] = true
	}
	c, err := cricli.Dial(ctx, endpoint, cfg.ConnectTimeout)
	if err != nil {
		if e.Fake != nil {
			e.Fake.Close()
		}
		return nil, err
	}
	e.Client = c
	e.Tracker = c.NewTracker(runID)
	return e, nil
}

// Close removes everything the run created and stops the embedded runtime.
func (e *Env) Close(ctx context.Context) error {
	var errs []error
	if e.Tracker != nil {
		errs = append(errs, e.Tracker.Cleanup(ctx))
	}
	if e.Client != nil {
		errs = append(errs, e.Client.Close())
	}
	if e.Fake != nil {
		errs = append(errs, e.Fake.Close())
	}
	return errors.Join(errs...)
}

// Has reports whether a feature is declared or discovered.
func (e *Env) Has(f Feature) bool { return e.features[f] }

// Features lists the declared/discovered features.
func (e *Env) Features() []Feature {
	var out []Feature
	for f, ok := range e.features {
		if ok {
			out = append(out, f)
		}
	}
	return out
}

// Require returns a skip naming the feature when it is absent.
func (e *Env) Require(f Feature) error {
	if e.Has(f) {
		return nil
	}
	return Skip(f, "%s not declared", KnownFeatures[f])
}

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
	if err := e.Client.EnsureImage(ctx, e.Image); err != nil {
		return nil, err
	}
	sb, sbCfg, err := e.Tracker.RunSandbox(ctx, cricli.SandboxOptions{Name: name, HostNetwork: hostNet})
	if err != nil {
		return nil, err
	}
	ct, err := e.Tracker.StartContainer(ctx, sb, sbCfg, cricli.ContainerOptions{Name: "main", Image: e.Image, Command: fixtureCommand(echo, http)})
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
		Name: o.Name, Image: e.Image, Command: o.Command, Stdin: o.Stdin, StdinOnce: o.StdinOnce, TTY: o.TTY,
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
	if len(e.streamCA) > 0 {
		roots.AppendCertsFromPEM(e.streamCA)
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// spdyOptions are the raw SPDY client's options for this target.
func (e *Env) spdyOptions() spdyconn.Options {
	if len(e.streamCA) == 0 {
		return spdyconn.Options{}
	}
	return spdyconn.Options{TLSConfig: e.clientTLS()}
}
