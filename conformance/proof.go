package conformance

import (
	"context"
	"fmt"
	"time"

	"github.com/gauntlet-conformance/gauntlet/faults"
)

// StartFunc starts a fresh embedded reference target with the given faults
// active from the start (construction faults) — usually none: Prove arms
// armable faults after the fixtures exist.
type StartFunc func(ctx context.Context, fs ...faults.Fault) (Target, error)

// Prove runs one check against a fresh reference target with fault f and
// returns the check's result. For an armable fault the target starts clean,
// the suite's fixtures are prepared, and only then is the fault armed, so the
// check, not its setup, meets the fault. ProofError judges the result.
func Prove[E any](ctx context.Context, s *Suite[E], start StartFunc, cat *faults.Catalogue, id string, f faults.Fault) (Result, error) {
	c, ok := s.Lookup(id)
	if !ok {
		return Result{}, fmt.Errorf("%s has no check %s", s.Name, id)
	}
	info, ok := cat.Lookup(f)
	if !ok {
		return Result{}, fmt.Errorf("fault %q is not in the %s catalogue", f, cat.Suite)
	}
	var initial []faults.Fault
	if !info.Armable() {
		initial = []faults.Fault{f}
	}
	t, err := start(ctx, initial...)
	if err != nil {
		return Result{}, fmt.Errorf("start the reference target: %w", err)
	}
	if t.Close != nil {
		defer t.Close()
	}
	res := Result{ID: c.ID, Name: c.Name, Category: Category(c.ID), Features: c.Features, Target: t.Name}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	env, err := s.Setup(sctx, t)
	cancel()
	if err != nil {
		res.Status, res.Message = Errored, "setup: "+err.Error()
		return res, nil
	}
	if s.Teardown != nil {
		defer func() {
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 90*time.Second)
			defer cancel()
			s.Teardown(tctx, env)
		}()
	}
	if s.Prepare != nil {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		err := s.Prepare(pctx, env)
		cancel()
		if err != nil {
			res.Status, res.Message = Errored, "fixture: "+err.Error()
			return res, nil
		}
	}
	if info.Armable() {
		if t.Arm == nil {
			return res, fmt.Errorf("the reference target cannot arm faults")
		}
		if err := t.Arm(f); err != nil {
			return res, fmt.Errorf("arm %s: %w", f, err)
		}
	}
	res = runCheck(ctx, c, env, t, s.Features, res, 15*time.Second)
	return res, nil
}

// ProofError is nil when a proof's result is the check's own failure. A pass
// (the fault went unnoticed), a skip, or a setup error (the fault broke the
// fixture, not the assertion) is an error naming what happened: a proof that
// passes on a setup error is a defect.
func ProofError(r Result, f faults.Fault) error {
	switch r.Status {
	case Failed:
		return nil
	case Passed:
		return fmt.Errorf("%s passed with fault %s: the check does not notice it", r.ID, f)
	case Skipped:
		return fmt.Errorf("%s skipped instead of failing under %s: %s", r.ID, f, r.Message)
	default:
		return fmt.Errorf("%s did not fail on its own assertion under %s (status %s): %s", r.ID, f, r.Status, FirstLine(r.Message, 300))
	}
}

// RunCheck runs one check body against an environment the caller set up,
// exactly as Run does (feature gates, deadline, cases, notes): for tests
// that drive checks against targets of their own making.
func RunCheck[E any](ctx context.Context, s *Suite[E], c Check[E], env E, t Target) Result {
	res := Result{ID: c.ID, Name: c.Name, Category: Category(c.ID), Features: c.Features, Target: t.Name}
	return runCheck(ctx, c, env, t, s.Features, res, 15*time.Second)
}
