// Package plugin is the reference kubelet image credential provider plugin:
// a real executable that the credprovider suite execs exactly as the kubelet
// does (binDir/name, args and env from a CredentialProviderConfig, the
// request on stdin). Any Go binary that links this package becomes the
// plugin when it is invoked through a link named BinaryName (busybox style),
// so `gauntlet run credprovider` works from an installed gauntlet binary and
// the suite's tests work from their test binary, with nothing to build.
//
// Its behaviour comes from a script file (script.json in the state
// directory named by the env var StateEnv) that it reads on every exec:
// the in-scope registries, the service-account contract, per-image
// credential lifetimes, scripted answers, and the active faults (the
// catalogue's CP… faults), so faults can be armed on a running target.
package plugin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/kubelet/pkg/apis/credentialprovider"
	"k8s.io/kubelet/pkg/apis/credentialprovider/install"

	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/satoken"
)

// BinaryName is the name the plugin answers to (the provider name in its
// CredentialProviderConfig, hence the file name the kubelet execs).
const BinaryName = "gauntlet-reference-credential-provider"

// Environment the plugin reads (set through the config's env).
const (
	StateEnv    = "GAUNTLET_REFPLUGIN_STATE"    // the state directory (script.json)
	UsernameEnv = "GAUNTLET_REFPLUGIN_USERNAME" // the username it returns (default "gauntlet")
	sleepEnv    = "GAUNTLET_REFPLUGIN_SLEEP"    // internal: the helper child of cp-child-holds-stdout
)

// Script drives the plugin; it is read afresh on every exec.
type Script struct {
	// Registries are the in-scope registry patterns (kubelet matchImages
	// rules, host part only); any other image is out of scope.
	Registries []string `json:"registries"`
	// Audience a service-account token must carry.
	Audience string `json:"audience,omitempty"`
	// RequiredAnnotations must accompany a service-account token.
	RequiredAnnotations []string `json:"requiredAnnotations,omitempty"`
	// RequireToken refuses requests without a token.
	RequireToken bool `json:"requireToken,omitempty"`
	// Lifetimes is the upstream credential lifetime per image (Go duration,
	// negative: already expired); default 1h.
	Lifetimes map[string]string `json:"lifetimes,omitempty"`
	// Rules are scripted answers that take precedence over the behaviour
	// above: the first rule whose image (and service account, when set)
	// matches the request answers.
	Rules []Rule `json:"rules,omitempty"`
	// Faults active for every exec (catalogue names).
	Faults []faults.Fault `json:"faults,omitempty"`
}

// Rule is one scripted answer.
type Rule struct {
	Image          string `json:"image"`                    // exact request image
	ServiceAccount string `json:"serviceAccount,omitempty"` // "namespace/name" from the token; "" any
	Delay          string `json:"delay,omitempty"`
	Stdout         string `json:"stdout,omitempty"` // written verbatim
	Stderr         string `json:"stderr,omitempty"`
	Exit           int    `json:"exit,omitempty"`
}

// ScriptFile is the script's file name inside the state directory.
const ScriptFile = "script.json"

var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme, serializer.EnableStrict)
)

func init() {
	install.Install(scheme)
	// Busybox-style dispatch: exec'd through a link named BinaryName, this
	// binary is the plugin and nothing else runs.
	if filepath.Base(os.Args[0]) == BinaryName {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
}

// supported are the apiVersions the reference plugin claims.
var supported = []string{
	"credentialprovider.kubelet.k8s.io/v1",
	"credentialprovider.kubelet.k8s.io/v1beta1",
	"credentialprovider.kubelet.k8s.io/v1alpha1",
}

// Main runs one plugin exec and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if d := os.Getenv(sleepEnv); d != "" {
		t, _ := time.ParseDuration(d)
		time.Sleep(t)
		return 0
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "gauntlet-reference-credential-provider: "+format+"\n", a...)
		return 1
	}
	prefix := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--password-prefix="); ok {
			prefix = v
		} else {
			return fail("unknown argument %q (want --password-prefix=PREFIX)", a)
		}
	}
	state := os.Getenv(StateEnv)
	if state == "" {
		return fail("%s is not set: configure it in the CredentialProviderConfig env", StateEnv)
	}
	var sc Script
	b, err := os.ReadFile(filepath.Join(state, ScriptFile))
	if err == nil {
		err = json.Unmarshal(b, &sc)
	}
	if err != nil {
		return fail("read script: %v", err)
	}
	has := func(f faults.Fault) bool { return slices.Contains(sc.Faults, f) }
	if has(faults.CPChildHoldsStdout) {
		// A helper that inherits our stdout/stderr and outlives us: the
		// kubelet's cmd.Run waits for the pipes, not for us.
		self, _ := os.Executable()
		c := exec.Command(self)
		c.Args[0] = os.Args[0]
		c.Env = append(os.Environ(), sleepEnv+"=30s")
		c.Stdout, c.Stderr = stdout, stderr
		_ = c.Start()
	}
	if has(faults.CPSlow) {
		time.Sleep(90 * time.Second)
	}
	if has(faults.CPStdoutLog) {
		fmt.Fprintln(stdout, "fetching credentials...")
	}

	data, err := io.ReadAll(stdin)
	if err != nil {
		return fail("read stdin: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fail("empty request on stdin")
	}
	gvk, err := kjson.DefaultMetaFactory.Interpret(data)
	if err != nil {
		if has(faults.CPInvalidJSONStdout) {
			fmt.Fprintf(stdout, `{"error":%q}`+"\n", err.Error())
		}
		return fail("read apiVersion/kind: %v", err)
	}
	reqVersion := gvk.GroupVersion().String()
	if !slices.Contains(supported, reqVersion) && !has(faults.CPAcceptsUnknownVersion) {
		return fail("apiVersion %q is not supported (supported: %s)", reqVersion, strings.Join(supported, ", "))
	}
	if gvk.Kind != "CredentialProviderRequest" {
		return fail("kind %q, want CredentialProviderRequest", gvk.Kind)
	}
	var req credentialprovider.CredentialProviderRequest
	if slices.Contains(supported, reqVersion) {
		obj, _, err := codecs.UniversalDecoder().Decode(data, nil, nil)
		if err != nil {
			return fail("decode request: %v", err)
		}
		r, ok := obj.(*credentialprovider.CredentialProviderRequest)
		if !ok {
			return fail("decoded %T, want a CredentialProviderRequest", obj)
		}
		req = *r
	} else if err := json.Unmarshal(data, &req); err != nil { // cp-accepts-unknown-api-version
		return fail("decode request: %v", err)
	}
	if req.Image == "" && !has(faults.CPEmptyImageAnswered) {
		return fail("image in request is empty")
	}
	image := req.Image
	if has(faults.CPSharedScratchFile) {
		// Stage the image in one shared file and read it back once another
		// exec has overwritten it (or after 2 s): concurrent execs answer
		// for each other's images however the scheduler spreads them.
		p := filepath.Join(state, "scratch")
		_ = os.WriteFile(p, []byte(image), 0o600)
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if b, err := os.ReadFile(p); err == nil && len(b) > 0 && string(b) != req.Image {
				image = string(b)
				break
			}
		}
	}

	var claims satoken.Claims
	if req.ServiceAccountToken != "" {
		claims, err = satoken.Decode(req.ServiceAccountToken)
		if err != nil {
			return fail("service-account token: %v", err)
		}
	}
	sa := ""
	if claims.Namespace != "" {
		sa = claims.Namespace + "/" + claims.ServiceAccount
	}
	for _, r := range sc.Rules {
		if r.Image == req.Image && (r.ServiceAccount == "" || r.ServiceAccount == sa) {
			if d, err := time.ParseDuration(r.Delay); err == nil {
				time.Sleep(d)
			}
			io.WriteString(stdout, r.Stdout)
			io.WriteString(stderr, r.Stderr)
			return r.Exit
		}
	}
	if has(faults.CPLogsSecrets) && req.ServiceAccountToken != "" {
		fmt.Fprintf(stderr, "debug: exchanging token %s\n", req.ServiceAccountToken)
	}

	respVersion := reqVersion
	if has(faults.CPAnswersV1Always) || !slices.Contains(supported, respVersion) {
		respVersion = supported[0]
	}
	kind := "CredentialProviderResponse"
	if has(faults.CPWrongKind) {
		kind = "CredentialProviderRequest"
	}
	resp := response{Kind: kind, APIVersion: respVersion, CacheKeyType: "Image"}

	host := strings.SplitN(image, "/", 2)[0]
	inScope := false
	for _, p := range sc.Registries {
		inScope = inScope || hostMatches(p, host)
	}
	if !inScope {
		zero := "0s"
		if !has(faults.CPOutOfScopeNoDuration) {
			resp.CacheDuration = &zero
		}
		if has(faults.CPEmptyNoCacheKeyType) {
			resp.CacheKeyType = ""
		}
		return write(stdout, stderr, resp, sc)
	}
	if has(faults.CPInScopeFails) {
		return fail("registry unavailable")
	}
	if req.ServiceAccountToken == "" && (sc.RequireToken || has(faults.CPNoTokenFails)) {
		return fail("a service-account token is required")
	}
	if req.ServiceAccountToken != "" {
		if !has(faults.CPAcceptsWrongAudience) && !slices.Contains(claims.Audience, sc.Audience) {
			return fail("service-account token audience %v does not include %q", claims.Audience, sc.Audience)
		}
		if !claims.Expiry.IsZero() && time.Now().After(claims.Expiry) {
			return fail("service-account token expired at %s", claims.Expiry.UTC().Format(time.RFC3339))
		}
		for _, k := range sc.RequiredAnnotations {
			if _, ok := req.ServiceAccountAnnotations[k]; !ok {
				return fail("service account annotation %q is required", k)
			}
		}
	}
	user := os.Getenv(UsernameEnv)
	if user == "" || has(faults.CPIgnoresConfigEnv) {
		user = "gauntlet"
	}
	if has(faults.CPIgnoresConfigArgs) {
		prefix = ""
	}
	sum := sha256.Sum256([]byte(image + "|" + claims.ServiceAccountUID))
	pw := prefix + "pw-" + hex.EncodeToString(sum[:10])
	if has(faults.CPEchoesToken) && req.ServiceAccountToken != "" {
		pw = req.ServiceAccountToken
	}
	lifetime := time.Hour
	if l, ok := sc.Lifetimes[image]; ok {
		if d, err := time.ParseDuration(l); err == nil {
			lifetime = d
		}
	}
	// Cache for half the remaining lifetime; an expired credential is
	// returned with an explicit 0 so that the kubelet does not cache it.
	cd := (lifetime / 2).Round(time.Second)
	switch {
	case has(faults.CPCacheOutlivesCredential):
		cd = 12 * time.Hour
	case lifetime <= 0:
		cd = 0
	}
	if !(cd == 0 && has(faults.CPExpiredNilDuration)) {
		s := cd.String()
		resp.CacheDuration = &s
	}
	key := image
	if has(faults.CPAuthKeyMismatch) {
		key = "other-registry.gauntlet.test"
	}
	resp.Auth = map[string]authConfig{key: {Username: user, Password: pw}}
	if has(faults.CPLogsSecrets) {
		fmt.Fprintf(stderr, "debug: returning %s:%s\n", user, pw)
	}
	return write(stdout, stderr, resp, sc)
}

type response struct {
	Kind          string                `json:"kind"`
	APIVersion    string                `json:"apiVersion"`
	CacheKeyType  string                `json:"cacheKeyType,omitempty"`
	CacheDuration *string               `json:"cacheDuration,omitempty"`
	Auth          map[string]authConfig `json:"auth,omitempty"`
}

type authConfig struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func write(stdout, stderr io.Writer, r response, sc Script) int {
	b, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	s := string(b)
	if slices.Contains(sc.Faults, faults.CPUnknownField) {
		s = strings.TrimSuffix(s, "}") + `,"expiresAt":"2030-01-01T00:00:00Z"}`
	}
	if slices.Contains(sc.Faults, faults.CPDuplicateField) && r.CacheKeyType != "" {
		s = strings.TrimSuffix(s, "}") + `,"cacheKeyType":"Registry"}`
	}
	fmt.Fprintln(stdout, s)
	return 0
}

// hostMatches matches a registry host against a pattern the kubelet way:
// the same number of dot-separated parts, each matched with filepath.Match,
// ports equal.
func hostMatches(pattern, host string) bool {
	ph, pp, _ := strings.Cut(pattern, ":")
	hh, hp, _ := strings.Cut(host, ":")
	if pp != hp {
		return false
	}
	a, b := strings.Split(ph, "."), strings.Split(hh, ".")
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if ok, _ := filepath.Match(a[i], b[i]); !ok {
			return false
		}
	}
	return true
}
