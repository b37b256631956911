package authz

import (
	"context"
	"fmt"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/suites/authz/probe"
)

// The chain is probe.Chain: A (failurePolicy NoOpinion), B (failurePolicy
// Deny, match conditions), C (failurePolicy NoOpinion).
const (
	pA, pB, pC = probe.A, probe.B, probe.C
)

func reason(name string, a probe.Answer) string { return probe.Reason(name, a) }

var az06 = []chainCase{
	{name: "allow-wins", script: script{pA: probe.Allow, pB: probe.Deny},
		want: outcome{decision: allowed, reasons: []string{reason(pA, probe.Allow)}, called: []string{pA}, notCalled: []string{pB, pC}}},
	{name: "deny-wins", script: script{pB: probe.Deny, pC: probe.Allow},
		want: outcome{decision: denied, reasons: []string{reason(pB, probe.Deny)}, called: []string{pA, pB}, notCalled: []string{pC}}},
	{name: "later-allow-not-reached", script: script{pA: probe.Deny, pB: probe.Allow, pC: probe.Allow},
		want: outcome{decision: denied, reasons: []string{reason(pA, probe.Deny)}, called: []string{pA}, notCalled: []string{pB, pC}}},
}

var az07 = []chainCase{
	{name: "all-no-opinion", script: script{},
		want: outcome{decision: noOpinion, reasons: []string{reason(pA, probe.NoOpinion), reason(pB, probe.NoOpinion), reason(pC, probe.NoOpinion)}, called: []string{pA, pB, pC}}},
	{name: "no-opinion-passes-on", script: script{pC: probe.Allow},
		want: outcome{decision: allowed, reasons: []string{reason(pC, probe.Allow)}, called: []string{pA, pB, pC}}},
}

var az08 = []chainCase{
	{name: "deny-policy-error", script: script{pB: probe.Error, pC: probe.Allow},
		want: outcome{decision: denied, evalError: true, called: []string{pB}, notCalled: []string{pC}}},
	{name: "deny-policy-timeout", script: script{pB: probe.Slow, pC: probe.Allow},
		want: outcome{decision: denied, evalError: true, called: []string{pB}, notCalled: []string{pC}}},
	{name: "deny-policy-malformed", script: script{pB: probe.Malformed, pC: probe.Allow},
		want: outcome{decision: denied, evalError: true, called: []string{pB}, notCalled: []string{pC}}},
	{name: "no-opinion-policy-error", script: script{pA: probe.Error, pC: probe.Allow},
		want: outcome{decision: allowed, called: []string{pA, pB, pC}}},
	{name: "no-opinion-policy-timeout", script: script{pA: probe.Slow, pC: probe.Allow},
		want: outcome{decision: allowed, called: []string{pA, pB, pC}}},
}

var az09 = []chainCase{
	{name: "allowed-and-denied", script: script{pA: probe.Both, pB: probe.Allow, pC: probe.Allow},
		want: outcome{decision: denied, evalError: true, called: []string{pA}, notCalled: []string{pB, pC}}},
}

var az10 = []chainCase{
	{name: "all-true-called", script: script{pB: probe.Deny},
		want: outcome{decision: denied, reasons: []string{reason(pB, probe.Deny)}, called: []string{pB}, notCalled: []string{pC}}},
	{name: "any-false-skipped", script: script{pB: probe.Deny, pC: probe.Allow}, switches: []string{probe.SkipB},
		want: outcome{decision: allowed, called: []string{pC}, notCalled: []string{pB}}},
	{name: "false-beats-error", script: script{pB: probe.Deny, pC: probe.Allow}, switches: []string{probe.SkipB, probe.MatchErrorB},
		want: outcome{decision: allowed, called: []string{pC}, notCalled: []string{pB}}},
	{name: "error-applies-failure-policy", script: script{pB: probe.Allow, pC: probe.Allow}, switches: []string{probe.MatchErrorB},
		want: outcome{decision: denied, evalError: true, notCalled: []string{pB, pC}}},
}

var chainChecks = []conformance.Check[*Env]{
	{
		ID: "AZ06", Name: "first Allow or Deny wins with that authorizer's reason; later authorizers are not called",
		Faults: []faults.Fault{faults.AZChainNoShortCircuit}, Cases: caseNames(az06), Timeout: 30 * time.Second,
		Run: func(ctx context.Context, e *Env) error { return e.runCases(ctx, "AZ06", az06) },
	},
	{
		ID: "AZ07", Name: "NoOpinion passes to the next authorizer; all NoOpinion is not allowed, with every reason joined",
		Faults: []faults.Fault{faults.AZChainNoOpinionAllows}, Cases: caseNames(az07), Timeout: 30 * time.Second,
		Run: func(ctx context.Context, e *Env) error { return e.runCases(ctx, "AZ07", az07) },
	},
	{
		ID: "AZ08", Name: "failurePolicy Deny turns an error, timeout or malformed answer into a deny and stops; NoOpinion passes on",
		Faults: []faults.Fault{faults.AZChainIgnoresFailurePolicy}, Cases: caseNames(az08), Timeout: 60 * time.Second,
		Run: func(ctx context.Context, e *Env) error { return e.runCases(ctx, "AZ08", az08) },
	},
	{
		ID: "AZ09", Name: "a webhook answering allowed and denied both true is a deny with an evaluation error",
		Faults: []faults.Fault{faults.AZChainAllowedDeniedAllows}, Cases: caseNames(az09), Timeout: 30 * time.Second,
		Run: func(ctx context.Context, e *Env) error { return e.runCases(ctx, "AZ09", az09) },
	},
	{
		ID: "AZ10", Name: "matchConditions: all true calls the webhook, any false skips it (false beats an error), an error applies failurePolicy",
		Faults: []faults.Fault{faults.AZChainIgnoresMatchConds}, Cases: caseNames(az10), Timeout: 30 * time.Second,
		Run: func(ctx context.Context, e *Env) error { return e.runCases(ctx, "AZ10", az10) },
	},
	{
		ID: "AZ11", Name: "authorized answers are cached for authorizedTTL, unauthorized for unauthorizedTTL, errors never",
		Faults: []faults.Fault{faults.AZChainNoCache}, Cases: []string{"authorized-cached", "unauthorized-cached", "errors-never-cached"},
		Timeout: 60 * time.Second, Run: runAZ11,
	},
}

// runAZ11 follows three reviews answered by probe A — an allow, a deny and
// an error — each asked again at once, and again after its TTL, timed from
// that review's own first answer so a busy machine cannot blur them.
func runAZ11(ctx context.Context, e *Env) error {
	if err := e.needChain(); err != nil {
		return err
	}
	t := e.Chain.Timing
	const margin = 300 * time.Millisecond
	if t.UnauthorizedTTL+2*margin >= t.AuthorizedTTL {
		return fmt.Errorf("AZ11 needs unauthorizedTTL + %s < authorizedTTL to tell them apart (configured %s, %s)", 2*margin, t.UnauthorizedTTL, t.AuthorizedTTL)
	}
	type review struct {
		user   string
		script script
		sent   time.Time // first ask sent (the cache entry is no older)
		recv   time.Time // first answer received (the entry is no younger)
		counts []int     // probe A's call count after each ask
	}
	rs := map[string]*review{
		"allow": {script: script{pA: probe.Allow}},
		"deny":  {script: script{pA: probe.Deny}},
		"error": {script: script{pA: probe.Error, pC: probe.Allow}},
	}
	ask := func(k string) error {
		r := rs[k]
		sent := time.Now()
		if _, err := e.ask(ctx, r.user, r.script); err != nil {
			return err
		}
		if r.sent.IsZero() {
			r.sent, r.recv = sent, time.Now()
		}
		n, err := e.callCount(ctx, pA, r.user)
		r.counts = append(r.counts, n)
		return err
	}
	sleepUntil := func(at time.Time) error {
		select {
		case <-time.After(time.Until(at)):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The allow goes last and is asked again first: its timing has the
	// least slack (its probe must land before authorizedTTL), and a busy
	// machine's slow asks then delay the others, not it.
	for _, k := range []string{"deny", "error", "allow"} {
		rs[k].user = uniqueUser("AZ11", k)
		if err := ask(k); err != nil { // first answer, now cached unless an error
			return err
		}
		if err := ask(k); err != nil { // at once: from the cache
			return err
		}
	}
	// After unauthorizedTTL: the deny has expired, the allow has not.
	if err := sleepUntil(rs["deny"].recv.Add(t.UnauthorizedTTL + margin)); err != nil {
		return err
	}
	for _, k := range []string{"allow", "deny", "error"} {
		if err := ask(k); err != nil {
			return err
		}
	}
	if late := time.Since(rs["allow"].sent); late > t.AuthorizedTTL-margin {
		return fmt.Errorf("fell behind: the allow's cache probe came %s after its first answer, too close to authorizedTTL %s", late, t.AuthorizedTTL)
	}
	// After authorizedTTL: the allow has expired too.
	if err := sleepUntil(rs["allow"].recv.Add(t.AuthorizedTTL + margin)); err != nil {
		return err
	}
	if err := ask("allow"); err != nil {
		return err
	}
	conformance.Note(ctx, "probe A calls after each ask", fmt.Sprintf("allow %v, deny %v, error %v", rs["allow"].counts, rs["deny"].counts, rs["error"].counts))
	judge := func(k string, want []int, when, why string) error {
		got := rs[k].counts
		for i := range want {
			if got[i] != want[i] {
				return conformance.Failf("probe A's call count after asks %s: %v, want %v (%s)", when, got, want, why)
			}
		}
		return nil
	}
	errs := []error{
		conformance.Case(ctx, "authorized-cached", func(context.Context) error {
			return judge("allow", []int{1, 1, 1, 2}, fmt.Sprintf("at 0, 0, unauthorizedTTL+%s, authorizedTTL+%s", margin, margin),
				"an allow is cached for authorizedTTL, then asked again")
		}),
		conformance.Case(ctx, "unauthorized-cached", func(context.Context) error {
			return judge("deny", []int{1, 1, 2}, fmt.Sprintf("at 0, 0, unauthorizedTTL+%s", margin),
				"a deny is cached for unauthorizedTTL, then asked again")
		}),
		conformance.Case(ctx, "errors-never-cached", func(context.Context) error {
			return judge("error", []int{1, 2, 3}, fmt.Sprintf("at 0, 0, unauthorizedTTL+%s", margin), "an error is never cached")
		}),
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

var _ = Suite.Register(chainChecks...)
