package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// RunOptions configure one run of a suite.
type RunOptions struct {
	// Parallel is how many checks run at once in the parallel phase
	// (0: DefaultParallel). Serial checks always run alone afterwards.
	Parallel int
	// Select picks the checks to run (nil: all); the rest are reported as
	// filtered.
	Select func(Info) bool
	// Timeout bounds the whole run (0: none); a run that hits it is
	// interrupted, never green.
	Timeout time.Duration
	// Progress receives a line per finished check (nil: quiet).
	Progress io.Writer
	// Expectations judge the results (nil: none) and name verdicts in the
	// progress lines.
	Expectations *Expectations
	// Grace is how long a check that ignores its context may overrun its
	// deadline before the runner abandons it (default 15 s).
	Grace time.Duration
}

// DefaultParallel is the default number of concurrent checks: checks mostly
// wait on the target, so more than the core count.
func DefaultParallel() int {
	n := 4 * runtime.NumCPU()
	if n < 8 {
		n = 8
	}
	if n > 16 {
		n = 16
	}
	return n
}

// ErrSetup wraps a failure to set the suite up against its target.
var ErrSetup = errors.New("suite setup failed")

// Run runs the selected checks of s against t and returns the judged
// report. Setup errors (the target cannot be reached) are returned wrapped
// in ErrSetup; a fixture that cannot be prepared makes every selected check
// an error. Cancelling ctx interrupts the run: running checks are reported
// interrupted, the others not-run, and the report is not OK.
func Run[E any](ctx context.Context, s *Suite[E], t Target, o RunOptions) (*Report, error) {
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel()
	}
	if o.Grace <= 0 {
		o.Grace = 15 * time.Second
	}
	runCtx := ctx
	var cancelRun context.CancelFunc = func() {}
	if o.Timeout > 0 {
		runCtx, cancelRun = context.WithTimeoutCause(ctx, o.Timeout, fmt.Errorf("the run's --timeout %s expired", o.Timeout))
	}
	defer cancelRun()

	rep := &Report{Suite: s.Name, Target: t.Name, Embedded: t.Embedded, FeaturesDeclared: append([]Feature(nil), t.Features...),
		Started: time.Now(), Parallel: o.Parallel, Categories: s.Categories}
	sortFeatures(rep.FeaturesDeclared)
	checks := s.Checks()
	rep.Results = make([]Result, len(checks))
	var parallel, serial []int
	for i, c := range checks {
		in := c.Info()
		rep.Results[i] = Result{ID: c.ID, Name: c.Name, Category: in.Category(), Labels: in.AllLabels(), Features: c.Features, Target: t.Name, Status: NotRun}
		switch {
		case o.Select != nil && !o.Select(in):
			rep.Results[i].Status = Filtered
			rep.Results[i].Message = "not selected"
		case c.Serial:
			serial = append(serial, i)
		default:
			parallel = append(parallel, i)
		}
	}
	selected := len(parallel) + len(serial)
	// Long waits first, so they overlap the many short checks instead of
	// trailing them.
	sort.SliceStable(parallel, func(a, b int) bool {
		ca, cb := checks[parallel[a]].Info(), checks[parallel[b]].Info()
		if ca.Slow != cb.Slow {
			return ca.Slow
		}
		return ca.Deadline() > cb.Deadline()
	})

	setupCtx, cancel := context.WithTimeout(runCtx, 2*time.Minute)
	env, err := s.Setup(setupCtx, t)
	cancel()
	if err != nil {
		return rep, fmt.Errorf("%w: %s against %s: %v", ErrSetup, s.Name, t.Name, err)
	}
	defer func() {
		if s.Teardown == nil {
			return
		}
		// Cleanup gets its own deadline: it must also run after an interrupt.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 90*time.Second)
		defer cancel()
		if err := s.Teardown(tctx, env); err != nil && o.Progress != nil {
			fmt.Fprintf(o.Progress, "cleanup: %v\n", err)
		}
	}()
	var prepErr error
	if s.Prepare != nil && selected > 0 {
		pctx, cancel := context.WithTimeout(runCtx, 3*time.Minute)
		prepErr = s.Prepare(pctx, env)
		cancel()
	}

	var mu sync.Mutex
	done := 0
	finish := func(i int, r Result) {
		mu.Lock()
		defer mu.Unlock()
		rep.Results[i] = r
		done++
		if o.Progress != nil {
			judge(&r, o.Expectations)
			fmt.Fprintf(o.Progress, "[%3d/%d %6.1fs] %-6s %s (%.1fs)%s\n", done, selected, time.Since(rep.Started).Seconds(),
				word(r.Verdict), r.Title(), r.Duration.Seconds(), shortMsg(r))
		}
	}
	runOne := func(i int) {
		c := checks[i]
		base := rep.Results[i]
		if s.TargetOf != nil {
			base.Target = s.TargetOf(env, c.Info())
		}
		if runCtx.Err() != nil {
			return // stays not-run
		}
		if prepErr != nil {
			base.Status, base.Message = Errored, "fixture: "+prepErr.Error()
			finish(i, base)
			return
		}
		finish(i, runCheck(runCtx, c, env, t, s.Features, base, o.Grace))
	}

	// Parallel phase.
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < o.Parallel && w < len(parallel); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				runOne(i)
			}
		}()
	}
feed:
	for _, i := range parallel {
		select {
		case work <- i:
		case <-runCtx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	// Serial phase: one at a time, on a quiet target.
	for _, i := range serial {
		if runCtx.Err() != nil {
			break
		}
		runOne(i)
	}
	if runCtx.Err() != nil {
		cause := context.Cause(runCtx)
		if errors.Is(cause, context.Canceled) {
			cause = errors.New("interrupted")
		}
		rep.Interrupted = cause.Error()
		for i := range rep.Results {
			if rep.Results[i].Status == NotRun {
				rep.Results[i].Message = "never started: the run ended first (" + rep.Interrupted + ")"
			}
		}
	}
	rep.Duration = time.Since(rep.Started)
	rep.FeaturesExercised = exercised(rep.Results)
	rep.Judge(o.Expectations)
	return rep, nil
}

// runCheck runs one check body: feature gates, its deadline, panics and
// stalls as errors, sub-cases and notes recorded.
func runCheck[E any](runCtx context.Context, c Check[E], env E, t Target, known []FeatureInfo, res Result, grace time.Duration) Result {
	start := time.Now()
	for _, f := range c.Features {
		if err := Require(t, known, f); err != nil {
			res.Status, res.Message, res.Skipped = Skipped, err.Error(), f
			return res
		}
	}
	rec := &recorder{}
	ctx, cancel := context.WithTimeoutCause(withRecorder(runCtx, rec), c.Info().Deadline(),
		fmt.Errorf("check %s exceeded its %s deadline", c.ID, c.Info().Deadline()))
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				errc <- fmt.Errorf("check panicked: %v\n%s", p, debug.Stack())
			}
		}()
		errc <- c.Run(ctx, env)
	}()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		// A body that honours its context returns promptly; one that does
		// not is abandoned after the grace period, so the run never hangs.
		select {
		case err = <-errc:
		case <-time.After(grace):
			err = fmt.Errorf("did not return within %s of its deadline (%v): abandoned", grace, context.Cause(ctx))
		}
	}
	res.Duration = time.Since(start)
	var used []Feature
	res.Cases, res.Notes, used = rec.snapshot()
	for _, f := range used {
		if !slices.Contains(res.Features, f) {
			res.Features = append(slices.Clip(res.Features), f)
		}
	}
	res.Status = statusOf(err)
	if err != nil {
		res.Message = err.Error()
		if s, ok := IsSkip(err); ok {
			res.Skipped = s.Feature
		}
	}
	if err != nil && ctx.Err() != nil && runCtx.Err() != nil {
		res.Status = Interrupted
		return res
	}
	if len(res.Cases) > 0 {
		var bad []string
		worst := Passed
		for _, cr := range res.Cases {
			if cr.Status == Passed || cr.Status == Skipped {
				continue
			}
			if err != nil && cr.Message == err.Error() {
				res.fromCases = true
			}
			bad = append(bad, cr.Name)
			if cr.Status == Failed || worst == Passed {
				worst = cr.Status
			}
		}
		if err == nil && len(bad) > 0 {
			res.fromCases = true
			res.Status = worst
			res.Message = fmt.Sprintf("%d of %d cases did not pass: %s", len(bad), len(res.Cases), strings.Join(bad, ", "))
		}
	}
	return res
}

func exercised(rs []Result) []Feature {
	seen := map[Feature]bool{}
	for _, r := range rs {
		if r.Status == Passed || r.Status == Failed || r.Status == Errored {
			for _, f := range r.Features {
				seen[f] = true
			}
		}
	}
	out := make([]Feature, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	sortFeatures(out)
	return out
}

func sortFeatures(fs []Feature) { sort.Slice(fs, func(i, j int) bool { return fs[i] < fs[j] }) }

// word is the progress/summary word for a verdict. Expected failures never
// read "FAIL": a green run's output must not look red.
func word(v Verdict) string {
	switch v {
	case VerdictPass:
		return "ok"
	case VerdictFail:
		return "FAIL"
	case VerdictError:
		return "ERROR"
	case VerdictExpectedFailure:
		return "xfail"
	case VerdictUnexpectedPass:
		return "XPASS"
	case VerdictFlaky:
		return "flaky"
	case VerdictSkip:
		return "skip"
	case VerdictNotRun:
		return "NOTRUN"
	case VerdictInterrupted:
		return "INTR"
	}
	return string(v)
}

// Word is the short verdict word used in progress lines and summaries.
func Word(v Verdict) string { return word(v) }

func shortMsg(r Result) string {
	if r.Verdict == VerdictPass || r.Message == "" {
		return ""
	}
	return ": " + FirstLine(r.Message, 140)
}

// FirstLine returns s's first line, cut at n runes.
func FirstLine(s string, n int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}
