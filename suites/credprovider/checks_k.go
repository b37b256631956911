package credprovider

// K checks: a consumer's matching, invocation, caching and error handling,
// judged from what the probe plugin recorded and what the consumer offered.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	configv1 "k8s.io/kubelet/config/v1"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
)

const v1 = "credentialprovider.kubelet.k8s.io/v1"

// anon is a pod without a service account (the K checks' puller).
func anon(check string) pod { return newPod("gauntlet-"+check, check+"-pod", nil) }

// countIs fails unless the probe ran exactly want times as name.
func countIs(sc *scenario, name string, want int, when string) error {
	n, err := sc.invocations(name)
	if err != nil {
		return err
	}
	if n != want {
		return conformance.Failf("%s: provider %s was invoked %d time(s), want %d", when, name, n, want)
	}
	return nil
}

// credsString renders credentials for messages.
func credsString(cs []credential) string {
	if len(cs) == 0 {
		return "none"
	}
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return strings.Join(s, ", ")
}

func hasUser(cs []credential, user string) bool {
	return slices.ContainsFunc(cs, func(c credential) bool { return c.Username == user })
}

// script answers every invocation with r.
func script(r probeResponse) probeScript { return probeScript{Responses: []probeResponse{r}} }

// imageResponse answers credentials for the requested image with the given
// cache key type and duration (nil: omitted).
func imageResponse(keyType string, dur *string) probeResponse {
	return probeResponse{CacheKeyType: keyType, CacheDuration: dur,
		Auth: map[string]credential{"{image}": {Username: "{name}", Password: "{name}-{n}"}}}
}

// authFor answers credentials under fixed auth keys.
func authFor(keyType string, dur *string, keys ...string) probeResponse {
	r := probeResponse{CacheKeyType: keyType, CacheDuration: dur, Auth: map[string]credential{}}
	for _, k := range keys {
		r.Auth[k] = credential{Username: "{name}", Password: "{name}-{n}"}
	}
	return r
}

// invokedFor reports whether name was invoked for image (the normalized
// repository the request carried).
func invokedFor(sc *scenario, name, image string) (bool, error) {
	rs, err := sc.records(name)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(rs, func(r probeRecord) bool { return r.Image == image }), nil
}

var _ = Suite.Register(
	conformance.Check[*Env]{
		ID: "K01", Name: "a provider whose matchImages do not match the image is not invoked",
		Faults: []faults.Fault{faults.CCMatchIgnored},
		Run: func(ctx context.Context, e *Env) error {
			spec := scenarioSpec{providers: []configv1.CredentialProvider{provider("k01", []string{"k01.gauntlet.test"})}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				p := anon("k01")
				if _, err := sc.pullOne(ctx, "elsewhere.gauntlet.test/app:1", p); err != nil {
					return err
				}
				if err := countIs(sc, "k01", 0, "pull of elsewhere.gauntlet.test/app"); err != nil {
					return err
				}
				// The control: a matching image does invoke it.
				creds, err := sc.pullOne(ctx, "k01.gauntlet.test/app:1", p)
				if err != nil {
					return err
				}
				if n, err := sc.invocations("k01"); err != nil || n != 1 || !hasUser(creds, "k01") {
					return conformance.Setupf("control pull of a matching image: %d invocation(s), credentials %s (want 1 and k01's): the consumer does not run the probe plugin", n, credsString(creds))
				}
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K02", Name: "a pattern without a port does not match a host with one; the exact port does",
		Faults: []faults.Fault{faults.CCMatchPortLoose},
		Cases:  []string{"no-port-pattern", "port-pattern"},
		Run: func(ctx context.Context, e *Env) error {
			spec := scenarioSpec{providers: []configv1.CredentialProvider{
				provider("k02-noport", []string{"localhost"}), provider("k02-port", []string{"localhost:5000"})}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				if _, err := sc.pullOne(ctx, "localhost:5000/x:1", anon("k02")); err != nil {
					return err
				}
				conformance.Case(ctx, "no-port-pattern", func(ctx context.Context) error {
					return countIs(sc, "k02-noport", 0, "matchImages localhost, pull of localhost:5000/x")
				})
				conformance.Case(ctx, "port-pattern", func(ctx context.Context) error {
					return countIs(sc, "k02-port", 1, "matchImages localhost:5000, pull of localhost:5000/x")
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K03", Name: "the path of a pattern is a string prefix, not a glob",
		Faults: []faults.Fault{faults.CCMatchPathGlob},
		Cases:  []string{"glob-path", "prefix-path"},
		Run: func(ctx context.Context, e *Env) error {
			spec := scenarioSpec{providers: []configv1.CredentialProvider{
				provider("k03-glob", []string{"k03.gauntlet.test:5000/*"}), provider("k03-prefix", []string{"k03.gauntlet.test:5000/pa"})}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				if _, err := sc.pullOne(ctx, "k03.gauntlet.test:5000/pause:3.10", anon("k03")); err != nil {
					return err
				}
				conformance.Case(ctx, "glob-path", func(ctx context.Context) error {
					return countIs(sc, "k03-glob", 0, "matchImages k03.gauntlet.test:5000/*, pull of k03.gauntlet.test:5000/pause")
				})
				conformance.Case(ctx, "prefix-path", func(ctx context.Context) error {
					return countIs(sc, "k03-prefix", 1, "matchImages k03.gauntlet.test:5000/pa, pull of k03.gauntlet.test:5000/pause")
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K04", Name: "a host wildcard matches one dot-separated part",
		Faults: []faults.Fault{faults.CCMatchHostSuffix},
		Cases:  []string{"one-part", "two-parts", "apex"},
		Run: func(ctx context.Context, e *Env) error {
			spec := scenarioSpec{providers: []configv1.CredentialProvider{provider("k04", []string{"*.k04.gauntlet.test"})}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				images := []string{"a.k04.gauntlet.test/app", "a.b.k04.gauntlet.test/app", "k04.gauntlet.test/app"}
				if _, err := sc.pull(ctx, false, images, anon("k04")); err != nil {
					return err
				}
				for i, c := range []string{"one-part", "two-parts", "apex"} {
					conformance.Case(ctx, c, func(ctx context.Context) error {
						got, err := invokedFor(sc, "k04", images[i])
						if err != nil {
							return err
						}
						if want := i == 0; got != want {
							return conformance.Failf("matchImages *.k04.gauntlet.test, pull of %s: invoked=%v, want %v", images[i], got, want)
						}
						return nil
					})
				}
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K05", Name: "the request's image is the normalized repository, without tag or digest",
		Faults: []faults.Fault{faults.CCRequestImageRaw},
		Cases:  []string{"tag", "digest", "tag-and-digest", "docker-hub-short-name"},
		Run: func(ctx context.Context, e *Env) error {
			const digest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
			cases := []struct{ name, image, want string }{
				{"tag", "k05.gauntlet.test/team/app:1.2", "k05.gauntlet.test/team/app"},
				{"digest", "k05.gauntlet.test/team/app" + digest, "k05.gauntlet.test/team/app"},
				{"tag-and-digest", "k05.gauntlet.test/team/app:1.2" + digest, "k05.gauntlet.test/team/app"},
				{"docker-hub-short-name", "busybox:1.36", "docker.io/library/busybox"},
			}
			spec := scenarioSpec{
				providers: []configv1.CredentialProvider{provider("k05", []string{"k05.gauntlet.test", "docker.io"})},
				scripts:   map[string]probeScript{"k05": script(imageResponse("Image", ptr("0s")))},
			}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				for i, c := range cases {
					if _, err := sc.pullOne(ctx, c.image, anon("k05")); err != nil {
						return err
					}
					conformance.Case(ctx, c.name, func(ctx context.Context) error {
						rs, err := sc.records("k05")
						if err != nil {
							return err
						}
						if len(rs) != i+1 {
							return conformance.Failf("pull of %s: the provider was invoked %d time(s) in all, want %d (cacheDuration 0s)", c.image, len(rs), i+1)
						}
						if got := rs[i].Image; got != c.want {
							return conformance.Failf("pull of %s: the request's image is %q, want %q", c.image, got, c.want)
						}
						return nil
					})
				}
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K06", Name: "the config's args and env reach the plugin, and the config's env wins over the host's",
		Faults: []faults.Fault{faults.CCEnvHostWins},
		Cases:  []string{"args", "config-env", "config-env-wins", "host-env-inherited"},
		Run: func(ctx context.Context, e *Env) error {
			p := provider("k06", []string{"k06.gauntlet.test"})
			p.Args = []string{"--k06-flag", "value with spaces"}
			p.Env = []configv1.ExecEnvVar{{Name: "GAUNTLET_K06_CONFIG", Value: "from-config"}, {Name: "GAUNTLET_K06_BOTH", Value: "from-config"}}
			s := script(okResponse())
			s.RecordEnv = []string{"GAUNTLET_K06_CONFIG", "GAUNTLET_K06_BOTH", "GAUNTLET_K06_HOST"}
			spec := scenarioSpec{providers: []configv1.CredentialProvider{p}, scripts: map[string]probeScript{"k06": s},
				hostEnv: []string{"GAUNTLET_K06_BOTH=from-host", "GAUNTLET_K06_HOST=from-host"}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				if _, err := sc.pullOne(ctx, "k06.gauntlet.test/app", anon("k06")); err != nil {
					return err
				}
				rs, err := sc.records("k06")
				if err != nil {
					return err
				}
				if len(rs) != 1 {
					return conformance.Failf("the provider was invoked %d time(s) for one pull, want 1", len(rs))
				}
				r := rs[0]
				env := func(name, k, want string) {
					conformance.Case(ctx, name, func(ctx context.Context) error {
						if got, ok := r.Env[k]; !ok || got != want {
							return conformance.Failf("the plugin's %s is %q (set: %v), want %q", k, got, ok, want)
						}
						return nil
					})
				}
				conformance.Case(ctx, "args", func(ctx context.Context) error {
					if !slices.Equal(r.Args, p.Args) {
						return conformance.Failf("the plugin's args are %q, want the config's %q", r.Args, p.Args)
					}
					return nil
				})
				env("config-env", "GAUNTLET_K06_CONFIG", "from-config")
				env("config-env-wins", "GAUNTLET_K06_BOTH", "from-config")
				env("host-env-inherited", "GAUNTLET_K06_HOST", "from-host")
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K07", Name: "cacheDuration is honoured: pulls inside it share one invocation, a pull after it invokes again",
		Faults: []faults.Fault{faults.CCCacheNoExpiry},
		Cases:  []string{"inside", "after-expiry"},
		Run: func(ctx context.Context, e *Env) error {
			const ttl = 2 * time.Second // short, so the check waits seconds
			spec := scenarioSpec{providers: []configv1.CredentialProvider{provider("k07", []string{"k07.gauntlet.test"})},
				scripts: map[string]probeScript{"k07": script(imageResponse("Image", ptr(ttl.String())))}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				p := anon("k07")
				if _, err := sc.pull(ctx, false, []string{"k07.gauntlet.test/app", "k07.gauntlet.test/app"}, p); err != nil {
					return err
				}
				if err := conformance.Case(ctx, "inside", func(ctx context.Context) error {
					return countIs(sc, "k07", 1, "two pulls inside cacheDuration "+ttl.String())
				}); err != nil {
					return nil
				}
				select {
				case <-time.After(ttl + 700*time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
				if _, err := sc.pullOne(ctx, "k07.gauntlet.test/app", p); err != nil {
					return err
				}
				conformance.Case(ctx, "after-expiry", func(ctx context.Context) error {
					return countIs(sc, "k07", 2, "a pull after cacheDuration "+ttl.String()+" expired")
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K08", Name: "cacheDuration 0 is not cached: every pull invokes",
		Faults: []faults.Fault{faults.CCCacheZeroDuration},
		Run: func(ctx context.Context, e *Env) error {
			spec := scenarioSpec{providers: []configv1.CredentialProvider{provider("k08", []string{"k08.gauntlet.test"})},
				scripts: map[string]probeScript{"k08": script(imageResponse("Image", ptr("0s")))}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				if _, err := sc.pull(ctx, false, []string{"k08.gauntlet.test/app", "k08.gauntlet.test/app", "k08.gauntlet.test/app"}, anon("k08")); err != nil {
					return err
				}
				return countIs(sc, "k08", 3, "three pulls with cacheDuration 0s (defaultCacheDuration 1h)")
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K09", Name: "an omitted cacheDuration means defaultCacheDuration (0: not cached)",
		Faults: []faults.Fault{faults.CCDefaultDurationIgnored},
		Cases:  []string{"default-applies", "zero-default-not-cached"},
		Run: func(ctx context.Context, e *Env) error {
			hour, zero := provider("k09-hour", []string{"k09.gauntlet.test"}), provider("k09-zero", []string{"k09.gauntlet.test"})
			zero.DefaultCacheDuration = ptrDuration(0)
			resp := script(imageResponse("Image", nil))
			spec := scenarioSpec{providers: []configv1.CredentialProvider{hour, zero},
				scripts: map[string]probeScript{"k09-hour": resp, "k09-zero": resp}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				if _, err := sc.pull(ctx, false, []string{"k09.gauntlet.test/app", "k09.gauntlet.test/app"}, anon("k09")); err != nil {
					return err
				}
				conformance.Case(ctx, "default-applies", func(ctx context.Context) error {
					return countIs(sc, "k09-hour", 1, "two pulls, no cacheDuration, defaultCacheDuration 1h")
				})
				conformance.Case(ctx, "zero-default-not-cached", func(ctx context.Context) error {
					return countIs(sc, "k09-zero", 2, "two pulls, no cacheDuration, defaultCacheDuration 0s")
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K10", Name: "an Image cache key is shared by tags of one repository, not by another repository",
		Faults: []faults.Fault{faults.CCImageKeyWithTag},
		Cases:  []string{"other-tag-shares", "other-repository-does-not"},
		Run: func(ctx context.Context, e *Env) error {
			spec := scenarioSpec{providers: []configv1.CredentialProvider{provider("k10", []string{"k10.gauntlet.test"})},
				scripts: map[string]probeScript{"k10": script(imageResponse("Image", ptr("1h")))}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				b, err := sc.pull(ctx, false, []string{"k10.gauntlet.test/a:1", "k10.gauntlet.test/a:tag2", "k10.gauntlet.test/b:1"}, anon("k10"))
				if err != nil {
					return err
				}
				conformance.Case(ctx, "other-tag-shares", func(ctx context.Context) error {
					rs, err := sc.records("k10")
					if err != nil {
						return err
					}
					n := 0
					for _, r := range rs {
						if r.Image == "k10.gauntlet.test/a" {
							n++
						}
					}
					if n != 1 {
						return conformance.Failf("pulls of a:1 then a:tag2 (cacheKeyType Image) invoked the provider %d time(s) for k10.gauntlet.test/a, want 1 (a:tag2 served from a:1's entry)", n)
					}
					if got := b.Results[1].Credentials; len(got) == 0 || got[0] != b.Results[0].Credentials[0] {
						return conformance.Failf("a:tag2 got %s, want a:1's cached %s", credsString(got), credsString(b.Results[0].Credentials))
					}
					return nil
				})
				conformance.Case(ctx, "other-repository-does-not", func(ctx context.Context) error {
					ok, err := invokedFor(sc, "k10", "k10.gauntlet.test/b")
					if err != nil {
						return err
					}
					if !ok {
						return conformance.Failf("k10.gauntlet.test/b was served from k10.gauntlet.test/a's Image entry")
					}
					return nil
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K11", Name: "a Registry cache key is shared by the registry's repositories, not by another port",
		Faults: []faults.Fault{faults.CCRegistryKeyNoPort},
		Cases:  []string{"same-registry-shares", "other-port-does-not"},
		Run: func(ctx context.Context, e *Env) error {
			const r1, r2 = "k11.gauntlet.test:5000", "k11.gauntlet.test:5001"
			spec := scenarioSpec{providers: []configv1.CredentialProvider{provider("k11", []string{r1, r2})},
				scripts: map[string]probeScript{"k11": script(authFor("Registry", ptr("1h"), r1, r2))}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				if _, err := sc.pull(ctx, false, []string{r1 + "/a", r1 + "/b"}, anon("k11")); err != nil {
					return err
				}
				conformance.Case(ctx, "same-registry-shares", func(ctx context.Context) error {
					return countIs(sc, "k11", 1, "pulls of "+r1+"/a and /b (cacheKeyType Registry)")
				})
				if _, err := sc.pullOne(ctx, r2+"/a", anon("k11")); err != nil {
					return err
				}
				conformance.Case(ctx, "other-port-does-not", func(ctx context.Context) error {
					ok, err := invokedFor(sc, "k11", r2+"/a")
					if err != nil {
						return err
					}
					if !ok {
						return conformance.Failf("%s/a was served from %s's Registry entry", r2, r1)
					}
					return nil
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K12", Name: "a Global cache key is shared across registries",
		Faults: []faults.Fault{faults.CCGlobalKeyAsImage},
		Run: func(ctx context.Context, e *Env) error {
			const a, b = "k12a.gauntlet.test", "k12b.gauntlet.test"
			spec := scenarioSpec{providers: []configv1.CredentialProvider{provider("k12", []string{a, b})},
				scripts: map[string]probeScript{"k12": script(authFor("Global", ptr("1h"), a, b))}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				res, err := sc.pull(ctx, false, []string{a + "/x", b + "/y"}, anon("k12"))
				if err != nil {
					return err
				}
				if err := countIs(sc, "k12", 1, "pulls from two registries (cacheKeyType Global)"); err != nil {
					return err
				}
				if !hasUser(res.Results[1].Credentials, "k12") {
					return conformance.Failf("%s/y got %s, want the Global entry's credentials", b, credsString(res.Results[1].Credentials))
				}
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K13", Name: "a response with a missing or invalid cacheKeyType is discarded and not cached",
		Faults: []faults.Fault{faults.CCCacheKeyTypeLax},
		Cases:  []string{"missing", "invalid"},
		Run: func(ctx context.Context, e *Env) error {
			spec := scenarioSpec{
				providers: []configv1.CredentialProvider{provider("k13-missing", []string{"k13m.gauntlet.test"}), provider("k13-invalid", []string{"k13i.gauntlet.test"})},
				scripts: map[string]probeScript{"k13-missing": script(imageResponse("", ptr("1h"))),
					"k13-invalid": script(imageResponse("Forever", ptr("1h")))},
			}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				for _, c := range []struct{ name, provider, image string }{
					{"missing", "k13-missing", "k13m.gauntlet.test/app"}, {"invalid", "k13-invalid", "k13i.gauntlet.test/app"}} {
					b, err := sc.pull(ctx, false, []string{c.image, c.image}, anon("k13"))
					if err != nil {
						return err
					}
					conformance.Case(ctx, c.name, func(ctx context.Context) error {
						for i, r := range b.Results {
							if len(r.Credentials) > 0 {
								return conformance.Failf("pull %d of %s (cacheKeyType %s) got %s, want the response discarded", i+1, c.image, c.name, credsString(r.Credentials))
							}
						}
						return countIs(sc, c.provider, 2, "two pulls whose responses must be discarded (nothing cached)")
					})
				}
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K14", Name: "a response with another apiVersion, text around the JSON or an unknown or duplicate field is discarded",
		Faults: []faults.Fault{faults.CCDecodeLax},
		Cases:  []string{"api-version-mismatch", "text-before-json", "unknown-field", "duplicate-field"},
		Run: func(ctx context.Context, e *Env) error {
			bad := imageResponse("Image", ptr("1h"))
			mismatch, prefixed, unknown := bad, bad, bad
			mismatch.APIVersion = "credentialprovider.kubelet.k8s.io/v1beta1"
			prefixed.Prefix = "fetched a token for {image}\n"
			unknown.Extra = map[string]any{"expiresIn": 3600}
			dup := fmt.Sprintf(`{"apiVersion":%q,"kind":"CredentialProviderResponse","cacheKeyType":"Image","cacheKeyType":"Image","auth":{"{image}":{"username":"{name}","password":"{name}-{n}"}}}`, v1)
			duplicate := probeResponse{Raw: &dup}
			cases := []struct {
				name string
				resp probeResponse
			}{{"api-version-mismatch", mismatch}, {"text-before-json", prefixed}, {"unknown-field", unknown}, {"duplicate-field", duplicate}}
			spec := scenarioSpec{scripts: map[string]probeScript{}}
			for _, c := range cases {
				spec.providers = append(spec.providers, provider("k14-"+c.name, []string{"k14-" + c.name + ".gauntlet.test"}))
				spec.scripts["k14-"+c.name] = script(c.resp)
			}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				for _, c := range cases {
					image := "k14-" + c.name + ".gauntlet.test/app"
					creds, err := sc.pullOne(ctx, image, anon("k14"))
					if err != nil {
						return err
					}
					conformance.Case(ctx, c.name, func(ctx context.Context) error {
						if err := countIs(sc, "k14-"+c.name, 1, "pull of "+image); err != nil {
							return err
						}
						if len(creds) > 0 {
							return conformance.Failf("a response with %s was used: credentials %s", c.name, credsString(creds))
						}
						return nil
					})
				}
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K15", Name: "a plugin exiting non-zero is discarded, reported with its name and stderr, and the pull continues",
		Faults: []faults.Fault{faults.CCExitStatusIgnored},
		Cases:  []string{"discarded", "error-names-plugin-and-stderr", "pull-continues"},
		Run: func(ctx context.Context, e *Env) error {
			boom := imageResponse("Image", ptr("1h"))
			boom.ExitCode, boom.Stderr = 1, "boom: upstream said no"
			spec := scenarioSpec{
				providers: []configv1.CredentialProvider{provider("k15-boom", []string{"k15.gauntlet.test"}), provider("k15-ok", []string{"k15.gauntlet.test"})},
				scripts:   map[string]probeScript{"k15-boom": script(boom)},
			}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				b, err := sc.pull(ctx, false, []string{"k15.gauntlet.test/app"}, anon("k15"))
				if err != nil {
					return err
				}
				creds := b.Results[0].Credentials
				if err := countIs(sc, "k15-boom", 1, "pull of k15.gauntlet.test/app"); err != nil {
					return err
				}
				conformance.Case(ctx, "discarded", func(ctx context.Context) error {
					if hasUser(creds, "k15-boom") {
						return conformance.Failf("the credentials of a plugin that exited 1 were used: %s", credsString(creds))
					}
					return nil
				})
				conformance.Case(ctx, "error-names-plugin-and-stderr", func(ctx context.Context) error {
					for _, l := range b.Log {
						if strings.Contains(l, "k15-boom") && strings.Contains(l, "boom: upstream said no") {
							return nil
						}
					}
					return conformance.Failf("no error names the plugin k15-boom with its stderr %q; the consumer reported: %q", "boom: upstream said no", b.Log)
				})
				conformance.Case(ctx, "pull-continues", func(ctx context.Context) error {
					if !hasUser(creds, "k15-ok") {
						return conformance.Failf("the other provider's credentials are missing: got %s", credsString(creds))
					}
					return nil
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K16", Name: "a hanging plugin is killed at the consumer's deadline and the pull proceeds without it",
		Faults: []faults.Fault{faults.CCDeadlineIgnored, faults.CCWaitForPluginChildren},
		Slow:   true, Timeout: 3 * time.Minute,
		Cases: []string{"returns-at-deadline", "plugin-killed", "pull-proceeds", "child-holding-stdout"},
		Run: func(ctx context.Context, e *Env) error {
			c, err := e.consumer()
			if err != nil {
				return err
			}
			deadline := c.Settings.ExecDeadline
			margin := 5*time.Second + deadline/4
			conformance.Note(ctx, "exec-deadline", deadline.String())
			// Two scenarios at once (each waits the whole deadline): a
			// plugin that hangs, and one that hangs after starting a child
			// that inherits its stdout and stderr (a helper left running),
			// which a kill of the plugin alone does not close.
			type outcome struct {
				creds []credential
				took  time.Duration
				rec   []probeRecord
				err   error
			}
			run := func(hang probeResponse) outcome {
				spec := scenarioSpec{
					providers: []configv1.CredentialProvider{provider("k16-hang", []string{"k16.gauntlet.test"}), provider("k16-ok", []string{"k16.gauntlet.test"})},
					scripts:   map[string]probeScript{"k16-hang": script(hang)},
				}
				var o outcome
				o.err = e.withScenario(ctx, spec, func(sc *scenario) error {
					pctx, cancel := context.WithTimeout(ctx, deadline+margin)
					defer cancel()
					start := time.Now()
					creds, err := sc.pullOne(pctx, "k16.gauntlet.test/app", anon("k16"))
					o.took = time.Since(start)
					if err != nil && pctx.Err() != nil && ctx.Err() == nil {
						return conformance.Failf("the pull did not return within the deadline %s + %s while the plugin hung: the consumer does not enforce its plugin deadline", deadline, margin)
					}
					if err != nil {
						return err
					}
					o.creds = creds
					o.rec, err = sc.records("k16-hang")
					if err == nil && len(o.rec) != 1 {
						err = conformance.Failf("the hanging provider was invoked %d time(s), want 1", len(o.rec))
					}
					return err
				})
				return o
			}
			childc := make(chan outcome, 1)
			go func() { childc <- run(probeResponse{HangChild: true}) }()
			plain := run(probeResponse{Hang: true})
			child := <-childc
			if plain.err != nil && !conformance.IsFailure(plain.err) {
				return plain.err
			}
			conformance.Note(ctx, "pull-took", plain.took.Round(10*time.Millisecond).String())
			conformance.Case(ctx, "returns-at-deadline", func(ctx context.Context) error {
				switch {
				case plain.err != nil:
					return plain.err
				case plain.took < deadline*9/10:
					return conformance.Failf("the pull returned after %s, before the declared deadline %s", plain.took, deadline)
				}
				return nil
			})
			conformance.Case(ctx, "plugin-killed", func(ctx context.Context) error {
				if plain.err != nil {
					return plain.err
				}
				if err := syscall.Kill(plain.rec[0].PID, 0); err == nil || !errors.Is(err, syscall.ESRCH) {
					return conformance.Failf("the hanging plugin (pid %d) is still running after the pull returned", plain.rec[0].PID)
				}
				return nil
			})
			conformance.Case(ctx, "pull-proceeds", func(ctx context.Context) error {
				if plain.err != nil {
					return plain.err
				}
				if !hasUser(plain.creds, "k16-ok") || hasUser(plain.creds, "k16-hang") {
					return conformance.Failf("credentials %s, want only k16-ok's", credsString(plain.creds))
				}
				return nil
			})
			conformance.Case(ctx, "child-holding-stdout", func(ctx context.Context) error {
				if child.err != nil {
					return child.err
				}
				conformance.Note(ctx, "pull-took-with-child", child.took.Round(10*time.Millisecond).String())
				if !hasUser(child.creds, "k16-ok") {
					return conformance.Failf("credentials %s, want k16-ok's", credsString(child.creds))
				}
				return nil
			})
			return nil
		},
	},
	conformance.Check[*Env]{
		ID: "K17", Name: "concurrent pulls of one image collapse into fewer invocations (singleflight)",
		Faults: []faults.Fault{faults.CCNoSingleflight},
		Run: func(ctx context.Context, e *Env) error {
			r := imageResponse("Image", ptr("0s")) // not cached: only singleflight can collapse
			r.Sleep = "700ms"
			spec := scenarioSpec{providers: []configv1.CredentialProvider{provider("k17", []string{"k17.gauntlet.test"})},
				scripts: map[string]probeScript{"k17": script(r)}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				const pulls = 8
				images := slices.Repeat([]string{"k17.gauntlet.test/app"}, pulls)
				b, err := sc.pull(ctx, true, images, anon("k17"))
				if err != nil {
					return err
				}
				n, err := sc.invocations("k17")
				if err != nil {
					return err
				}
				conformance.Note(ctx, "invocations", fmt.Sprint(n))
				if n >= pulls {
					return conformance.Failf("%d concurrent pulls of one image ran the plugin %d times: no singleflight", pulls, n)
				}
				for i, res := range b.Results {
					if !hasUser(res.Credentials, "k17") {
						return conformance.Failf("concurrent pull %d got %s, want the shared answer", i+1, credsString(res.Credentials))
					}
				}
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K18", Name: "overlapping providers are all invoked and the earlier provider's credentials come first",
		Faults: []faults.Fault{faults.CCProviderOrderReversed},
		Cases:  []string{"both-invoked", "config-order"},
		Run: func(ctx context.Context, e *Env) error {
			const reg = "k18.gauntlet.test"
			resp := script(authFor("Image", ptr("1h"), reg))
			spec := scenarioSpec{providers: []configv1.CredentialProvider{provider("k18-second", []string{reg}), provider("k18-first", []string{reg})},
				scripts: map[string]probeScript{"k18-second": resp, "k18-first": resp}}
			// Config order deliberately differs from name order.
			spec.providers[0], spec.providers[1] = spec.providers[1], spec.providers[0]
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				creds, err := sc.pullOne(ctx, reg+"/app", anon("k18"))
				if err != nil {
					return err
				}
				conformance.Case(ctx, "both-invoked", func(ctx context.Context) error {
					return errors.Join(countIs(sc, "k18-first", 1, "pull of "+reg+"/app"), countIs(sc, "k18-second", 1, "pull of "+reg+"/app"))
				})
				conformance.Case(ctx, "config-order", func(ctx context.Context) error {
					if len(creds) != 2 || creds[0].Username != "k18-first" || creds[1].Username != "k18-second" {
						return conformance.Failf("credentials in order %s, want k18-first's then k18-second's (config order)", credsString(creds))
					}
					return nil
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "K19", Name: "invalid provider configs are rejected with a message naming the problem",
		Faults: []faults.Fault{faults.CCConfigUnvalidated},
		Cases:  k19Names(),
		Run: func(ctx context.Context, e *Env) error {
			return configTable(ctx, e, k19Cases)
		},
	},
	conformance.Check[*Env]{
		ID: "K20", Name: "invalid tokenAttributes are rejected with a message naming the problem",
		Features: []conformance.Feature{ConsumerFeatureSATokens},
		Faults:   []faults.Fault{faults.CCTokenAttrsUnvalidated},
		Cases:    k20Names(),
		Run: func(ctx context.Context, e *Env) error {
			return configTable(ctx, e, k20Cases)
		},
	},
	conformance.Check[*Env]{
		ID: "K21", Name: "a config directory is merged in lexicographic order and a name defined twice is rejected",
		Features: []conformance.Feature{ConsumerFeatureConfigDir},
		Faults:   []faults.Fault{faults.CCConfigDirUnsorted},
		Cases:    []string{"lexicographic-order", "duplicate-across-files"},
		Run: func(ctx context.Context, e *Env) error {
			c, err := e.consumer()
			if err != nil {
				return err
			}
			const reg = "k21.gauntlet.test"
			file := func(name string) string {
				return fmt.Sprintf("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n- name: %s\n  matchImages: [%q]\n  defaultCacheDuration: 1h\n  apiVersion: %s\n", name, reg, v1)
			}
			resp := script(authFor("Image", ptr("1h"), reg))
			conformance.Case(ctx, "lexicographic-order", func(ctx context.Context) error {
				spec := scenarioSpec{dir: true, files: map[string]string{
					"20-a.yaml": file("k21-third"), "10-z.yml": file("k21-first"),
					"15-m.json":    fmt.Sprintf(`{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[{"name":"k21-second","matchImages":[%q],"defaultCacheDuration":"1h","apiVersion":%q}]}`, reg, v1),
					"05-notes.txt": "not a config: must be ignored\n"},
					probes:  []string{"k21-first", "k21-second", "k21-third"},
					scripts: map[string]probeScript{"k21-first": resp, "k21-second": resp, "k21-third": resp}}
				return e.withScenario(ctx, spec, func(sc *scenario) error {
					creds, err := sc.pullOne(ctx, reg+"/app", anon("k21"))
					if err != nil {
						return err
					}
					var got []string
					for _, c := range creds {
						got = append(got, c.Username)
					}
					if want := []string{"k21-first", "k21-second", "k21-third"}; !slices.Equal(got, want) {
						return conformance.Failf("providers from 10-z.yml, 15-m.json, 20-a.yaml answered in order %q, want %q (file order)", got, want)
					}
					return nil
				})
			})
			conformance.Case(ctx, "duplicate-across-files", func(ctx context.Context) error {
				spec := scenarioSpec{dir: true, files: map[string]string{"10-a.yaml": file("k21-dup"), "20-b.yaml": file("k21-dup")},
					probes: []string{"k21-dup"}}
				sc, err := c.open(ctx, spec)
				var ce *configError
				switch {
				case err == nil:
					sc.close()
					return conformance.Failf("a config directory defining provider k21-dup in two files was accepted")
				case !errors.As(err, &ce):
					return err
				case !strings.Contains(ce.msg, "k21-dup"):
					return conformance.Failf("the rejection does not name the duplicate provider k21-dup: %q", ce.msg)
				}
				return nil
			})
			return nil
		},
	},
)

// configCase is one invalid config and what its rejection must mention
// (any of).
type configCase struct {
	name    string
	yaml    string
	probes  []string
	mention []string
}

// configTable opens one scenario per case and judges each rejection.
func configTable(ctx context.Context, e *Env, cases []configCase) error {
	c, err := e.consumer()
	if err != nil {
		return err
	}
	for _, k := range cases {
		conformance.Case(ctx, k.name, func(ctx context.Context) error {
			sc, err := c.open(ctx, scenarioSpec{files: map[string]string{"config.yaml": k.yaml}, probes: k.probes})
			var ce *configError
			switch {
			case err == nil:
				sc.close()
				return conformance.Failf("accepted: %s", conformance.FirstLine(strings.ReplaceAll(k.yaml, "\n", " "), 300))
			case !errors.As(err, &ce):
				return err
			}
			for _, m := range k.mention {
				if strings.Contains(ce.msg, m) {
					return nil
				}
			}
			return conformance.Failf("rejected, but the message names none of %q: %q", k.mention, ce.msg)
		})
	}
	return nil
}

// providerYAML is one provider in a v1 config; extra is appended to the
// provider's mapping (two-space indented lines).
func providerYAML(name, extra string) string {
	return fmt.Sprintf("- name: %q\n  matchImages: [\"cfg.gauntlet.test\"]\n  apiVersion: %s\n%s", name, v1, extra)
}

func configDoc(providers ...string) string {
	return "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n" + strings.Join(providers, "")
}

var k19Cases = []configCase{
	{"missing-default-cache-duration", configDoc(providerYAML("k19", "")), []string{"k19"}, []string{"defaultCacheDuration"}},
	{"negative-default-cache-duration", configDoc(providerYAML("k19", "  defaultCacheDuration: -1m\n")), []string{"k19"}, []string{"defaultCacheDuration"}},
	{"name-with-slash", configDoc(providerYAML("k19/sub", "  defaultCacheDuration: 1m\n")), []string{"k19/sub"}, []string{"k19/sub"}},
	{"name-dot-dot", configDoc(providerYAML("..", "  defaultCacheDuration: 1m\n")), nil, []string{`".."`, "'..'"}},
	{"name-with-space", configDoc(providerYAML("k19 sub", "  defaultCacheDuration: 1m\n")), []string{"k19 sub"}, []string{"k19 sub"}},
	{"duplicate-names", configDoc(providerYAML("k19", "  defaultCacheDuration: 1m\n"), providerYAML("k19", "  defaultCacheDuration: 1m\n")), []string{"k19"}, []string{"Duplicate", "duplicate"}},
	{"unknown-provider-api-version", configDoc("- name: k19\n  matchImages: [\"cfg.gauntlet.test\"]\n  apiVersion: credentialprovider.kubelet.k8s.io/v9\n  defaultCacheDuration: 1m\n"), []string{"k19"}, []string{"credentialprovider.kubelet.k8s.io/v9"}},
	{"unknown-config-api-version", strings.Replace(configDoc(providerYAML("k19", "  defaultCacheDuration: 1m\n")), "kubelet.config.k8s.io/v1", "kubelet.config.k8s.io/v9", 1), []string{"k19"}, []string{"kubelet.config.k8s.io/v9"}},
	{"empty-match-images", configDoc(fmt.Sprintf("- name: k19\n  matchImages: []\n  apiVersion: %s\n  defaultCacheDuration: 1m\n", v1)), []string{"k19"}, []string{"matchImages"}},
	{"unparseable-pattern", configDoc(fmt.Sprintf("- name: k19\n  matchImages: [\"cfg.gauntlet.test:port/x\"]\n  apiVersion: %s\n  defaultCacheDuration: 1m\n", v1)), []string{"k19"}, []string{"cfg.gauntlet.test:port/x"}},
	{"unknown-field", configDoc(providerYAML("k19", "  defaultCacheDuration: 1m\n  cacheDurationSeconds: 60\n")), []string{"k19"}, []string{"cacheDurationSeconds"}},
}

// taYAML is a provider with tokenAttributes lines (four-space indented).
func taYAML(apiVersion, attrs string) string {
	return configDoc(fmt.Sprintf("- name: k20\n  matchImages: [\"cfg.gauntlet.test\"]\n  apiVersion: %s\n  defaultCacheDuration: 1m\n  tokenAttributes:\n%s", apiVersion, attrs))
}

var k20Cases = []configCase{
	{"non-v1-provider", taYAML("credentialprovider.kubelet.k8s.io/v1beta1", "    serviceAccountTokenAudience: aud\n    requireServiceAccount: true\n    cacheType: ServiceAccount\n"), []string{"k20"}, []string{"tokenAttributes"}},
	{"missing-audience", taYAML(v1, "    requireServiceAccount: true\n    cacheType: ServiceAccount\n"), []string{"k20"}, []string{"serviceAccountTokenAudience"}},
	{"missing-require-service-account", taYAML(v1, "    serviceAccountTokenAudience: aud\n    cacheType: ServiceAccount\n"), []string{"k20"}, []string{"requireServiceAccount"}},
	{"optional-sa-with-required-keys", taYAML(v1, "    serviceAccountTokenAudience: aud\n    requireServiceAccount: false\n    cacheType: ServiceAccount\n    requiredServiceAccountAnnotationKeys: [\"k20.gauntlet.test/role\"]\n"), []string{"k20"}, []string{"requiredServiceAccountAnnotationKeys"}},
	{"invalid-annotation-key", taYAML(v1, "    serviceAccountTokenAudience: aud\n    requireServiceAccount: true\n    cacheType: ServiceAccount\n    optionalServiceAccountAnnotationKeys: [\"not a key!\"]\n"), []string{"k20"}, []string{"not a key!"}},
	{"overlapping-annotation-keys", taYAML(v1, "    serviceAccountTokenAudience: aud\n    requireServiceAccount: true\n    cacheType: ServiceAccount\n    requiredServiceAccountAnnotationKeys: [\"k20.gauntlet.test/role\"]\n    optionalServiceAccountAnnotationKeys: [\"k20.gauntlet.test/role\"]\n"), []string{"k20"}, []string{"k20.gauntlet.test/role"}},
	{"missing-cache-type", taYAML(v1, "    serviceAccountTokenAudience: aud\n    requireServiceAccount: true\n"), []string{"k20"}, []string{"cacheType"}},
	{"unknown-cache-type", taYAML(v1, "    serviceAccountTokenAudience: aud\n    requireServiceAccount: true\n    cacheType: Forever\n"), []string{"k20"}, []string{"Forever"}},
}

func caseNames(cs []configCase) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

func k19Names() []string { return caseNames(k19Cases) }
func k20Names() []string { return caseNames(k20Cases) }
