package credprovider

// P checks: a plugin binary run exactly as the kubelet runs it
// (docs: /work/shared/checks/credprovider.md, "P. Plugin conformance").

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	cpapi "k8s.io/kubelet/pkg/apis/credentialprovider"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
)

var _ = Suite.Register(
	pcheck("P01", "an in-scope request exits 0 with one CredentialProviderResponse object on stdout", nil, p01InScope,
		faults.CPInScopeFails, faults.CPWrongKind),
	pcheck("P02", "the response decodes under the kubelet's strict decoder", nil, p02Strict,
		faults.CPUnknownField, faults.CPDuplicateField),
	pcheck("P03", "stdout carries the JSON document and nothing else", nil, p03StdoutOnly,
		faults.CPStdoutLog),
	pcheck("P04", "cacheKeyType is Image, Registry or Global in every response, also without credentials", nil, p04CacheKeyType,
		faults.CPEmptyNoCacheKeyType),
	pcheck("P05", "returned credentials include an auth key that matches the image under the kubelet's rules", nil, p05AuthKey,
		faults.CPAuthKeyMismatch),
	pcheck("P06", "an out-of-scope image gets no credentials with an explicit cacheDuration 0s, or a non-zero exit", nil, p06OutOfScope,
		faults.CPOutOfScopeNoDuration),
	withCases(pcheck("P07", "cacheDuration never outlives the credential and is an explicit 0 for an expired one",
		[]conformance.Feature{PluginFeatureCredentialLifetime}, p07Lifetime,
		faults.CPCacheOutlivesCredential, faults.CPExpiredNilDuration), "unexpired", "expired"),
	withCases(pcheck("P08", "each claimed apiVersion is answered in kind; an unsupported one fails with stderr text and empty stdout", nil, p08Versions,
		faults.CPAnswersV1Always, faults.CPAcceptsUnknownVersion), "v1", "v1beta1", "v1alpha1", "unsupported"),
	withCases(pcheck("P09", "empty stdin, invalid JSON and an empty image exit non-zero with nothing on stdout", nil, p09BadInput,
		faults.CPEmptyImageAnswered, faults.CPInvalidJSONStdout), "empty-stdin", "invalid-json", "empty-image"),
	serial(pcheck("P10", "answers well inside the kubelet's 60 s deadline (p50/p99 reported) and leaves no child holding stdout/stderr", nil, p10Latency,
		faults.CPSlow, faults.CPChildHoldsStdout), p10Window+2*pluginDeadline),
	pcheck("P11", "neither the service-account token nor a password appears on stderr", nil, p11NoSecretsOnStderr,
		faults.CPLogsSecrets),
	withCases(pcheck("P12", "the configured args and env are honoured and config env overrides the host's",
		[]conformance.Feature{PluginFeatureConfigEffect}, p12ConfigEffect,
		faults.CPIgnoresConfigEnv, faults.CPIgnoresConfigArgs), "configured", "host-env-conflict"),
	pcheck("P13", "a service-account request never gets the token back as the password (cacheType ServiceAccount)",
		[]conformance.Feature{PluginFeatureServiceAccount}, p13NoEcho,
		faults.CPEchoesToken),
	withCases(pcheck("P14", "a wrong audience, missing required annotations or an empty token exit non-zero",
		[]conformance.Feature{PluginFeatureServiceAccount}, p14BadToken,
		faults.CPAcceptsWrongAudience), "wrong-audience", "missing-annotations", "empty-token"),
	pcheck("P15", "a request without a token (requireServiceAccount: false) is answered as the contract declares",
		[]conformance.Feature{PluginFeatureOptionalServiceAccount}, p15NoToken,
		faults.CPNoTokenFails),
	pcheck("P16", "20 concurrent execs for different images all answer validly, each for its own image", nil, p16Concurrent,
		faults.CPSharedScratchFile),
)

func pcheck(id, name string, fs []conformance.Feature, run func(context.Context, *PluginEnv) error, fl ...faults.Fault) conformance.Check[*Env] {
	return conformance.Check[*Env]{ID: id, Name: name, Labels: []string{"plugin"}, Features: fs, Faults: fl,
		Run: func(ctx context.Context, e *Env) error {
			if e.Plugin == nil {
				return conformance.Setupf("no plugin under test")
			}
			return run(ctx, e.Plugin)
		}}
}

func withCases(c conformance.Check[*Env], cases ...string) conformance.Check[*Env] {
	c.Cases = cases
	return c
}

func serial(c conformance.Check[*Env], d time.Duration) conformance.Check[*Env] {
	c.Serial, c.Timeout = true, d
	return c
}

// oneJSONObject checks that stdout is exactly one JSON object (whitespace
// around it allowed) and returns it.
func oneJSONObject(stdout []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(stdout))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("stdout is not a JSON object: %v (starts %q)", err, head(stdout))
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, fmt.Errorf("stdout has more after the JSON object (%q…)", head(stdout[dec.InputOffset():]))
	}
	return obj, nil
}

func head(b []byte) string {
	s := string(bytes.TrimSpace(b))
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

func p01InScope(ctx context.Context, e *PluginEnv) error {
	for _, img := range e.contract.Images {
		run, err := e.runImage(ctx, img)
		if err != nil {
			return err
		}
		if run.err != nil {
			return conformance.Failf("%s: %v", img, run.err)
		}
		obj, err := oneJSONObject(run.stdout)
		if err != nil {
			return conformance.Failf("%s: %v", img, err)
		}
		var kind, version string
		_ = json.Unmarshal(obj["kind"], &kind)
		_ = json.Unmarshal(obj["apiVersion"], &version)
		if version != e.provider.APIVersion || kind != "CredentialProviderResponse" {
			return conformance.Failf("%s: stdout is apiVersion %q kind %q, want %s CredentialProviderResponse", img, version, kind, e.provider.APIVersion)
		}
	}
	return nil
}

func p02Strict(ctx context.Context, e *PluginEnv) error {
	for _, img := range []string{e.contract.Images[0], e.contract.OutOfScopeImage} {
		run, err := e.runImage(ctx, img)
		if err != nil {
			return err
		}
		if run.err != nil {
			if img == e.contract.Images[0] {
				return conformance.Failf("%s: %v", img, run.err)
			}
			continue // refusing an out-of-scope image is allowed (P06)
		}
		if _, err := e.decode(e.provider.APIVersion, run.stdout); err != nil {
			return conformance.Failf("%s: the kubelet discards the answer: %v", img, err)
		}
	}
	return nil
}

func p03StdoutOnly(ctx context.Context, e *PluginEnv) error {
	for _, img := range []string{e.contract.Images[0], e.contract.OutOfScopeImage} {
		run, err := e.runImage(ctx, img)
		if err != nil {
			return err
		}
		if run.err != nil {
			if img == e.contract.Images[0] {
				return conformance.Failf("%s: %v", img, run.err)
			}
			if len(bytes.TrimSpace(run.stdout)) > 0 {
				return conformance.Failf("%s: exited non-zero but wrote %q on stdout (diagnostics belong on stderr)", img, head(run.stdout))
			}
			continue
		}
		if _, err := oneJSONObject(run.stdout); err != nil {
			return conformance.Failf("%s: %v: diagnostics belong on stderr", img, err)
		}
	}
	return nil
}

func validKeyType(t cpapi.PluginCacheKeyType) bool {
	return t == cpapi.ImagePluginCacheKeyType || t == cpapi.RegistryPluginCacheKeyType || t == cpapi.GlobalPluginCacheKeyType
}

func p04CacheKeyType(ctx context.Context, e *PluginEnv) error {
	images := []string{e.contract.Images[0], e.contract.OutOfScopeImage}
	for img := range e.lifetime {
		images = append(images, img)
	}
	answered := 0
	for _, img := range images {
		run, err := e.runImage(ctx, img)
		if err != nil {
			return err
		}
		if run.err != nil {
			continue // no response to judge (P01/P06 judge the exit)
		}
		r, err := e.decode(e.provider.APIVersion, run.stdout)
		if err != nil {
			return conformance.Failf("%s: the kubelet discards the answer: %v", img, err)
		}
		answered++
		if !validKeyType(r.CacheKeyType) {
			return conformance.Failf("%s: cacheKeyType %q (auth entries: %d): the kubelet discards the response (credential provider plugin did not return a valid cacheKeyType: %s)", img, r.CacheKeyType, len(r.Auth), r.CacheKeyType)
		}
	}
	if answered == 0 {
		return conformance.Failf("no request was answered (in-scope %s failed): nothing to judge", e.contract.Images[0])
	}
	return nil
}

func p05AuthKey(ctx context.Context, e *PluginEnv) error {
	for _, img := range e.contract.Images {
		_, r, err := e.answer(ctx, img)
		if err != nil {
			return err
		}
		if len(r.Auth) == 0 {
			return conformance.Failf("%s: no credentials for an in-scope image", img)
		}
		var keys []string
		ok := false
		for k := range r.Auth {
			keys = append(keys, k)
			ok = ok || imageMatches(k, img)
		}
		if !ok {
			return conformance.Failf("%s: no auth key matches the image under the kubelet's rules (keys: %s): the kubelet never uses these credentials", img, strings.Join(keys, ", "))
		}
	}
	return nil
}

func p06OutOfScope(ctx context.Context, e *PluginEnv) error {
	img := e.contract.OutOfScopeImage
	run, err := e.runImage(ctx, img)
	if err != nil {
		return err
	}
	if run.err != nil {
		conformance.Note(ctx, "out-of-scope answer", fmt.Sprintf("exit %d", run.exitCode))
		return nil
	}
	r, err := e.decode(e.provider.APIVersion, run.stdout)
	if err != nil {
		return conformance.Failf("%s: exit 0 but the kubelet discards the answer: %v", img, err)
	}
	if len(r.Auth) > 0 {
		var keys []string
		for k := range r.Auth {
			keys = append(keys, k)
		}
		return conformance.Failf("%s (out of scope): returned credentials for %s", img, strings.Join(keys, ", "))
	}
	if r.CacheDuration == nil {
		return conformance.Failf("%s (out of scope): no credentials and no cacheDuration: the kubelet caches the miss for defaultCacheDuration %s", img, e.provider.DefaultCacheDuration.Duration)
	}
	if r.CacheDuration.Duration != 0 {
		return conformance.Failf("%s (out of scope): no credentials with cacheDuration %s: the kubelet caches the miss (want 0s)", img, r.CacheDuration.Duration)
	}
	conformance.Note(ctx, "out-of-scope answer", "exit 0, no credentials, cacheDuration 0s")
	return nil
}

func p07Lifetime(ctx context.Context, e *PluginEnv) error {
	for img, lt := range e.lifetime {
		name := "unexpired"
		if lt <= 0 {
			name = "expired"
		}
		conformance.Case(ctx, name, func(ctx context.Context) error {
			run, err := e.runImage(ctx, img)
			if err != nil {
				return err
			}
			if run.err != nil {
				if lt <= 0 {
					return nil // no credentials for an expired one: nothing cached
				}
				return conformance.Failf("%s: %v", img, run.err)
			}
			r, err := e.decode(e.provider.APIVersion, run.stdout)
			if err != nil {
				return conformance.Failf("%s: the kubelet discards the answer: %v", img, err)
			}
			if len(r.Auth) == 0 {
				if lt <= 0 {
					return nil
				}
				return conformance.Failf("%s: no credentials (upstream credential valid for %s)", img, lt)
			}
			eff, how := e.provider.DefaultCacheDuration.Duration, "omitted: the kubelet uses defaultCacheDuration"
			if r.CacheDuration != nil {
				eff, how = r.CacheDuration.Duration, "returned"
			}
			conformance.Note(ctx, "cacheDuration "+name, fmt.Sprintf("%s (%s)", eff, how))
			if lt <= 0 {
				if r.CacheDuration == nil || r.CacheDuration.Duration != 0 {
					return conformance.Failf("%s: the credential expired %s ago but cacheDuration is %s (%s); want an explicit 0", img, -lt, eff, how)
				}
				return nil
			}
			if eff > lt {
				return conformance.Failf("%s: cacheDuration %s (%s) outlives the credential's %s lifetime: the kubelet would pull with an expired credential", img, eff, how, lt)
			}
			return nil
		})
	}
	return nil
}

func p08Versions(ctx context.Context, e *PluginEnv) error {
	img := e.contract.Images[0]
	for _, v := range cpVersions {
		short := v[strings.LastIndexByte(v, '/')+1:]
		claimed := false
		for _, c := range e.contract.APIVersions {
			claimed = claimed || c == v
		}
		conformance.Case(ctx, short, func(ctx context.Context) error {
			if !claimed {
				return conformance.Skip("", "the contract does not claim %s", v)
			}
			c, err := e.call(ctx, img)
			if err != nil {
				return err
			}
			c.apiVersion = v
			if v != cpV1 { // tokens are a v1 field
				c.token, c.annotations = "", nil
			}
			run, err := e.exec(ctx, c)
			if err != nil {
				return err
			}
			if err := ctxErr(ctx, run); err != nil {
				return err
			}
			if run.err != nil {
				return conformance.Failf("%s request: %v", v, run.err)
			}
			if _, err := e.decode(v, run.stdout); err != nil {
				return conformance.Failf("%s request: %v", v, err)
			}
			return nil
		})
	}
	conformance.Case(ctx, "unsupported", func(ctx context.Context) error {
		bad := cpGroup + "/v9gauntlet"
		raw := fmt.Sprintf(`{"kind":"CredentialProviderRequest","apiVersion":%q,"image":%q}`, bad, img)
		run, err := e.exec(ctx, pluginCall{raw: []byte(raw), useRaw: true, image: img})
		if err != nil {
			return err
		}
		if err := ctxErr(ctx, run); err != nil {
			return err
		}
		switch {
		case run.exitCode == 0:
			return conformance.Failf("a %s request exited 0 (stdout %q): want a non-zero exit", bad, head(run.stdout))
		case len(bytes.TrimSpace(run.stdout)) > 0:
			return conformance.Failf("a %s request wrote %q on stdout: want nothing", bad, head(run.stdout))
		case len(bytes.TrimSpace(run.stderr)) == 0:
			return conformance.Failf("a %s request exited %d with nothing on stderr: the kubelet's error would say nothing", bad, run.exitCode)
		}
		return nil
	})
	return nil
}

func p09BadInput(ctx context.Context, e *PluginEnv) error {
	enc, err := encodeRequest(e.provider.APIVersion, &cpapi.CredentialProviderRequest{Image: ""})
	if err != nil {
		return err
	}
	for _, tc := range []struct {
		name  string
		stdin []byte
	}{
		{"empty-stdin", nil},
		{"invalid-json", []byte(`{"kind":"CredentialProviderRequest","apiVersion":"` + e.provider.APIVersion + `","image":`)},
		{"empty-image", enc},
	} {
		conformance.Case(ctx, tc.name, func(ctx context.Context) error {
			run, err := e.exec(ctx, pluginCall{raw: tc.stdin, useRaw: true, image: "<" + tc.name + ">"})
			if err != nil {
				return err
			}
			if err := ctxErr(ctx, run); err != nil {
				return err
			}
			if run.exitCode == 0 {
				return conformance.Failf("%s: exit 0 (stdout %q): want a non-zero exit", tc.name, head(run.stdout))
			}
			if len(bytes.TrimSpace(run.stdout)) > 0 {
				return conformance.Failf("%s: exit %d but stdout has %q: want nothing", tc.name, run.exitCode, head(run.stdout))
			}
			return nil
		})
	}
	return nil
}

// P10 times up to p10Runs sequential execs, stopping early once
// p10Window has passed (a slow but in-budget plugin must not make the
// check outlive its own deadline).
const (
	p10Runs   = 20
	p10Window = 30 * time.Second
)

func p10Latency(ctx context.Context, e *PluginEnv) error {
	img := e.contract.Images[0]
	var ds []time.Duration
	defer func() {
		if len(ds) > 0 {
			conformance.Note(ctx, "latency", fmt.Sprintf("p50 %s, p99 %s over %d runs (budget %s, kubelet deadline %s)",
				percentile(ds, .5).Round(time.Millisecond), percentile(ds, .99).Round(time.Millisecond), len(ds), e.budget, pluginDeadline))
		}
	}()
	start := time.Now()
	for i := 0; i < p10Runs && (i < 3 || time.Since(start) < p10Window); i++ {
		c, err := e.call(ctx, img)
		if err != nil {
			return err
		}
		c.deadline = e.budget
		run, err := e.exec(ctx, c)
		if err != nil {
			return err
		}
		if err := ctxErr(ctx, run); err != nil {
			return err
		}
		switch {
		case run.timedOut:
			return conformance.Failf("run %d: no answer within the %s latency budget (killed): %v", i+1, e.budget, run.err)
		case run.pipesHeld:
			return conformance.Failf("run %d: the plugin exited after %s but something it started kept stdout/stderr open for %s more: the kubelet's exec waits for the pipes to close (its deadline kills only the plugin process)", i+1, (run.duration - waitDelay).Round(time.Millisecond), waitDelay)
		case run.err != nil:
			return conformance.Failf("run %d: %v", i+1, run.err)
		}
		ds = append(ds, run.duration)
	}
	return nil
}

func p11NoSecretsOnStderr(ctx context.Context, e *PluginEnv) error {
	img := e.contract.Images[0]
	c, err := e.call(ctx, img)
	if err != nil {
		return err
	}
	calls := []pluginCall{c}
	if c.token != "" {
		// The error path too: plugins tend to log what they were given.
		bad, _, err := e.saRequest(ctx, "gauntlet-wrong-audience")
		if err != nil {
			return err
		}
		calls = append(calls, pluginCall{image: img, token: bad, annotations: c.annotations})
	}
	for i, c := range calls {
		run, err := e.exec(ctx, c)
		if err != nil {
			return err
		}
		if err := ctxErr(ctx, run); err != nil {
			return err
		}
		if i == 0 && run.err != nil {
			return conformance.Failf("%s: %v", img, run.err)
		}
		secrets := map[string]string{}
		if c.token != "" {
			secrets[c.token] = "the service-account token"
			if parts := strings.Split(c.token, "."); len(parts) == 3 {
				secrets[parts[2]] = "the service-account token's signature"
			}
		}
		if run.err == nil {
			if r, err := e.decode(e.provider.APIVersion, run.stdout); err == nil {
				for k, a := range r.Auth {
					if len(a.Password) >= 6 {
						secrets[a.Password] = "the password for " + k
					}
				}
			}
		}
		for s, what := range secrets {
			if bytes.Contains(run.stderr, []byte(s)) {
				return conformance.Failf("%s: stderr (which the kubelet logs) contains %s", img, what)
			}
		}
	}
	return nil
}

func p12ConfigEffect(ctx context.Context, e *PluginEnv) error {
	img := e.contract.Images[0]
	judge := func(ctx context.Context, hostEnv []string, how string) error {
		c, err := e.call(ctx, img)
		if err != nil {
			return err
		}
		c.hostEnv = hostEnv
		run, err := e.exec(ctx, c)
		if err != nil {
			return err
		}
		if err := ctxErr(ctx, run); err != nil {
			return err
		}
		if run.err != nil {
			return conformance.Failf("%s%s: %v", img, how, run.err)
		}
		r, err := e.decode(e.provider.APIVersion, run.stdout)
		if err != nil {
			return conformance.Failf("%s%s: the kubelet discards the answer: %v", img, how, err)
		}
		if len(r.Auth) == 0 {
			return conformance.Failf("%s%s: no credentials", img, how)
		}
		for k, a := range r.Auth {
			if e.contract.Username != "" && a.Username != e.contract.Username {
				return conformance.Failf("%s%s: username %q for %s, want %q (set by the provider's args/env: %s)", img, how, a.Username, k, e.contract.Username, e.configSummary())
			}
			if !strings.HasPrefix(a.Password, e.contract.PasswordPrefix) {
				return conformance.Failf("%s%s: the password for %s lacks the prefix %q the provider's args/env set (%s)", img, how, k, e.contract.PasswordPrefix, e.configSummary())
			}
		}
		return nil
	}
	conformance.Case(ctx, "configured", func(ctx context.Context) error { return judge(ctx, nil, "") })
	conformance.Case(ctx, "host-env-conflict", func(ctx context.Context) error {
		if len(e.provider.Env) == 0 {
			return conformance.Skip("", "the provider configures no env")
		}
		var host []string
		for _, v := range e.provider.Env {
			host = append(host, v.Name+"=gauntlet-host-value-must-be-overridden")
		}
		return judge(ctx, host, " (host env sets every configured variable to another value)")
	})
	return nil
}

func (e *PluginEnv) configSummary() string {
	var names []string
	for _, v := range e.provider.Env {
		names = append(names, v.Name)
	}
	return fmt.Sprintf("args %q, env %s", e.provider.Args, strings.Join(names, ","))
}

func p13NoEcho(ctx context.Context, e *PluginEnv) error {
	if e.provider.TokenAttributes.CacheType == "Token" {
		return conformance.Skip("", "the provider declares cacheType Token: returning the token as the password is allowed")
	}
	img := e.contract.Images[0]
	c, err := e.call(ctx, img)
	if err != nil {
		return err
	}
	run, err := e.exec(ctx, c)
	if err != nil {
		return err
	}
	if err := ctxErr(ctx, run); err != nil {
		return err
	}
	if run.err != nil {
		return conformance.Failf("%s: %v", img, run.err)
	}
	r, err := e.decode(e.provider.APIVersion, run.stdout)
	if err != nil {
		return conformance.Failf("%s: the kubelet discards the answer: %v", img, err)
	}
	for k, a := range r.Auth {
		if a.Password == c.token {
			return conformance.Failf("%s: the password for %s is the service-account token: the kubelet rejects it (credential provider plugin returned the service account token as the password which is not allowed when service account cache type is not set to 'Token')", img, k)
		}
	}
	return nil
}

func p14BadToken(ctx context.Context, e *PluginEnv) error {
	img := e.contract.Images[0]
	expectFail := func(ctx context.Context, c pluginCall, what string) error {
		run, err := e.exec(ctx, c)
		if err != nil {
			return err
		}
		if err := ctxErr(ctx, run); err != nil {
			return err
		}
		if run.exitCode == 0 {
			n := -1
			if r, err := e.decode(e.provider.APIVersion, run.stdout); err == nil {
				n = len(r.Auth)
			}
			return conformance.Failf("%s: %s: exit 0 with %d auth entries: want a non-zero exit", img, what, n)
		}
		return nil
	}
	conformance.Case(ctx, "wrong-audience", func(ctx context.Context) error {
		tok, ann, err := e.saRequest(ctx, "gauntlet-wrong-audience")
		if err != nil {
			return err
		}
		return expectFail(ctx, pluginCall{image: img, token: tok, annotations: ann}, "token audience gauntlet-wrong-audience, configured "+e.provider.TokenAttributes.ServiceAccountTokenAudience)
	})
	conformance.Case(ctx, "missing-annotations", func(ctx context.Context) error {
		req := append(append([]string(nil), e.provider.TokenAttributes.RequiredServiceAccountAnnotationKeys...), e.contract.ServiceAccount.RequiredAnnotations...)
		if len(req) == 0 {
			return conformance.Skip("", "neither the provider nor the contract requires annotations")
		}
		c, err := e.call(ctx, img)
		if err != nil {
			return err
		}
		for _, k := range req {
			delete(c.annotations, k)
		}
		return expectFail(ctx, c, "required annotations "+strings.Join(req, ",")+" absent")
	})
	conformance.Case(ctx, "empty-token", func(ctx context.Context) error {
		if rs := e.provider.TokenAttributes.RequireServiceAccount; rs == nil || !*rs {
			return conformance.Skip("", "requireServiceAccount is false: a request without a token is P15's")
		}
		c, err := e.call(ctx, img)
		if err != nil {
			return err
		}
		c.token = ""
		return expectFail(ctx, c, "empty serviceAccountToken with requireServiceAccount: true")
	})
	return nil
}

func p15NoToken(ctx context.Context, e *PluginEnv) error {
	img := e.contract.Images[0]
	run, err := e.exec(ctx, pluginCall{image: img})
	if err != nil {
		return err
	}
	if err := ctxErr(ctx, run); err != nil {
		return err
	}
	want := e.contract.NoToken
	if want == "error" {
		if run.exitCode == 0 {
			return conformance.Failf("%s without a token: exit 0: the contract declares an error", img)
		}
		return nil
	}
	if run.err != nil {
		return conformance.Failf("%s without a token: %v: the contract declares %s", img, run.err, want)
	}
	r, err := e.decode(e.provider.APIVersion, run.stdout)
	if err != nil {
		return conformance.Failf("%s without a token: the kubelet discards the answer: %v", img, err)
	}
	if got := len(r.Auth) > 0; got != (want == "credentials") {
		return conformance.Failf("%s without a token: %d auth entries: the contract declares %s", img, len(r.Auth), want)
	}
	return nil
}

// p16Execs is how many concurrent execs P16 starts.
const p16Execs = 20

func p16Concurrent(ctx context.Context, e *PluginEnv) error {
	base := strings.TrimSuffix(e.contract.Images[0], "/")
	var wg sync.WaitGroup
	errs := make([]error, p16Execs)
	start := time.Now()
	for i := range p16Execs {
		img := fmt.Sprintf("%s/p16-%02d", base, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, r, err := e.answer(ctx, img)
			if err != nil {
				errs[i] = err
				return
			}
			if len(r.Auth) == 0 {
				errs[i] = conformance.Failf("%s: no credentials", img)
				return
			}
			var keys []string
			for k := range r.Auth {
				if imageMatches(k, img) {
					return
				}
				keys = append(keys, k)
			}
			errs[i] = conformance.Failf("%s: answered with keys %s, none matching its image: the execs interfere", img, strings.Join(keys, ", "))
		}()
	}
	wg.Wait()
	conformance.Note(ctx, "wall time", fmt.Sprintf("%d concurrent execs in %s", p16Execs, time.Since(start).Round(time.Millisecond)))
	var failed []string
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if !conformance.IsFailure(err) {
			return err
		}
		if first == nil {
			first = err
		}
		failed = append(failed, err.Error())
	}
	if first != nil {
		return conformance.Failf("%d of %d concurrent execs did not answer validly; first: %v", len(failed), p16Execs, first)
	}
	return nil
}
