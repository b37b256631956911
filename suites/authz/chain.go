package authz

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/suites/authz/probe"
)

// script scripts the probes' answers to one review.
type script map[string]probe.Answer

// uniqueUser names a review's user so that recordings and caches of
// parallel checks (and of earlier runs against the same probes) never mix.
func uniqueUser(id, c string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("gauntlet-%s-%s-%s", strings.ToLower(id), c, hex.EncodeToString(b))
}

// ask sends one SubjectAccessReview to the chain.
func (e *Env) ask(ctx context.Context, user string, s script, switches ...string) (authorizationv1.SubjectAccessReviewStatus, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for name, a := range s {
		extra[probe.ScriptKey(name)] = authorizationv1.ExtraValue{string(a)}
	}
	for _, k := range switches {
		extra[k] = authorizationv1.ExtraValue{"on"}
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user, Groups: []string{"gauntlet:probes"}, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "gauntlet", Verb: "get", Group: "gauntlet.dev", Version: "v1", Resource: "widgets"},
	}}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := e.sar.Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return authorizationv1.SubjectAccessReviewStatus{}, fmt.Errorf("create SubjectAccessReview at %s: %w", e.Chain.Name, err)
	}
	return out.Status, nil
}

// calls returns the reviews probe webhook name received for user.
func (e *Env) calls(ctx context.Context, name, user string) ([]probe.Call, error) {
	ep := e.byName[name]
	u, err := url.Parse(ep.URL)
	if err != nil {
		return nil, err
	}
	u.Path, u.RawQuery = probe.CallsPath, url.Values{"user": {user}}.Encode()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := e.probe.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the recordings of probe %s: %w", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read the recordings of probe %s: HTTP %d %v", name, resp.StatusCode, err)
	}
	var cs []probe.Call
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("recordings of probe %s: %w", name, err)
	}
	return cs, nil
}

func (e *Env) callCount(ctx context.Context, name, user string) (int, error) {
	cs, err := e.calls(ctx, name, user)
	return len(cs), err
}

// Decisions as the chain reports them.
const (
	allowed   = "allowed"
	denied    = "denied"
	noOpinion = "no-opinion"
)

func decisionOf(st authorizationv1.SubjectAccessReviewStatus) string {
	switch {
	case st.Allowed && st.Denied:
		return "allowed+denied"
	case st.Allowed:
		return allowed
	case st.Denied:
		return denied
	}
	return noOpinion
}

// outcome is what a chain case expects.
type outcome struct {
	decision  string
	reasons   []string // must appear in the reason, in this order
	evalError bool     // evaluationError must be set
	called    []string // probes called (retries may call one more than once)
	notCalled []string // probes never called
}

// chainCase is one review and its expected outcome.
type chainCase struct {
	name     string
	script   script
	switches []string
	want     outcome
}

// runCases asks each case's review and judges the outcome, one reported
// case each.
func (e *Env) runCases(ctx context.Context, id string, cases []chainCase) error {
	if err := e.needChain(); err != nil {
		return err
	}
	var first error
	for _, c := range cases {
		err := conformance.Case(ctx, c.name, func(ctx context.Context) error {
			user := uniqueUser(id, c.name)
			st, err := e.ask(ctx, user, c.script, c.switches...)
			if err != nil {
				return err
			}
			if err := tooSlow(c.script, st, e.Chain.Timing.Timeout); err != nil {
				return err
			}
			return e.judge(ctx, user, st, c.want)
		})
		if first == nil {
			first = err
		}
	}
	return first
}

// tooSlow is a setup error for a case whose probes all answer at once but
// whose chain still timed out calling one: the machine is too busy for the
// configured webhook timeout, so the outcome says nothing about the chain
// (under such a timeout a failurePolicy Deny would pass AZ09 whatever the
// chain does with allowed && denied).
func tooSlow(s script, st authorizationv1.SubjectAccessReviewStatus, timeout time.Duration) error {
	for _, a := range s {
		if a == probe.Slow {
			return nil
		}
	}
	if ev := st.EvaluationError; strings.Contains(ev, "Client.Timeout exceeded") || strings.Contains(ev, "context deadline exceeded") {
		return fmt.Errorf("the chain timed out calling a webhook that answers at once (timeout %s): the machine is too busy to judge this case; evaluationError %q", timeout, ev)
	}
	return nil
}

func (e *Env) judge(ctx context.Context, user string, st authorizationv1.SubjectAccessReviewStatus, w outcome) error {
	var bad []string
	if d := decisionOf(st); d != w.decision {
		bad = append(bad, fmt.Sprintf("decision %s, want %s", d, w.decision))
	}
	rest := st.Reason
	for _, r := range w.reasons {
		i := strings.Index(rest, r)
		if i < 0 {
			bad = append(bad, fmt.Sprintf("reason lacks %q (in order)", r))
			continue
		}
		rest = rest[i+len(r):]
	}
	if w.evalError && st.EvaluationError == "" {
		bad = append(bad, "no evaluationError")
	}
	for _, n := range w.called {
		k, err := e.callCount(ctx, n, user)
		if err != nil {
			return err
		}
		if k == 0 {
			bad = append(bad, fmt.Sprintf("%s never called, want called", n))
		}
	}
	for _, n := range w.notCalled {
		k, err := e.callCount(ctx, n, user)
		if err != nil {
			return err
		}
		if k != 0 {
			bad = append(bad, fmt.Sprintf("%s called %d times, want never", n, k))
		}
	}
	if len(bad) > 0 {
		return conformance.Failf("%s; the chain answered allowed=%t denied=%t reason=%q evaluationError=%q",
			strings.Join(bad, "; "), st.Allowed, st.Denied, st.Reason, st.EvaluationError)
	}
	return nil
}

func caseNames(cs []chainCase) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}
