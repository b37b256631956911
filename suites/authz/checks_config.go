package authz

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/suites/authz/probe"
)

// variant is an invalid configuration derived from the chain's own: the
// server must refuse it at start-up and keep its last good configuration
// when the file changes to it.
type variant struct {
	name   string
	mutate func(c *apiv1.AuthorizationConfiguration)
}

func webhookOf(c *apiv1.AuthorizationConfiguration, name string) *apiv1.WebhookConfiguration {
	for i := range c.Authorizers {
		if c.Authorizers[i].Name == name {
			return c.Authorizers[i].Webhook
		}
	}
	panic("no authorizer " + name)
}

var variants = []variant{
	{"timeout-zero", func(c *apiv1.AuthorizationConfiguration) { webhookOf(c, pA).Timeout = metav1.Duration{} }},
	{"timeout-over-30s", func(c *apiv1.AuthorizationConfiguration) {
		webhookOf(c, pA).Timeout = metav1.Duration{Duration: 31 * time.Second}
	}},
	{"timeout-negative", func(c *apiv1.AuthorizationConfiguration) {
		webhookOf(c, pA).Timeout = metav1.Duration{Duration: -time.Second}
	}},
	{"duplicate-name", func(c *apiv1.AuthorizationConfiguration) { c.Authorizers[1].Name = c.Authorizers[0].Name }},
	{"invalid-name", func(c *apiv1.AuthorizationConfiguration) { c.Authorizers[0].Name = "Authz_A" }},
	{"repeated-non-webhook-type", func(c *apiv1.AuthorizationConfiguration) {
		c.Authorizers = append(c.Authorizers,
			apiv1.AuthorizerConfiguration{Type: "AlwaysDeny", Name: "alwaysdeny"},
			apiv1.AuthorizerConfiguration{Type: "AlwaysDeny", Name: "alwaysdeny"})
	}},
	{"too-many-conditions", func(c *apiv1.AuthorizationConfiguration) {
		w := webhookOf(c, pB)
		w.MatchConditions = nil
		for i := 0; i < 65; i++ {
			w.MatchConditions = append(w.MatchConditions, apiv1.WebhookMatchCondition{Expression: fmt.Sprintf("request.user != 'gauntlet-%d'", i)})
		}
	}},
	{"duplicate-expression", func(c *apiv1.AuthorizationConfiguration) {
		w := webhookOf(c, pB)
		w.MatchConditions = append(w.MatchConditions, w.MatchConditions[0])
	}},
	{"non-bool-expression", func(c *apiv1.AuthorizationConfiguration) {
		w := webhookOf(c, pB)
		w.MatchConditions = append(w.MatchConditions, apiv1.WebhookMatchCondition{Expression: "request.user"})
	}},
	{"missing-match-condition-sar-version", func(c *apiv1.AuthorizationConfiguration) {
		webhookOf(c, pB).MatchConditionSubjectAccessReviewVersion = ""
	}},
}

func az12Cases() []string {
	out := []string{"startup/valid"}
	for _, v := range variants {
		out = append(out, "startup/"+v.name)
	}
	out = append(out, "reload/change-picked-up")
	for _, v := range variants {
		out = append(out, "reload/"+v.name)
	}
	return out
}

func derive(base []byte, mutate func(*apiv1.AuthorizationConfiguration)) ([]byte, error) {
	c, err := probe.UnmarshalConfig(base)
	if err != nil {
		return nil, fmt.Errorf("the chain's configuration: %w", err)
	}
	mutate(c)
	return probe.MarshalConfig(c)
}

// withoutC is the valid change AZ12 reloads: the chain minus its last probe.
func withoutC(c *apiv1.AuthorizationConfiguration) {
	var keep []apiv1.AuthorizerConfiguration
	for _, a := range c.Authorizers {
		if a.Name != pC {
			keep = append(keep, a)
		}
	}
	c.Authorizers = keep
}

// reachesC reports whether the live chain still ends in probe C: a review
// nobody decides passes every probe.
func (e *Env) reachesC(ctx context.Context) (bool, error) {
	user := uniqueUser("AZ12", "probe")
	if _, err := e.ask(ctx, user, script{}); err != nil {
		return false, err
	}
	n, err := e.callCount(ctx, pC, user)
	return n > 0, err
}

// awaitC polls until reachesC is want or wait passes.
func (e *Env) awaitC(ctx context.Context, want bool, wait time.Duration) (bool, error) {
	deadline := time.Now().Add(wait)
	for {
		got, err := e.reachesC(ctx)
		if err != nil || got == want {
			return got == want, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// awaitReload waits until the reload counters move past (ok0, failed0).
func (e *Env) awaitReload(ctx context.Context, ok0, failed0 int) (ok, failed int, err error) {
	deadline := time.Now().Add(e.Chain.ReloadWait)
	for {
		ok, failed, err = e.Chain.Config.Reloads(ctx)
		if err != nil || ok > ok0 || failed > failed0 || time.Now().After(deadline) {
			return ok, failed, err
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ok, failed, ctx.Err()
		}
	}
}

func runAZ12(ctx context.Context, e *Env) (result error) {
	if err := e.needChain(); err != nil {
		return err
	}
	cfg := e.Chain.Config
	base := cfg.Base()
	changed, err := derive(base, withoutC)
	if err != nil {
		return err
	}
	bad := map[string][]byte{}
	for _, v := range variants {
		if bad[v.name], err = derive(base, v.mutate); err != nil {
			return err
		}
	}
	var errs []error
	record := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	// Start-up validation.
	startup := func(name string, data []byte, wantAccepted bool) {
		record(conformance.Case(ctx, "startup/"+name, func(ctx context.Context) error {
			ok, detail, err := cfg.Startup(ctx, data)
			switch {
			case errors.Is(err, ErrNoStartup):
				return conformance.Skip("", "%v", err)
			case err != nil:
				return err
			case ok && !wantAccepted:
				return conformance.Failf("the server starts with an invalid configuration (%s)", name)
			case !ok && wantAccepted:
				return conformance.Failf("the server refuses its own valid configuration: %s", conformance.FirstLine(detail, 300))
			}
			if detail != "" {
				conformance.Note(ctx, "startup/"+name, conformance.FirstLine(detail, 200))
			}
			return nil
		}))
	}
	startup("valid", base, true)
	for _, v := range variants {
		startup(v.name, bad[v.name], false)
	}

	// Reload: the valid change first, then each invalid file; the file is
	// restored at the end whatever happened.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.Chain.ReloadWait+10*time.Second)
		defer cancel()
		if err := cfg.Write(rctx, base); err != nil {
			result = errors.Join(result, fmt.Errorf("restore the configuration: %w", err))
			return
		}
		if ok, err := e.awaitC(rctx, true, e.Chain.ReloadWait); err != nil || !ok {
			result = errors.Join(result, fmt.Errorf("restore the configuration: the chain did not return to it within %s (%v)", e.Chain.ReloadWait, err))
		}
	}()
	pickedUp := conformance.Case(ctx, "reload/change-picked-up", func(ctx context.Context) error {
		if ok, err := e.awaitC(ctx, true, e.Chain.ReloadWait); err != nil || !ok {
			return fmt.Errorf("before the change the chain does not reach probe C: %v", err)
		}
		if err := cfg.Write(ctx, changed); err != nil {
			return err
		}
		start := time.Now()
		ok, err := e.awaitC(ctx, false, e.Chain.ReloadWait)
		if err != nil {
			return err
		}
		if !ok {
			return conformance.Failf("a valid change to the configuration file (probe C removed) was not picked up within %s", e.Chain.ReloadWait)
		}
		conformance.Note(ctx, "reload latency", time.Since(start).Round(time.Millisecond).String())
		return nil
	})
	record(pickedUp)
	for _, v := range variants {
		record(conformance.Case(ctx, "reload/"+v.name, func(ctx context.Context) error {
			if pickedUp != nil {
				return conformance.Skip("", "the chain did not pick up a valid change, so keeping the last good configuration cannot be told from not reloading")
			}
			ok0, failed0, err := cfg.Reloads(ctx)
			if err != nil {
				return err
			}
			if err := cfg.Write(ctx, bad[v.name]); err != nil {
				return err
			}
			ok, failed, err := e.awaitReload(ctx, ok0, failed0)
			switch {
			case err != nil:
				return err
			case ok > ok0:
				return conformance.Failf("the server applied an invalid configuration (%s) on reload", v.name)
			case failed == failed0:
				return conformance.Failf("no rejected reload of the invalid configuration (%s) was reported within %s", v.name, e.Chain.ReloadWait)
			}
			still, err := e.reachesC(ctx)
			if err != nil {
				return err
			}
			if still {
				return conformance.Failf("after rejecting %s the chain reaches probe C again: it did not keep the last good configuration", v.name)
			}
			return nil
		}))
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

var _ = Suite.Register(conformance.Check[*Env]{
	ID: "AZ12", Name: "invalid configurations are refused at start-up and on reload, where the last good configuration stays",
	Faults: []faults.Fault{faults.AZChainSkipsValidation, faults.AZChainNoReload},
	Cases:  az12Cases(), Serial: true, Run: runAZ12,
	// Eleven reloads: instant with fsnotify, up to a minute each when the
	// server falls back to polling.
	Timeout: 15 * time.Minute,
})
