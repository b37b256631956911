package consumer

import (
	"strings"
	"testing"

	configv1 "k8s.io/kubelet/config/v1"

	"github.com/gauntlet-conformance/gauntlet/faults"
)

// matchImages rules (the kubelet's URLsMatch): host part count, each part a
// filepath.Match, the exact port, the path a string prefix. fault, when
// set, is a consumer fault that flips the row.
func TestURLsMatch(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pattern, image string
		want           bool
		fault          faults.Fault
	}{
		{"*.example.test", "a.example.test/app", true, ""},
		{"*.example.test", "a.b.example.test/app", false, faults.CCMatchHostSuffix},
		{"*.example.test", "example.test/app", false, ""},
		{"*.*.example.test", "a.b.example.test/app", true, ""},
		{"reg.test", "reg.test/app", true, ""},
		{"reg.test", "other.test/app", false, faults.CCMatchIgnored},
		{"localhost", "localhost:5000/x", false, faults.CCMatchPortLoose},
		{"localhost:5000", "localhost:5000/x", true, ""},
		{"localhost:5000", "localhost:5001/x", false, ""},
		{"reg.test:5000/*", "reg.test:5000/pause", false, faults.CCMatchPathGlob},
		{"reg.test:5000/pa", "reg.test:5000/pause", true, faults.CCMatchPathGlob},
		{"reg.test/foo", "reg.test/foobar", true, ""},
		{"reg.test/foo", "reg.test/fo", false, ""},
		{"reg.test", "reg.test:443/x", false, ""},
		{"docker.io", "docker.io/library/busybox", true, ""},
	} {
		if got := urlsMatch(c.pattern, c.image, nil); got != c.want {
			t.Errorf("urlsMatch(%q, %q) = %v, want %v", c.pattern, c.image, got, c.want)
		}
		if c.fault != "" {
			if got := urlsMatch(c.pattern, c.image, faults.NewSet(c.fault)); got == c.want {
				t.Errorf("with %s, urlsMatch(%q, %q) = %v, want it flipped", c.fault, c.pattern, c.image, got)
			}
		}
	}
}

// The keyring offers more specific auth keys first, one key's credentials in
// provider order, and index.docker.io as Docker Hub's fallback.
func TestKeyringOrder(t *testing.T) {
	t.Parallel()
	var k keyring
	k.add(map[string]Credential{"reg.test": {Username: "first-host"}, "reg.test/team": {Username: "first-team"}})
	k.add(map[string]Credential{"reg.test": {Username: "second-host"}, "https://other.test": {Username: "other"}})
	k.add(map[string]Credential{"index.docker.io": {Username: "hub"}})
	var got []string
	for _, c := range k.lookup("reg.test/team/app") {
		got = append(got, c.Username)
	}
	if want := "first-team first-host second-host"; strings.Join(got, " ") != want {
		t.Errorf("reg.test/team/app: %q, want %q", got, want)
	}
	if c := k.lookup("docker.io/library/busybox"); len(c) != 1 || c[0].Username != "hub" {
		t.Errorf("docker.io/library/busybox: %v, want the index.docker.io entry", c)
	}
	if c := k.lookup("elsewhere.test/app"); len(c) != 0 {
		t.Errorf("elsewhere.test/app: %v, want none", c)
	}
}

// Config rejections name the field and value, in the kubelet's wording.
func TestConfigValidation(t *testing.T) {
	t.Parallel()
	bad := func(mod func(p *configv1.CredentialProvider)) *configv1.CredentialProviderConfig {
		yes := true
		p := configv1.CredentialProvider{Name: "p", MatchImages: []string{"reg.test"}, APIVersion: v1APIVersion,
			TokenAttributes: &configv1.ServiceAccountTokenAttributes{ServiceAccountTokenAudience: "aud", RequireServiceAccount: &yes, CacheType: "Token"}}
		mod(&p)
		return &configv1.CredentialProviderConfig{Providers: []configv1.CredentialProvider{p}}
	}
	for _, c := range []struct {
		name  string
		cfg   *configv1.CredentialProviderConfig
		want  string
		fault faults.Fault
	}{
		{"no-default", bad(func(p *configv1.CredentialProvider) {}), "providers.defaultCacheDuration: Required value", faults.CCConfigUnvalidated},
		{"slash", bad(func(p *configv1.CredentialProvider) { p.Name = "a/b" }), `providers.name: Invalid value: "a/b": provider name cannot contain '/'`, faults.CCConfigUnvalidated},
		{"cache-type", bad(func(p *configv1.CredentialProvider) { p.TokenAttributes.CacheType = "Forever" }), `providers.tokenAttributes.cacheType: Unsupported value: "Forever"`, faults.CCTokenAttrsUnvalidated},
	} {
		errs := validateConfig(c.cfg, nil)
		if !strings.Contains(errs.ToAggregate().Error(), c.want) {
			t.Errorf("%s: %v, want it to contain %q", c.name, errs.ToAggregate(), c.want)
		}
		if errs := validateConfig(c.cfg, faults.NewSet(c.fault)); errs.ToAggregate() != nil && strings.Contains(errs.ToAggregate().Error(), c.want) {
			t.Errorf("%s: with %s still %v", c.name, c.fault, errs.ToAggregate())
		}
	}
}

// Responses decode strictly: the request's apiVersion, one JSON document,
// no unknown or duplicate fields.
func TestDecodeResponse(t *testing.T) {
	t.Parallel()
	ok := `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Image","auth":{"reg.test":{"username":"u","password":"p"}}}`
	for _, c := range []struct {
		name, body string
		valid      bool
	}{
		{"ok", ok, true},
		{"other-version", strings.Replace(ok, "/v1", "/v1beta1", 1), false},
		{"text-before", "hello\n" + ok, false},
		{"text-after", ok + "\nbye", false},
		{"unknown-field", strings.Replace(ok, `"auth"`, `"expiresIn":3,"auth"`, 1), false},
		{"duplicate-field", strings.Replace(ok, `"auth"`, `"cacheKeyType":"Image","auth"`, 1), false},
	} {
		r, err := decodeResponse([]byte(c.body), v1APIVersion, nil)
		if (err == nil) != c.valid {
			t.Errorf("%s: err %v, want valid=%v", c.name, err, c.valid)
		}
		if c.valid && (r.Auth["reg.test"].Password != "p" || r.CacheKeyType != "Image") {
			t.Errorf("%s: decoded %+v", c.name, r)
		}
		if _, err := decodeResponse([]byte(c.body), v1APIVersion, faults.NewSet(faults.CCDecodeLax)); err != nil && c.name != "duplicate-field" {
			t.Errorf("%s: the lax decoder (fault) rejected it: %v", c.name, err)
		}
	}
}
