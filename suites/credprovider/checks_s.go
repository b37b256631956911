package credprovider

// S checks: KEP-4412 service-account tokens sent to providers with
// tokenAttributes, and the cache partitioning that keeps one service
// account's credentials from another's pulls.

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"

	configv1 "k8s.io/kubelet/config/v1"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
)

// saProvider is a provider in service-account token mode.
func saProvider(name, match string, cacheType configv1.ServiceAccountTokenCacheType, require bool, required, optional []string) configv1.CredentialProvider {
	p := provider(name, []string{match})
	p.TokenAttributes = &configv1.ServiceAccountTokenAttributes{ServiceAccountTokenAudience: "registry.gauntlet.test/" + name,
		CacheType: cacheType, RequireServiceAccount: &require,
		RequiredServiceAccountAnnotationKeys: required, OptionalServiceAccountAnnotationKeys: optional}
	return p
}

const (
	saMode    = configv1.ServiceAccountServiceAccountTokenCacheType
	tokenMode = configv1.TokenServiceAccountTokenCacheType
)

// saResponse answers per-service-account credentials ("<ns>/<sa>-<n>"),
// cached an hour under the image key.
func saResponse() probeScript {
	return script(probeResponse{CacheKeyType: "Image", CacheDuration: ptr("1h"),
		Auth: map[string]credential{"{image}": {Username: "{ns}/{sa}", Password: "{ns}/{sa}-{n}"}}})
}

// saCheck runs fn in a scenario with one SA-mode provider named like the
// check, answering saResponse.
func saCheck(ctx context.Context, e *Env, p configv1.CredentialProvider, fn func(sc *scenario) error) error {
	spec := scenarioSpec{providers: []configv1.CredentialProvider{p}, scripts: map[string]probeScript{p.Name: saResponse()}}
	return e.withScenario(ctx, spec, fn)
}

// gotUser fails unless the first credential is user's.
func gotUser(creds []credential, user, when string) error {
	if len(creds) == 0 || creds[0].Username != user {
		return conformance.Failf("%s: credentials %s, want %s's", when, credsString(creds), user)
	}
	return nil
}

var saFeature = []conformance.Feature{ConsumerFeatureSATokens}

var _ = Suite.Register(
	conformance.Check[*Env]{
		ID: "S01", Name: "the token has exactly the configured audience and is bound to the pod and its service account",
		Features: saFeature, Faults: []faults.Fault{faults.CCTokenAudienceWrong},
		Cases: []string{"audience", "pod-bound", "service-account"},
		Run: func(ctx context.Context, e *Env) error {
			p := saProvider("s01", "s01.gauntlet.test", saMode, true, nil, nil)
			return saCheck(ctx, e, p, func(sc *scenario) error {
				sa := newSA("builder", nil)
				pd := newPod("gauntlet-s01", "s01-pod", sa)
				if _, err := sc.pullOne(ctx, "s01.gauntlet.test/app", pd); err != nil {
					return err
				}
				pd = sc.bound(pd) // with a real API server: the objects it created
				sa = pd.SA
				rs, err := sc.records("s01")
				if err != nil {
					return err
				}
				if len(rs) != 1 || !rs[0].HasToken || rs[0].Claims == nil {
					return conformance.Failf("want one invocation carrying a service-account token, got %d invocation(s) (token: %v)", len(rs), len(rs) == 1 && rs[0].HasToken)
				}
				conformance.Note(ctx, "token-source", sc.c.tokens.Name())
				sc.noteTokenReview(ctx, rs[0], p.TokenAttributes.ServiceAccountTokenAudience)
				c := rs[0].Claims
				if c.Error != "" {
					return conformance.Failf("the token is not a decodable JWT: %s", c.Error)
				}
				conformance.Case(ctx, "audience", func(ctx context.Context) error {
					if want := []string{p.TokenAttributes.ServiceAccountTokenAudience}; !slices.Equal(c.Audience, want) {
						return conformance.Failf("the token's audience is %q, want exactly %q", c.Audience, want)
					}
					return nil
				})
				conformance.Case(ctx, "pod-bound", func(ctx context.Context) error {
					if c.PodName != pd.Name || c.PodUID != pd.UID {
						return conformance.Failf("the token is bound to pod %q (uid %q), want %q (uid %q)", c.PodName, c.PodUID, pd.Name, pd.UID)
					}
					return nil
				})
				conformance.Case(ctx, "service-account", func(ctx context.Context) error {
					if c.Namespace != pd.Namespace || c.ServiceAccount != sa.Name || c.ServiceAccountUID != sa.UID {
						return conformance.Failf("the token is for %s/%s (uid %q), want %s/%s (uid %q)", c.Namespace, c.ServiceAccount, c.ServiceAccountUID, pd.Namespace, sa.Name, sa.UID)
					}
					return nil
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S02", Name: "exactly the configured annotations present on the service account are sent",
		Features: saFeature, Faults: []faults.Fault{faults.CCAnnotationsAll},
		Run: func(ctx context.Context, e *Env) error {
			const role, opt, absent = "s02.gauntlet.test/role", "s02.gauntlet.test/opt", "s02.gauntlet.test/absent"
			p := saProvider("s02", "s02.gauntlet.test", saMode, true, []string{role}, []string{opt, absent})
			return saCheck(ctx, e, p, func(sc *scenario) error {
				sa := newSA("builder", map[string]string{role: "pusher", opt: "yes", "s02.gauntlet.test/unrelated": "secret-ish", "kubernetes.io/description": "x"})
				if _, err := sc.pullOne(ctx, "s02.gauntlet.test/app", newPod("gauntlet-s02", "s02-pod", sa)); err != nil {
					return err
				}
				rs, err := sc.records("s02")
				if err != nil {
					return err
				}
				if len(rs) != 1 {
					return conformance.Failf("the provider was invoked %d time(s), want 1", len(rs))
				}
				if want := map[string]string{role: "pusher", opt: "yes"}; !maps.Equal(rs[0].Annotations, want) {
					return conformance.Failf("serviceAccountAnnotations %v, want exactly %v (required + optional present)", rs[0].Annotations, want)
				}
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S03", Name: "a service account without a required annotation does not invoke the plugin",
		Features: saFeature, Faults: []faults.Fault{faults.CCRequiredAnnotationLax},
		Run: func(ctx context.Context, e *Env) error {
			const role = "s03.gauntlet.test/role"
			p := saProvider("s03", "s03.gauntlet.test", saMode, true, []string{role}, nil)
			return saCheck(ctx, e, p, func(sc *scenario) error {
				creds, err := sc.pullOne(ctx, "s03.gauntlet.test/app", newPod("gauntlet-s03", "s03-pod", newSA("plain", map[string]string{"other": "x"})))
				if err != nil {
					return err
				}
				if err := countIs(sc, "s03", 0, "service account without required annotation "+role); err != nil {
					return err
				}
				if len(creds) > 0 {
					return conformance.Failf("credentials %s for a pull the provider must not serve", credsString(creds))
				}
				// The control: with the annotation, it is invoked.
				if _, err := sc.pullOne(ctx, "s03.gauntlet.test/app", newPod("gauntlet-s03", "s03-pod2", newSA("opted-in", map[string]string{role: "r"}))); err != nil {
					return err
				}
				if n, err := sc.invocations("s03"); err != nil || n != 1 {
					return conformance.Setupf("control pull with the required annotation: %d invocation(s), want 1", n)
				}
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S04", Name: "a pod without a service account: not invoked when one is required, invoked without token or annotations when not",
		Features: saFeature, Faults: []faults.Fault{faults.CCNoSAInvoked},
		Cases: []string{"required-not-invoked", "optional-no-token"},
		Run: func(ctx context.Context, e *Env) error {
			spec := scenarioSpec{providers: []configv1.CredentialProvider{
				saProvider("s04-required", "s04.gauntlet.test", saMode, true, nil, nil),
				saProvider("s04-optional", "s04.gauntlet.test", saMode, false, nil, []string{"s04.gauntlet.test/opt"})}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				if _, err := sc.pullOne(ctx, "s04.gauntlet.test/app", newPod("gauntlet-s04", "static-pod", nil)); err != nil {
					return err
				}
				conformance.Case(ctx, "required-not-invoked", func(ctx context.Context) error {
					return countIs(sc, "s04-required", 0, "pod without a service account, requireServiceAccount true")
				})
				conformance.Case(ctx, "optional-no-token", func(ctx context.Context) error {
					rs, err := sc.records("s04-optional")
					if err != nil {
						return err
					}
					if len(rs) != 1 {
						return conformance.Failf("pod without a service account, requireServiceAccount false: invoked %d time(s), want 1", len(rs))
					}
					if rs[0].HasToken || slices.Contains(rs[0].Fields, "serviceAccountAnnotations") {
						return conformance.Failf("the request carries fields %q, want no serviceAccountToken or serviceAccountAnnotations", rs[0].Fields)
					}
					return nil
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S05", Name: "another service account in the namespace gets its own invocation, never the first one's cached credentials",
		Features: saFeature, Faults: []faults.Fault{faults.CCCacheIgnoresSA},
		Run: func(ctx context.Context, e *Env) error {
			p := saProvider("s05", "s05.gauntlet.test", saMode, true, nil, nil)
			return saCheck(ctx, e, p, func(sc *scenario) error {
				const ns = "gauntlet-s05"
				a, b := newPod(ns, "a-pod", newSA("a", nil)), newPod(ns, "b-pod", newSA("b", nil))
				res, err := sc.pull(ctx, false, []string{"s05.gauntlet.test/app", "s05.gauntlet.test/app"}, a, b)
				if err != nil {
					return err
				}
				if err := gotUser(res.Results[0].Credentials, sc.ns(ns)+"/a", "pull as SA a"); err != nil {
					return conformance.Setupf("%v; the consumer logged %q", err, res.Log)
				}
				if err := gotUser(res.Results[1].Credentials, sc.ns(ns)+"/b", "pull as SA b after SA a"); err != nil {
					return err
				}
				return countIs(sc, "s05", 2, "pulls as SA a then SA b")
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S06", Name: "in ServiceAccount cache mode a second pod of the service account reuses its entry",
		Features: saFeature, Faults: []faults.Fault{faults.CCSACacheByToken},
		Run: func(ctx context.Context, e *Env) error {
			p := saProvider("s06", "s06.gauntlet.test", saMode, true, nil, nil)
			return saCheck(ctx, e, p, func(sc *scenario) error {
				sa := newSA("a", nil)
				res, err := sc.pull(ctx, false, []string{"s06.gauntlet.test/app", "s06.gauntlet.test/app"},
					newPod("gauntlet-s06", "pod-1", sa), newPod("gauntlet-s06", "pod-2", sa))
				if err != nil {
					return err
				}
				if err := countIs(sc, "s06", 1, "two pods of one service account (cacheType ServiceAccount)"); err != nil {
					return err
				}
				return gotUser(res.Results[1].Credentials, sc.ns("gauntlet-s06")+"/a", "second pod")
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S07", Name: "in Token cache mode each pod invokes, containers of one pod share",
		Features: saFeature, Faults: []faults.Fault{faults.CCTokenCacheIgnoresToken},
		Cases: []string{"containers-of-one-pod-share", "pods-do-not"},
		Run: func(ctx context.Context, e *Env) error {
			p := saProvider("s07", "s07.gauntlet.test", tokenMode, true, nil, nil)
			return saCheck(ctx, e, p, func(sc *scenario) error {
				sa := newSA("a", nil)
				p1, p2 := newPod("gauntlet-s07", "pod-1", sa), newPod("gauntlet-s07", "pod-2", sa)
				if _, err := sc.pull(ctx, false, []string{"s07.gauntlet.test/app", "s07.gauntlet.test/sidecar"}, p1); err != nil {
					return err
				}
				// Image cache key: /app and /sidecar are two entries; a
				// second /app pull of pod-1 is a container sharing.
				if _, err := sc.pullOne(ctx, "s07.gauntlet.test/app", p1); err != nil {
					return err
				}
				conformance.Case(ctx, "containers-of-one-pod-share", func(ctx context.Context) error {
					return countIs(sc, "s07", 2, "pod-1 pulling app, sidecar, app (cacheType Token)")
				})
				if _, err := sc.pullOne(ctx, "s07.gauntlet.test/app", p2); err != nil {
					return err
				}
				conformance.Case(ctx, "pods-do-not", func(ctx context.Context) error {
					return countIs(sc, "s07", 3, "pod-2 of the same service account pulling app (cacheType Token)")
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S08", Name: "a service account recreated with a new UID misses the cache",
		Features: saFeature, Faults: []faults.Fault{faults.CCCacheIgnoresSAUID},
		Run: func(ctx context.Context, e *Env) error {
			p := saProvider("s08", "s08.gauntlet.test", saMode, true, nil, nil)
			return saCheck(ctx, e, p, func(sc *scenario) error {
				old, recreated := newSA("a", nil), newSA("a", nil)
				if _, err := sc.pullOne(ctx, "s08.gauntlet.test/app", newPod("gauntlet-s08", "pod-1", old)); err != nil {
					return err
				}
				if _, err := sc.pullOne(ctx, "s08.gauntlet.test/app", newPod("gauntlet-s08", "pod-2", recreated)); err != nil {
					return err
				}
				return countIs(sc, "s08", 2, fmt.Sprintf("pulls as SA a (uid %s), then as SA a recreated (uid %s)", old.UID[:8], recreated.UID[:8]))
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S09", Name: "a change of a selected annotation's value misses the cache",
		Features: saFeature, Faults: []faults.Fault{faults.CCCacheIgnoresAnnotations},
		Run: func(ctx context.Context, e *Env) error {
			const role = "s09.gauntlet.test/role"
			p := saProvider("s09", "s09.gauntlet.test", saMode, true, []string{role}, nil)
			return saCheck(ctx, e, p, func(sc *scenario) error {
				sa := newSA("a", map[string]string{role: "reader"})
				pd := newPod("gauntlet-s09", "pod-1", sa)
				if _, err := sc.pullOne(ctx, "s09.gauntlet.test/app", pd); err != nil {
					return err
				}
				changed := *sa
				changed.Annotations = map[string]string{role: "writer"}
				pd.SA = &changed
				if _, err := sc.pullOne(ctx, "s09.gauntlet.test/app", pd); err != nil {
					return err
				}
				rs, err := sc.records("s09")
				if err != nil {
					return err
				}
				if len(rs) != 2 {
					return conformance.Failf("after %s changed from reader to writer the pull was served from cache (%d invocation(s), want 2)", role, len(rs))
				}
				if got := rs[1].Annotations[role]; got != "writer" {
					return conformance.Failf("the second request carried %s=%q, want writer", role, got)
				}
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S10", Name: "the same service account name in two namespaces has separate entries",
		Features: saFeature, Faults: []faults.Fault{faults.CCCacheIgnoresNamespace},
		Run: func(ctx context.Context, e *Env) error {
			p := saProvider("s10", "s10.gauntlet.test", saMode, true, nil, nil)
			return saCheck(ctx, e, p, func(sc *scenario) error {
				sa := newSA("default", nil)
				sa2 := *sa // same name and UID: only the namespace differs
				res, err := sc.pull(ctx, false, []string{"s10.gauntlet.test/app", "s10.gauntlet.test/app"},
					newPod("gauntlet-s10-one", "pod", sa), newPod("gauntlet-s10-two", "pod", &sa2))
				if err != nil {
					return err
				}
				if err := gotUser(res.Results[1].Credentials, sc.ns("gauntlet-s10-two")+"/default", "pull in the second namespace"); err != nil {
					return err
				}
				return countIs(sc, "s10", 2, "pulls as default in two namespaces")
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S11", Name: "a response echoing the token as password is discarded in ServiceAccount mode and accepted in Token mode",
		Features: saFeature, Faults: []faults.Fault{faults.CCEchoGuardMissing},
		Cases: []string{"service-account-mode-discarded", "token-mode-accepted"},
		Run: func(ctx context.Context, e *Env) error {
			echo := script(probeResponse{CacheKeyType: "Image", CacheDuration: ptr("0s"),
				Auth: map[string]credential{"{image}": {Username: "{name}", Password: "{token}"}}})
			spec := scenarioSpec{providers: []configv1.CredentialProvider{
				saProvider("s11-sa", "s11sa.gauntlet.test", saMode, true, nil, nil),
				saProvider("s11-token", "s11tok.gauntlet.test", tokenMode, true, nil, nil)},
				scripts: map[string]probeScript{"s11-sa": echo, "s11-token": echo}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				pd := newPod("gauntlet-s11", "pod", newSA("a", nil))
				res, err := sc.pull(ctx, false, []string{"s11sa.gauntlet.test/app", "s11tok.gauntlet.test/app"}, pd)
				if err != nil {
					return err
				}
				conformance.Case(ctx, "service-account-mode-discarded", func(ctx context.Context) error {
					if err := countIs(sc, "s11-sa", 1, "pull from the ServiceAccount-mode provider"); err != nil {
						return err
					}
					if c := res.Results[0].Credentials; len(c) > 0 {
						return conformance.Failf("a ServiceAccount-mode response whose password is the token was used (%d credential(s))", len(c))
					}
					return nil
				})
				conformance.Case(ctx, "token-mode-accepted", func(ctx context.Context) error {
					rs, err := sc.records("s11-token")
					if err != nil {
						return err
					}
					c := res.Results[1].Credentials
					if len(rs) != 1 || len(c) == 0 {
						return conformance.Failf("Token mode: %d invocation(s), %d credential(s); want the echoed token accepted", len(rs), len(c))
					}
					if got := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(c[0].Password))); got != rs[0].TokenHash {
						return conformance.Failf("Token mode: the password offered is not the token the plugin echoed")
					}
					return nil
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S12", Name: "one binary configured with and without tokenAttributes: only one gets a token, caches are independent",
		Features: saFeature, Faults: []faults.Fault{faults.CCTokenToAllProviders},
		Cases: []string{"only-one-gets-token", "independent-caches"},
		Run: func(ctx context.Context, e *Env) error {
			plain := provider("s12-plain", []string{"s12.gauntlet.test"})
			withSA := saProvider("s12-sa", "s12.gauntlet.test", saMode, true, nil, nil)
			spec := scenarioSpec{providers: []configv1.CredentialProvider{plain, withSA},
				scripts: map[string]probeScript{"s12-plain": saResponse(), "s12-sa": saResponse()}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				a, b := newPod("gauntlet-s12", "a-pod", newSA("a", nil)), newPod("gauntlet-s12", "b-pod", newSA("b", nil))
				if _, err := sc.pull(ctx, false, []string{"s12.gauntlet.test/app", "s12.gauntlet.test/app"}, a, b); err != nil {
					return err
				}
				conformance.Case(ctx, "only-one-gets-token", func(ctx context.Context) error {
					pr, err := sc.records("s12-plain")
					if err != nil {
						return err
					}
					sr, err := sc.records("s12-sa")
					if err != nil {
						return err
					}
					if len(pr) == 0 || len(sr) == 0 {
						return conformance.Failf("s12-plain ran %d time(s), s12-sa %d: want both invoked", len(pr), len(sr))
					}
					if slices.ContainsFunc(pr, func(r probeRecord) bool { return r.HasToken }) {
						return conformance.Failf("the provider without tokenAttributes received a service-account token")
					}
					if !sr[0].HasToken {
						return conformance.Failf("the provider with tokenAttributes received no token")
					}
					return nil
				})
				conformance.Case(ctx, "independent-caches", func(ctx context.Context) error {
					// plain: one entry for every pod; with tokenAttributes:
					// one per service account.
					return errorsJoin(countIs(sc, "s12-plain", 1, "pulls as SA a and SA b, provider without tokenAttributes"),
						countIs(sc, "s12-sa", 2, "pulls as SA a and SA b, provider with tokenAttributes"))
				})
				return nil
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S13", Name: "pulls without and with a service account never share cache entries",
		Features: saFeature, Faults: []faults.Fault{faults.CCCacheIgnoresSA},
		Run: func(ctx context.Context, e *Env) error {
			p := saProvider("s13", "s13.gauntlet.test", saMode, false, nil, nil)
			return saCheck(ctx, e, p, func(sc *scenario) error {
				const ns = "gauntlet-s13"
				res, err := sc.pull(ctx, false, []string{"s13.gauntlet.test/app", "s13.gauntlet.test/app", "s13.gauntlet.test/app"},
					newPod(ns, "static", nil), newPod(ns, "a-pod", newSA("a", nil)), newPod(ns, "static-2", nil))
				if err != nil {
					return err
				}
				if err := gotUser(res.Results[1].Credentials, sc.ns(ns)+"/a", "pull as SA a after a pull without a service account"); err != nil {
					return err
				}
				if err := gotUser(res.Results[2].Credentials, "-/-", "second pull without a service account"); err != nil {
					return err
				}
				return countIs(sc, "s13", 2, "pulls without SA, as SA a, without SA again")
			})
		},
	},
	conformance.Check[*Env]{
		ID: "S14", Name: "concurrent pulls from different service accounts never collapse into one invocation",
		Features: saFeature, Faults: []faults.Fault{faults.CCSingleflightIgnoresSA},
		Run: func(ctx context.Context, e *Env) error {
			p := saProvider("s14", "s14.gauntlet.test", saMode, true, nil, nil)
			slow := saResponse()
			slow.Responses[0].Sleep = "700ms"
			spec := scenarioSpec{providers: []configv1.CredentialProvider{p}, scripts: map[string]probeScript{"s14": slow}}
			return e.withScenario(ctx, spec, func(sc *scenario) error {
				const ns = "gauntlet-s14"
				var pods []pod
				var images []string
				for _, n := range []string{"a", "b", "c", "d"} {
					pods = append(pods, newPod(ns, n+"-pod", newSA(n, nil)))
					images = append(images, "s14.gauntlet.test/app")
				}
				res, err := sc.pull(ctx, true, images, pods...)
				if err != nil {
					return err
				}
				var wrong []string
				for i, r := range res.Results {
					if want := sc.ns(ns) + "/" + pods[i].SA.Name; len(r.Credentials) == 0 || r.Credentials[0].Username != want {
						wrong = append(wrong, fmt.Sprintf("%s got %s", pods[i].SA.Name, credsString(r.Credentials)))
					}
				}
				if len(wrong) > 0 {
					return conformance.Failf("concurrent pulls from four service accounts: %s", strings.Join(wrong, "; "))
				}
				return countIs(sc, "s14", 4, "concurrent pulls from four service accounts")
			})
		},
	},
)

func errorsJoin(errs ...error) error {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			if !conformance.IsFailure(err) {
				return err
			}
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return conformance.Failf("%s", strings.Join(msgs, "; "))
}
