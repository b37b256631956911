package meshkube

import (
	"context"
	"fmt"
	"time"
)

// observe is one observation: ok, or why not (for the error when the bound
// passes). An error is a failed observation too (API hiccups are retried);
// only the caller's context ends the wait early.
type observe func(ctx context.Context) (ok bool, why string, err error)

// perCall bounds one observation's API calls.
const perCall = 10 * time.Second

// await polls until Threshold consecutive observations hold, as Gateway
// API conformance waits for its resources, within bound. The error names
// what the last observation saw.
func await(ctx context.Context, what string, bound, interval time.Duration, obs observe) error {
	start := time.Now()
	deadline := start.Add(bound)
	streak := 0
	last := "never observed"
	for {
		cctx, cancel := context.WithTimeout(ctx, perCall)
		ok, why, err := obs(cctx)
		cancel()
		switch {
		case err != nil:
			streak, last = 0, err.Error()
		case ok:
			if streak++; streak >= Threshold {
				return nil
			}
		default:
			streak, last = 0, why
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: interrupted after %s: %s", what, time.Since(start).Round(time.Millisecond), last)
		}
		if time.Now().Add(interval).After(deadline) {
			if streak > 0 {
				last = fmt.Sprintf("only %d of %d consecutive observations held", streak, Threshold)
			}
			return fmt.Errorf("%s: not converged within %s: %s", what, bound, last)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: interrupted after %s: %s", what, time.Since(start).Round(time.Millisecond), last)
		case <-t.C:
		}
	}
}
