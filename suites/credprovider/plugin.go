package credprovider

// The plugin side (P checks): a plugin binary run exactly as the kubelet
// runs it (pkg/credentialprovider/plugin/plugin.go, execPlugin): binDir/name
// with the provider's args, the host environment followed by the provider's
// env (so the config wins), the CredentialProviderRequest encoded by the
// kubelet's codec on stdin, stdout and stderr buffered, a 1-minute
// deadline, and the response judged by the kubelet's strict decoder with
// its error wording. What the plugin promises beyond the kubelet API (which
// images are in scope, the service account to present, how long upstream
// credentials live) comes from a contract file.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kubeletconfigv1 "k8s.io/kubelet/config/v1"
	cpapi "k8s.io/kubelet/pkg/apis/credentialprovider"
	cpinstall "k8s.io/kubelet/pkg/apis/credentialprovider/install"
	"sigs.k8s.io/yaml"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/internal/satoken"
)

// Plugin features: derived from the plugin's config and contract by
// PluginFeatures (a target may also declare them with --features).
const (
	PluginFeatureServiceAccount         conformance.Feature = "plugin-service-account"
	PluginFeatureOptionalServiceAccount conformance.Feature = "plugin-optional-service-account"
	PluginFeatureCredentialLifetime     conformance.Feature = "plugin-credential-lifetime"
	PluginFeatureConfigEffect           conformance.Feature = "plugin-config-effect"
)

var pluginFeatures = []conformance.FeatureInfo{
	{Name: PluginFeatureServiceAccount, Doc: "the provider has tokenAttributes and the contract names a service account (KEP-4412)"},
	{Name: PluginFeatureOptionalServiceAccount, Doc: "tokenAttributes.requireServiceAccount is false and the contract states the answer without a token (noToken)"},
	{Name: PluginFeatureCredentialLifetime, Doc: "the contract names images whose upstream credential lifetime the target fixes (lifetimes)"},
	{Name: PluginFeatureConfigEffect, Doc: "the contract states what the configured args/env make the plugin return (username, passwordPrefix)"},
}

// PluginSettings names the plugin under test.
type PluginSettings struct {
	// Path is the plugin binary. The kubelet execs <bin dir>/<provider
	// name>, so the provider used is the one named after Path's base name.
	Path string
	// ConfigFile is a kubelet CredentialProviderConfig (a file).
	ConfigFile string
	// ContractFile states what the plugin promises (PluginContract, YAML);
	// "" derives a minimal one from the config.
	ContractFile string
	// Env is added to the host environment the plugin inherits (the
	// provider's own env still wins, as in the kubelet).
	Env []string
	// ConfigEnv ("NAME=VALUE") is appended to the provider's env as if the
	// config file said so (e.g. endpoints of a loopback fake cloud API).
	ConfigEnv []string
	// Tokens issues service-account tokens (nil: an in-process issuer).
	Tokens satoken.Source
	// Name is what reports call the plugin ("" : the binary's path).
	Name string
}

// PluginContract is what a plugin declares beyond the kubelet API.
type PluginContract struct {
	// Images are in-scope images the plugin must answer with credentials;
	// P16 derives more by appending path elements to the first.
	Images []string `json:"images"`
	// OutOfScopeImage is an image the plugin has no credentials for.
	OutOfScopeImage string `json:"outOfScopeImage,omitempty"`
	// APIVersions the plugin claims (default: the provider's apiVersion).
	APIVersions []string `json:"apiVersions,omitempty"`
	// Username and PasswordPrefix are what the configured args/env make
	// the plugin return for Images[0] (P12).
	Username       string `json:"username,omitempty"`
	PasswordPrefix string `json:"passwordPrefix,omitempty"`
	// Lifetimes maps images to the upstream credential lifetime the target
	// arranges (Go durations; negative: already expired) (P07).
	Lifetimes map[string]string `json:"lifetimes,omitempty"`
	// LatencyBudget is the per-exec latency a healthy plugin stays under
	// (default 10s, a sixth of the kubelet's deadline) (P10).
	LatencyBudget string `json:"latencyBudget,omitempty"`
	// NoToken is the answer to a request without a token when
	// requireServiceAccount is false: credentials | no-credentials | error.
	NoToken string `json:"noToken,omitempty"`
	// ServiceAccount is the identity service-account requests present.
	ServiceAccount *PluginServiceAccount `json:"serviceAccount,omitempty"`
}

// PluginServiceAccount is the pod and service account tokens are bound to.
type PluginServiceAccount struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	UID         string            `json:"uid"`
	PodName     string            `json:"podName,omitempty"`
	PodUID      string            `json:"podUID,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// RequiredAnnotations the plugin refuses to work without (besides the
	// provider's requiredServiceAccountAnnotationKeys).
	RequiredAnnotations []string `json:"requiredAnnotations,omitempty"`
}

// PluginEnv is the P checks' environment.
type PluginEnv struct {
	settings PluginSettings
	provider kubeletconfigv1.CredentialProvider
	contract PluginContract
	lifetime map[string]time.Duration
	budget   time.Duration
	tokens   satoken.Source
	name     string
}

// The kubelet's codecs for credentialprovider.kubelet.k8s.io (strict).
var (
	pluginScheme = runtime.NewScheme()
	pluginCodecs = serializer.NewCodecFactory(pluginScheme, serializer.EnableStrict)
)

func init() { cpinstall.Install(pluginScheme) }

const (
	cpGroup        = "credentialprovider.kubelet.k8s.io"
	cpV1           = cpGroup + "/v1"
	pluginDeadline = time.Minute // the kubelet's catch-all exec timeout
)

var cpVersions = []string{cpGroup + "/v1alpha1", cpGroup + "/v1beta1", cpV1}

// LoadPlugin reads and validates s the way the kubelet would before running
// the plugin, and derives the features its config and contract support.
// Errors are one line naming the file and the rule it breaks (the CLI
// turns them into exit 2).
func LoadPlugin(s PluginSettings) (*PluginEnv, []conformance.Feature, error) {
	if s.Path == "" {
		return nil, nil, errors.New("--plugin: no plugin binary named")
	}
	if abs, err := filepath.Abs(s.Path); err == nil {
		s.Path = abs // exec must never search $PATH for a bare name
	}
	fi, err := os.Stat(s.Path)
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("--plugin %s: plugin binary executable %s did not exist (the kubelet execs <bin dir>/<provider name>)", s.Path, s.Path)
	case fi.IsDir() || fi.Mode()&0o111 == 0:
		return nil, nil, fmt.Errorf("--plugin %s: not an executable file (the kubelet execs it: chmod +x it)", s.Path)
	}
	if s.ConfigFile == "" {
		return nil, nil, fmt.Errorf("--plugin-config: name the CredentialProviderConfig that configures %s", filepath.Base(s.Path))
	}
	cfg, err := readPluginConfig(s.ConfigFile)
	if err != nil {
		return nil, nil, err
	}
	name := filepath.Base(s.Path)
	var names []string
	e := &PluginEnv{settings: s, tokens: s.Tokens, name: s.Name}
	found := false
	for _, p := range cfg.Providers {
		names = append(names, p.Name)
		if p.Name == name {
			e.provider, found = p, true
		}
	}
	if !found {
		return nil, nil, fmt.Errorf("--plugin-config %s: no provider named %q (the kubelet execs <bin dir>/<provider name>; providers: %s)", s.ConfigFile, name, strings.Join(names, ", "))
	}
	for _, kv := range s.ConfigEnv {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, nil, fmt.Errorf("plugin config env %q: want NAME=VALUE", kv)
		}
		e.provider.Env = append(e.provider.Env, kubeletconfigv1.ExecEnvVar{Name: k, Value: v})
	}
	if err := e.loadContract(); err != nil {
		return nil, nil, err
	}
	if e.name == "" {
		e.name = "plugin " + s.Path
	}
	var fs []conformance.Feature
	ta := e.provider.TokenAttributes
	if ta != nil && e.contract.ServiceAccount != nil {
		fs = append(fs, PluginFeatureServiceAccount)
		if ta.RequireServiceAccount != nil && !*ta.RequireServiceAccount && e.contract.NoToken != "" {
			fs = append(fs, PluginFeatureOptionalServiceAccount)
		}
	}
	if len(e.lifetime) > 0 {
		fs = append(fs, PluginFeatureCredentialLifetime)
	}
	if e.contract.Username != "" || e.contract.PasswordPrefix != "" {
		fs = append(fs, PluginFeatureConfigEffect)
	}
	return e, fs, nil
}

// readPluginConfig decodes a CredentialProviderConfig strictly and
// validates it with the kubelet's rules and wording.
func readPluginConfig(path string) (*kubeletconfigv1.CredentialProviderConfig, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--plugin-config: unable to access path %q: %v", path, err)
	}
	files := []string{path}
	if fi.IsDir() {
		// The kubelet merges *.json, *.yaml and *.yml of a directory in
		// lexical order; a provider name may appear once.
		files = nil
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("--plugin-config: unable to read directory %q: %v", path, err)
		}
		for _, e := range ents {
			if x := filepath.Ext(e.Name()); !e.IsDir() && (x == ".json" || x == ".yaml" || x == ".yml") {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		sort.Strings(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("--plugin-config: no configuration files found in directory %q", path)
		}
	}
	merged := &kubeletconfigv1.CredentialProviderConfig{}
	names := sets.New[string]()
	for _, f := range files {
		cfg, err := readPluginConfigFile(f)
		if err != nil {
			return nil, err
		}
		for _, p := range cfg.Providers {
			if names.Has(p.Name) {
				return nil, fmt.Errorf("--plugin-config %s: duplicate provider name %q found in configuration file(s)", path, p.Name)
			}
			names.Insert(p.Name)
			merged.Providers = append(merged.Providers, p)
		}
	}
	if errs := validatePluginConfig(merged); len(errs) > 0 {
		return nil, fmt.Errorf("--plugin-config %s: failed to validate credential provider config: %v", path, errs.ToAggregate())
	}
	return merged, nil
}

// readPluginConfigFile decodes one config file strictly.
func readPluginConfigFile(path string) (*kubeletconfigv1.CredentialProviderConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--plugin-config: unable to read file %q: %v", path, err)
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(b, &tm); err != nil {
		return nil, fmt.Errorf("--plugin-config: error decoding config %q: %v", path, err)
	}
	if tm.Kind != "CredentialProviderConfig" {
		return nil, fmt.Errorf("--plugin-config: error decoding config %q: failed to decode %q (wrong Kind)", path, tm.Kind)
	}
	if g, _, _ := strings.Cut(tm.APIVersion, "/"); g != "kubelet.config.k8s.io" {
		return nil, fmt.Errorf("--plugin-config: error decoding config %q: failed to decode CredentialProviderConfig, unexpected Group: %s", path, g)
	}
	var cfg kubeletconfigv1.CredentialProviderConfig
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		return nil, fmt.Errorf("--plugin-config: error decoding config %q: %v", path, err)
	}
	return &cfg, nil
}

// validatePluginConfig applies the kubelet's validation rules (v1.37,
// KubeletServiceAccountTokenForCredentialProviders on) with its messages.
func validatePluginConfig(cfg *kubeletconfigv1.CredentialProviderConfig) field.ErrorList {
	var errs field.ErrorList
	fp := field.NewPath("providers")
	if len(cfg.Providers) == 0 {
		errs = append(errs, field.Required(fp, "at least 1 item in plugins is required"))
	}
	seen := sets.New[string]()
	for _, p := range cfg.Providers {
		if strings.Contains(p.Name, "/") {
			errs = append(errs, field.Invalid(fp.Child("name"), p.Name, "provider name cannot contain '/'"))
		}
		if strings.Contains(p.Name, " ") {
			errs = append(errs, field.Invalid(fp.Child("name"), p.Name, "provider name cannot contain spaces"))
		}
		if p.Name == "." || p.Name == ".." {
			errs = append(errs, field.Invalid(fp.Child("name"), p.Name, fmt.Sprintf("provider name cannot be '%s'", p.Name)))
		}
		if seen.Has(p.Name) {
			errs = append(errs, field.Duplicate(fp.Child("name"), p.Name))
		}
		seen.Insert(p.Name)
		if p.APIVersion == "" {
			errs = append(errs, field.Required(fp.Child("apiVersion"), ""))
		} else if !slices.Contains(cpVersions, p.APIVersion) {
			errs = append(errs, field.NotSupported(fp.Child("apiVersion"), p.APIVersion, sets.List(sets.New(cpVersions...))))
		}
		if len(p.MatchImages) == 0 {
			errs = append(errs, field.Required(fp.Child("matchImages"), "at least 1 item in matchImages is required"))
		}
		for _, m := range p.MatchImages {
			if _, err := parseSchemeless(m); err != nil {
				errs = append(errs, field.Invalid(fp.Child("matchImages"), m, "match image is invalid: "+err.Error()))
			}
		}
		if p.DefaultCacheDuration == nil {
			errs = append(errs, field.Required(fp.Child("defaultCacheDuration"), ""))
		} else if p.DefaultCacheDuration.Duration < 0 {
			errs = append(errs, field.Invalid(fp.Child("defaultCacheDuration"), p.DefaultCacheDuration, "must be greater than or equal to 0"))
		}
		ta := p.TokenAttributes
		if ta == nil {
			continue
		}
		tp := fp.Child("tokenAttributes")
		if ta.ServiceAccountTokenAudience == "" {
			errs = append(errs, field.Required(tp.Child("serviceAccountTokenAudience"), ""))
		}
		if ta.RequireServiceAccount == nil {
			errs = append(errs, field.Required(tp.Child("requireServiceAccount"), ""))
		}
		if p.APIVersion != cpV1 {
			errs = append(errs, field.Forbidden(tp, "tokenAttributes is only supported for "+cpV1+" API version"))
		}
		if ta.RequireServiceAccount != nil && !*ta.RequireServiceAccount && len(ta.RequiredServiceAccountAnnotationKeys) > 0 {
			errs = append(errs, field.Forbidden(tp.Child("requiredServiceAccountAnnotationKeys"), "requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set"))
		}
		for _, kp := range []struct {
			path *field.Path
			keys []string
		}{{tp.Child("requiredServiceAccountAnnotationKeys"), ta.RequiredServiceAccountAnnotationKeys}, {tp.Child("optionalServiceAccountAnnotationKeys"), ta.OptionalServiceAccountAnnotationKeys}} {
			dup := sets.New[string]()
			for _, k := range kp.keys {
				for _, msg := range validation.IsQualifiedName(strings.ToLower(k)) {
					errs = append(errs, field.Invalid(kp.path, k, msg))
				}
				if dup.Has(k) {
					errs = append(errs, field.Duplicate(kp.path, k))
				}
				dup.Insert(k)
			}
		}
		if both := sets.New(ta.RequiredServiceAccountAnnotationKeys...).Intersection(sets.New(ta.OptionalServiceAccountAnnotationKeys...)); both.Len() > 0 {
			errs = append(errs, field.Invalid(tp, sets.List(both), "annotation keys cannot be both required and optional"))
		}
		valid := []string{string(kubeletconfigv1.ServiceAccountServiceAccountTokenCacheType), string(kubeletconfigv1.TokenServiceAccountTokenCacheType)}
		switch {
		case ta.CacheType == "":
			errs = append(errs, field.Required(tp.Child("cacheType"), "cacheType is required to be set when tokenAttributes is specified. Supported values are: "+strings.Join(valid, ", ")))
		case !slices.Contains(valid, string(ta.CacheType)):
			errs = append(errs, field.NotSupported(tp.Child("cacheType"), ta.CacheType, valid))
		}
	}
	return errs
}

func (e *PluginEnv) loadContract() error {
	s := e.settings
	c := &e.contract
	if s.ContractFile != "" {
		b, err := os.ReadFile(s.ContractFile)
		if err != nil {
			return fmt.Errorf("--plugin-contract: %v", err)
		}
		if err := yaml.UnmarshalStrict(b, c); err != nil {
			return fmt.Errorf("--plugin-contract %s: %v", s.ContractFile, err)
		}
	}
	if len(c.Images) == 0 {
		// Derive an in-scope image from the first matchImages pattern.
		m := strings.ReplaceAll(e.provider.MatchImages[0], "*", "gauntlet")
		if !strings.Contains(m, "/") {
			m += "/gauntlet/app"
		}
		c.Images = []string{m}
	}
	if c.OutOfScopeImage == "" {
		c.OutOfScopeImage = "gauntlet-out-of-scope.invalid/gauntlet/app"
	}
	if len(c.APIVersions) == 0 {
		c.APIVersions = []string{e.provider.APIVersion}
	}
	for _, v := range c.APIVersions {
		if !slices.Contains(cpVersions, v) {
			return fmt.Errorf("--plugin-contract %s: apiVersions: %q is not a credentialprovider.kubelet.k8s.io version (%s)", s.ContractFile, v, strings.Join(cpVersions, ", "))
		}
	}
	switch c.NoToken {
	case "", "credentials", "no-credentials", "error":
	default:
		return fmt.Errorf("--plugin-contract %s: noToken %q: want credentials, no-credentials or error", s.ContractFile, c.NoToken)
	}
	e.budget = 10 * time.Second
	if c.LatencyBudget != "" {
		d, err := time.ParseDuration(c.LatencyBudget)
		if err != nil || d <= 0 || d > pluginDeadline {
			return fmt.Errorf("--plugin-contract %s: latencyBudget %q: want a duration in (0, 1m]", s.ContractFile, c.LatencyBudget)
		}
		e.budget = d
	}
	e.lifetime = map[string]time.Duration{}
	for img, l := range c.Lifetimes {
		d, err := time.ParseDuration(l)
		if err != nil {
			return fmt.Errorf("--plugin-contract %s: lifetimes[%s]: %v", s.ContractFile, img, err)
		}
		e.lifetime[img] = d
	}
	if sa := c.ServiceAccount; sa != nil && (sa.Namespace == "" || sa.Name == "") {
		return fmt.Errorf("--plugin-contract %s: serviceAccount needs namespace and name", s.ContractFile)
	}
	return nil
}

func setupPlugin(ctx context.Context, s PluginSettings, e *Env) error {
	pe, _, err := LoadPlugin(s)
	if err != nil {
		return err
	}
	if pe.tokens == nil {
		iss, err := satoken.NewIssuer()
		if err != nil {
			return err
		}
		pe.tokens = iss
	}
	e.Plugin = pe
	return nil
}

func teardownPlugin(ctx context.Context, e *Env) error { return nil }

func (e *Env) pluginTargetName() string {
	if e.Plugin != nil {
		return e.Plugin.name
	}
	return e.Target.Name
}

// pluginCall is one exec of the plugin.
type pluginCall struct {
	apiVersion  string // request apiVersion (default: the provider's)
	raw         []byte // stdin verbatim instead of an encoded request
	useRaw      bool
	image       string
	token       string
	annotations map[string]string
	hostEnv     []string      // added to the inherited environment
	deadline    time.Duration // default the kubelet's 1 minute
}

// pluginRun is what one exec did.
type pluginRun struct {
	stdin, stdout, stderr []byte
	exitCode              int // -1: killed or not exited
	err                   error
	duration              time.Duration
	timedOut              bool
	pipesHeld             bool // the plugin exited but something kept stdout/stderr open
}

// waitDelay is how long the harness waits for stdout/stderr to close after
// the plugin exits (the kubelet waits forever, up to its deadline).
const waitDelay = 2 * time.Second

// exec runs the plugin once like the kubelet's execPlugin. The error is the
// harness's own (the request could not be encoded or the binary not be
// started); the plugin's failures are in the run.
func (e *PluginEnv) exec(ctx context.Context, c pluginCall) (pluginRun, error) {
	var run pluginRun
	stdin := c.raw
	if !c.useRaw {
		v := c.apiVersion
		if v == "" {
			v = e.provider.APIVersion
		}
		var err error
		stdin, err = encodeRequest(v, &cpapi.CredentialProviderRequest{Image: c.image, ServiceAccountToken: c.token, ServiceAccountAnnotations: c.annotations})
		if err != nil {
			return run, err
		}
	}
	run.stdin = stdin
	d := c.deadline
	if d <= 0 {
		d = pluginDeadline
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(filepath.Dir(e.settings.Path), e.provider.Name), e.provider.Args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &stdout, &stderr
	var cfgEnv []string
	for _, v := range e.provider.Env {
		cfgEnv = append(cfgEnv, v.Name+"="+v.Value)
	}
	host := append(append(os.Environ(), e.settings.Env...), c.hostEnv...)
	cmd.Env = append(host, cfgEnv...)
	// Its own process group, so that the harness can kill whatever the
	// plugin left behind (the kubelet does not; it is the harness's
	// cleanup, not part of the contract).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	start := time.Now()
	err := cmd.Start()
	if err != nil {
		return run, fmt.Errorf("start plugin %s: %w", cmd.Path, err)
	}
	err = cmd.Wait()
	run.duration = time.Since(start)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	run.stdout, run.stderr = stdout.Bytes(), stderr.Bytes()
	run.exitCode = -1
	if cmd.ProcessState != nil {
		run.exitCode = cmd.ProcessState.ExitCode()
	}
	run.pipesHeld = errors.Is(err, exec.ErrWaitDelay)
	switch {
	case ctx.Err() != nil:
		run.timedOut = true
		run.err = fmt.Errorf("error execing credential provider plugin %s for image %s: %w: %s", e.provider.Name, c.image, ctx.Err(), tail(run.stderr))
	case err != nil && !run.pipesHeld:
		run.err = fmt.Errorf("error execing credential provider plugin %s for image %s: %w: %s", e.provider.Name, c.image, err, tail(run.stderr))
	}
	return run, nil
}

func encodeRequest(version string, req *cpapi.CredentialProviderRequest) ([]byte, error) {
	info, ok := runtime.SerializerInfoForMediaType(pluginCodecs.SupportedMediaTypes(), "application/json")
	if !ok {
		return nil, errors.New("no JSON serializer")
	}
	gv, err := schema.ParseGroupVersion(version)
	if err != nil {
		return nil, err
	}
	b, err := runtime.Encode(pluginCodecs.EncoderForVersion(info.Serializer, gv), req)
	if err != nil {
		return nil, fmt.Errorf("error encoding request: %w", err)
	}
	return b, nil
}

// decode judges stdout as the kubelet does (same order, same wording),
// adding the decoder's reason the kubelet withholds (redacted).
func (e *PluginEnv) decode(want string, stdout []byte) (*cpapi.CredentialProviderResponse, error) {
	gvk, err := kjson.DefaultMetaFactory.Interpret(stdout)
	if err != nil {
		return nil, fmt.Errorf("error reading GVK from response: %w", err)
	}
	if gvk.GroupVersion().String() != want {
		return nil, fmt.Errorf("apiVersion from credential plugin response did not match expected apiVersion:%s, actual apiVersion:%s", want, gvk.GroupVersion().String())
	}
	obj, gvk2, err := pluginCodecs.UniversalDecoder().Decode(stdout, nil, nil)
	if err == nil && gvk2.Kind != "CredentialProviderResponse" {
		err = fmt.Errorf("failed to decode CredentialProviderResponse, unexpected Kind: %q", gvk2.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("error decoding credential provider plugin response from stdout (%s)", redact(err.Error(), stdout))
	}
	r, ok := obj.(*cpapi.CredentialProviderResponse)
	if !ok {
		return nil, fmt.Errorf("unable to convert %T to *CredentialProviderResponse", obj)
	}
	return r, nil
}

// redact removes every string value of stdout's auth from msg, so reports
// never carry a real plugin's credentials.
func redact(msg string, stdout []byte) string {
	var doc struct {
		Auth map[string]map[string]any `json:"auth"`
	}
	_ = json.Unmarshal(stdout, &doc)
	for _, a := range doc.Auth {
		for _, v := range a {
			if s, ok := v.(string); ok && len(s) >= 4 {
				msg = strings.ReplaceAll(msg, s, "<redacted>")
			}
		}
	}
	return msg
}

// tail is stderr's last line(s), short, for diagnostics.
func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = "…" + s[len(s)-300:]
	}
	return s
}

// saRequest is the token and annotations the kubelet would send for the
// contract's service account (aud from the provider's tokenAttributes),
// with overrides.
func (e *PluginEnv) saRequest(ctx context.Context, audience string) (string, map[string]string, error) {
	ta, sa := e.provider.TokenAttributes, e.contract.ServiceAccount
	if ta == nil || sa == nil {
		return "", nil, nil
	}
	if audience == "" {
		audience = ta.ServiceAccountTokenAudience
	}
	tok, err := e.tokens.Token(ctx, satoken.Claims{Namespace: sa.Namespace, ServiceAccount: sa.Name, ServiceAccountUID: sa.UID,
		PodName: sa.PodName, PodUID: sa.PodUID, Audience: []string{audience}, TTL: time.Hour})
	if err != nil {
		return "", nil, fmt.Errorf("issue a service-account token (%s): %w", e.tokens.Name(), err)
	}
	// The kubelet sends the configured keys the service account has.
	ann := map[string]string{}
	for _, k := range append(append([]string(nil), ta.RequiredServiceAccountAnnotationKeys...), ta.OptionalServiceAccountAnnotationKeys...) {
		if v, ok := sa.Annotations[k]; ok {
			ann[k] = v
		}
	}
	if len(ann) == 0 {
		ann = nil
	}
	return tok, ann, nil
}

// call is the request the kubelet would make for image: with a token and
// annotations when the provider has tokenAttributes.
// runImage runs the kubelet's request for image and returns the run, with
// a cancelled check reported as such rather than as the plugin's failure.
func (e *PluginEnv) runImage(ctx context.Context, image string) (pluginRun, error) {
	c, err := e.call(ctx, image)
	if err != nil {
		return pluginRun{}, err
	}
	run, err := e.exec(ctx, c)
	if err != nil {
		return run, err
	}
	return run, ctxErr(ctx, run)
}

func (e *PluginEnv) call(ctx context.Context, image string) (pluginCall, error) {
	tok, ann, err := e.saRequest(ctx, "")
	return pluginCall{image: image, token: tok, annotations: ann}, err
}

// answer runs the kubelet's request for image and requires a decodable
// success: the common first step of most checks (a failure here is the
// check's own: the plugin did not answer an in-scope request).
func (e *PluginEnv) answer(ctx context.Context, image string) (pluginRun, *cpapi.CredentialProviderResponse, error) {
	c, err := e.call(ctx, image)
	if err != nil {
		return pluginRun{}, nil, err
	}
	run, err := e.exec(ctx, c)
	if err != nil {
		return run, nil, err
	}
	if err := ctxErr(ctx, run); err != nil {
		return run, nil, err
	}
	if run.err != nil {
		return run, nil, conformance.Failf("%s: %v", image, run.err)
	}
	r, err := e.decode(e.provider.APIVersion, run.stdout)
	if err != nil {
		return run, nil, conformance.Failf("%s: the kubelet discards the answer: %v", image, err)
	}
	return run, r, nil
}

// ctxErr turns the check's own deadline into a setup-free error only when
// the check itself was cancelled (not when the plugin hit its deadline).
func ctxErr(ctx context.Context, run pluginRun) error {
	if ctx.Err() != nil {
		return fmt.Errorf("check cancelled while the plugin ran (%v): %s", context.Cause(ctx), tail(run.stderr))
	}
	return nil
}

// imageMatches is the kubelet's keyring rule for an auth key and an image:
// same number of host parts, each matched with filepath.Match, equal ports,
// and the key's path a string prefix of the image's.
func imageMatches(key, image string) bool {
	for _, p := range []string{"https://", "http://"} {
		key = strings.TrimPrefix(key, p)
	}
	g, err := parseSchemeless(key)
	if err != nil {
		return false
	}
	t, err := parseSchemeless(image)
	if err != nil {
		return false
	}
	gh, gp := splitHostPort(g.host)
	th, tp := splitHostPort(t.host)
	if gp != tp || !strings.HasPrefix(t.path, strings.TrimSuffix(g.path, "/")) {
		return false
	}
	a, b := strings.Split(gh, "."), strings.Split(th, ".")
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if ok, err := filepath.Match(a[i], b[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

type schemeless struct{ host, path string }

func parseSchemeless(s string) (schemeless, error) {
	u, err := url.Parse("https://" + s)
	if err != nil {
		return schemeless{}, err
	}
	return schemeless{host: u.Host, path: u.Path}, nil
}

func splitHostPort(h string) (string, string) {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		return h[:i], h[i+1:]
	}
	return h, ""
}

// percentile of sorted durations (nearest rank).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}
