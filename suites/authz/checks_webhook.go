package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/suites/authz/probe"
)

const (
	sarV1      = "authorization.k8s.io/v1"
	sarV1beta1 = "authorization.k8s.io/v1beta1"
)

// webAnswer is a webhook's answer as read off the wire.
type webAnswer struct {
	Code       int
	Body       []byte
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Status     struct {
		Allowed bool   `json:"allowed"`
		Denied  bool   `json:"denied"`
		Reason  string `json:"reason"`
	} `json:"status"`
	Decoded bool
	Took    time.Duration
}

// post sends body to the webhook under test with the webhook's timeout
// plus a margin as deadline (the margin lets a late answer be measured).
func (e *Env) post(ctx context.Context, body []byte) (webAnswer, error) {
	var a webAnswer
	ctx, cancel := context.WithTimeout(ctx, e.Webhook.Timeout+5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.Webhook.URL, bytes.NewReader(body))
	if err != nil {
		return a, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	start := time.Now()
	resp, err := e.web.Do(req)
	if err != nil {
		return a, fmt.Errorf("POST %s: %w", e.Webhook.URL, err)
	}
	defer resp.Body.Close()
	a.Body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	a.Took = time.Since(start)
	if err != nil {
		return a, fmt.Errorf("read the answer of %s: %w", e.Webhook.URL, err)
	}
	a.Code = resp.StatusCode
	a.Decoded = json.Unmarshal(a.Body, &a) == nil
	return a, nil
}

// sarBody is a SubjectAccessReview of the given version for a probe.
func sarBody(version string, p probeReview) []byte {
	groups := "groups"
	if version == sarV1beta1 {
		groups = "group" // v1beta1 spells it in the singular
	}
	spec := map[string]any{"user": p.user, groups: []string{"gauntlet:probes"}}
	if p.path != "" {
		spec["nonResourceAttributes"] = map[string]string{"path": p.path, "verb": "get"}
	} else {
		spec["resourceAttributes"] = map[string]string{"namespace": "gauntlet", "verb": p.verb, "group": "", "version": "v1", "resource": "pods"}
	}
	b, _ := json.Marshal(map[string]any{"apiVersion": version, "kind": "SubjectAccessReview", "spec": spec})
	return b
}

type probeReview struct{ user, verb, path string }

// probes are the reviews AZ02/AZ03 judge: the reference webhook allows,
// denies and has no opinion among them; any webhook answers something.
var probes = []probeReview{
	{user: probe.AllowedUser, verb: "get"},
	{user: probe.DeniedUser, verb: "delete"},
	{user: "gauntlet-nobody", verb: "get"},
	{user: "system:anonymous", verb: "list"},
	{user: "gauntlet-nobody", path: "/healthz"},
	{user: probe.DeniedUser, path: "/metrics"},
}

// askAll sends every probe review in both versions and returns the decoded
// answers. Reviews the webhook does not answer with a decodable 2xx (a
// version it does not serve: AZ01's business) are noted, not judged; none
// answered at all is an error.
func (e *Env) askAll(ctx context.Context) ([]webAnswer, []string, error) {
	var out []webAnswer
	var names, unanswered []string
	for _, v := range []string{sarV1, sarV1beta1} {
		for _, p := range probes {
			a, err := e.post(ctx, sarBody(v, p))
			if err != nil {
				return nil, nil, err
			}
			name := fmt.Sprintf("%s %s %s%s", short(v), p.user, p.verb, p.path)
			if a.Code/100 != 2 || !a.Decoded {
				unanswered = append(unanswered, fmt.Sprintf("%s (HTTP %d)", name, a.Code))
				continue
			}
			out = append(out, a)
			names = append(names, name)
		}
	}
	if len(unanswered) > 0 {
		conformance.Note(ctx, "not answered (not judged here)", strings.Join(unanswered, ", "))
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("the webhook answered none of the %d probe reviews with a decodable 2xx: %s", len(unanswered), strings.Join(unanswered, ", "))
	}
	return out, names, nil
}

func short(version string) string { return strings.TrimPrefix(version, "authorization.k8s.io/") }

var webhookChecks = []conformance.Check[*Env]{
	{
		ID: "AZ01", Name: "answers v1 and v1beta1 SubjectAccessReviews in the same apiVersion, kind SubjectAccessReview",
		Faults: []faults.Fault{faults.AZWrongAPIVersion}, Cases: []string{"v1", "v1beta1"}, Timeout: 20 * time.Second,
		Run: func(ctx context.Context, e *Env) error {
			if err := e.needWebhook(); err != nil {
				return err
			}
			var first error
			for _, v := range []string{sarV1, sarV1beta1} {
				err := conformance.Case(ctx, short(v), func(ctx context.Context) error {
					a, err := e.post(ctx, sarBody(v, probes[0]))
					if err != nil {
						return err
					}
					switch {
					case a.Code/100 != 2:
						return conformance.Failf("a %s review got HTTP %d: %s", short(v), a.Code, conformance.FirstLine(string(a.Body), 200))
					case !a.Decoded:
						return conformance.Failf("a %s review got a body that is not JSON: %q", short(v), conformance.FirstLine(string(a.Body), 200))
					case a.APIVersion != v || a.Kind != "SubjectAccessReview":
						return conformance.Failf("a %s review was answered as apiVersion %q kind %q", short(v), a.APIVersion, a.Kind)
					}
					return nil
				})
				if first == nil {
					first = err
				}
			}
			return first
		},
	},
	{
		ID: "AZ02", Name: "never answers allowed: true together with denied: true",
		Faults: []faults.Fault{faults.AZAllowedAndDenied}, Timeout: 30 * time.Second,
		Run: func(ctx context.Context, e *Env) error {
			if err := e.needWebhook(); err != nil {
				return err
			}
			as, names, err := e.askAll(ctx)
			if err != nil {
				return err
			}
			var bad []string
			counts := map[string]int{}
			for i, a := range as {
				counts[decisionWord(a)]++
				if a.Status.Allowed && a.Status.Denied {
					bad = append(bad, names[i])
				}
			}
			conformance.Note(ctx, "answers", countString(counts))
			if len(bad) > 0 {
				return conformance.Failf("allowed and denied both true for %d of %d reviews: %v", len(bad), len(as), bad)
			}
			return nil
		},
	},
	{
		ID: "AZ03", Name: "NoOpinion is allowed: false, denied: false with a reason",
		Faults: []faults.Fault{faults.AZNoOpinionWithoutReason}, Timeout: 30 * time.Second,
		Run: func(ctx context.Context, e *Env) error {
			if err := e.needWebhook(); err != nil {
				return err
			}
			as, names, err := e.askAll(ctx)
			if err != nil {
				return err
			}
			seen := 0
			var bad []string
			for i, a := range as {
				if a.Status.Allowed || a.Status.Denied {
					continue
				}
				seen++
				if a.Status.Reason == "" {
					bad = append(bad, names[i])
				}
			}
			conformance.Note(ctx, "no-opinion answers", fmt.Sprintf("%d of %d", seen, len(as)))
			if seen == 0 {
				return conformance.Skip("", "the webhook decided all %d probe reviews: no NoOpinion answer to judge", len(as))
			}
			if len(bad) > 0 {
				return conformance.Failf("%d NoOpinion answers carry no reason: %v", len(bad), bad)
			}
			return nil
		},
	},
	{
		ID: "AZ04", Name: "a malformed body gets a 400-class error, not an allow",
		Faults: []faults.Fault{faults.AZAllowOnMalformed}, Timeout: 30 * time.Second,
		Cases: []string{"not-json", "empty-body", "json-array", "wrong-kind", "unknown-api-version", "no-spec"},
		Run: func(ctx context.Context, e *Env) error {
			if err := e.needWebhook(); err != nil {
				return err
			}
			bodies := map[string]string{
				"not-json":            `{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"user": "gauntlet-allowed"`,
				"empty-body":          ``,
				"json-array":          `[{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview"}]`,
				"wrong-kind":          `{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "gauntlet"}}`,
				"unknown-api-version": `{"apiVersion": "authorization.k8s.io/v9", "kind": "SubjectAccessReview", "spec": {"user": "gauntlet-allowed", "resourceAttributes": {"verb": "get", "resource": "pods"}}}`,
				"no-spec":             `{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview"}`,
			}
			var first error
			for _, name := range []string{"not-json", "empty-body", "json-array", "wrong-kind", "unknown-api-version", "no-spec"} {
				err := conformance.Case(ctx, name, func(ctx context.Context) error {
					a, err := e.post(ctx, []byte(bodies[name]))
					if err != nil {
						return err
					}
					conformance.Note(ctx, name, fmt.Sprintf("HTTP %d", a.Code))
					switch {
					case a.Code/100 == 2 && a.Decoded && a.Status.Allowed:
						return conformance.Failf("HTTP %d allowed: true for a malformed review (%s)", a.Code, name)
					case a.Code/100 != 4:
						return conformance.Failf("HTTP %d for a malformed review (%s), want a 400-class error: %s", a.Code, name, conformance.FirstLine(string(a.Body), 160))
					}
					return nil
				})
				if first == nil {
					first = err
				}
			}
			return first
		},
	},
	{
		ID: "AZ05", Name: "answers within its configured timeout (p99 reported)",
		Faults: []faults.Fault{faults.AZSlowWebhook}, Timeout: 40 * time.Second,
		Run: func(ctx context.Context, e *Env) error {
			if err := e.needWebhook(); err != nil {
				return err
			}
			// Up to 30 reviews, within 15 s so that a webhook answering just
			// inside a long timeout cannot push the check past its deadline.
			const n = 30
			var took []time.Duration
			budget := time.Now().Add(15 * time.Second)
			for i := 0; i < n && time.Now().Before(budget); i++ {
				p := probes[i%len(probes)]
				a, err := e.post(ctx, sarBody(sarV1, p))
				if err != nil {
					return conformance.Failf("review %d of %d (%s) got no answer within timeout %s + 5s: %v", i+1, n, p.user, e.Webhook.Timeout, err)
				}
				if a.Took > e.Webhook.Timeout {
					return conformance.Failf("review %d of %d (%s) took %s, over the configured timeout %s", i+1, n, p.user, a.Took.Round(time.Millisecond), e.Webhook.Timeout)
				}
				took = append(took, a.Took)
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			q := func(f float64) time.Duration { return took[int(f*float64(len(took)-1))].Round(10 * time.Microsecond) }
			conformance.Note(ctx, "latency", fmt.Sprintf("p50 %s, p99 %s, max %s over %d reviews (timeout %s)", q(0.5), q(0.99), took[len(took)-1].Round(10*time.Microsecond), len(took), e.Webhook.Timeout))
			return nil
		},
	},
}

func decisionWord(a webAnswer) string {
	switch {
	case a.Status.Allowed && a.Status.Denied:
		return "allowed+denied"
	case a.Status.Allowed:
		return "allowed"
	case a.Status.Denied:
		return "denied"
	}
	return "no-opinion"
}

func countString(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", k, m[k])
	}
	return s
}

var _ = Suite.Register(webhookChecks...)
