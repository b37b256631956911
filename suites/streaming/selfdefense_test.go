package streaming

// The harness defends itself (issue 4 part 5, issue 2): against a runtime
// that never answers, answers garbage, never ends a stream, sends a frame
// claiming a gigantic length or bombs its stream headers, or whose CRI calls
// never return, representative checks must fail with an error (not a panic),
// within their deadline plus a little slack, with a message that says what
// happened, and without the harness's memory growing with what the runtime
// sends.

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/fakes/cri"
	"github.com/gauntlet-conformance/gauntlet/internal/expectations"
)

// selfDefenseChecks cover SPDY exec, WebSocket exec and SPDY port-forward.
var selfDefenseChecks = []string{"C1", "D5", "F1"}

// Bounds of the self-defence tests.
const (
	// defenseSlack is what a failing check may take past its deadline
	// (connection teardown, the loaded 2-core CI machine).
	defenseSlack = 5 * time.Second
	// defenseRetained: heap the harness may keep after a hostile run, once
	// collected: nothing the runtime sent may stay reachable.
	defenseRetained = 64 << 20
	// defensePeak: heap the harness may use while one check runs against a
	// loud mode. What a check collects is capped at maxCollect per stream
	// (64 MiB, C15's size); C1 reads two flooded streams, and a
	// bytes.Buffer at the cap may hold twice its content while it grows:
	// 2 x (64 + 128) MiB, plus the frames spdystream has in flight. The hostile runtime offers 512 MiB per stream,
	// so a missing cap shows as growth far beyond (5.6 GiB before the caps
	// existed).
	defensePeak = 512 << 20
)

// defenseCase is one hostile mode and what the checks must say against it.
type defenseCase struct {
	mode cri.Fault
	// loud modes make the harness read what the runtime floods it with:
	// they run one at a time so their memory can be measured.
	loud bool
	// oneByOne: the checks run one after the other, the heap settled in
	// between, so the bound is per check (the flood modes).
	oneByOne bool
	// want: per check ID, the error must contain one of these (case-insensitive).
	want map[string][]string
}

var deadlineWords = []string{"deadline", "timed out", "timeout"}

var defenseCases = []defenseCase{
	{mode: cri.FaultHostileNeverAnswer, want: map[string][]string{"C1": deadlineWords, "D5": deadlineWords, "F1": deadlineWords}},
	{mode: cri.FaultHostileMute, want: map[string][]string{"C1": deadlineWords, "D5": deadlineWords, "F1": deadlineWords}},
	{mode: cri.FaultHostileCRIHang, want: map[string][]string{"C1": {"Exec(", "deadline"}, "D5": {"Exec(", "deadline"}, "F1": {"PortForward(", "deadline"}}},
	{mode: cri.FaultHostileGarbage, loud: true, want: map[string][]string{"C1": deadlineWords, "D5": {"stream broke"}, "F1": deadlineWords}},
	// The collection cap ends the flood; on a slow machine (-race) the
	// check's deadline may come first, which is as good.
	{mode: cri.FaultHostileEndless, loud: true, oneByOne: true, want: map[string][]string{"C1": {"more than 64 MiB", "deadline"}, "D5": {"more than 64 MiB", "deadline"}, "F1": {"more than 64 MiB", "returned data", "deadline"}}},
	{mode: cri.FaultHostileGiantFrame, loud: true, want: map[string][]string{"C1": deadlineWords, "D5": {"read limit"}, "F1": deadlineWords}},
	{mode: cri.FaultHostileHeaderBomb, loud: true, want: map[string][]string{"C1": {"not answered"}, "D5": deadlineWords, "F1": {"not answered"}}},
	{mode: cri.FaultHostileEndlessHead, loud: true, want: map[string][]string{"C1": {"exceeds"}, "D5": {"exceeds"}, "F1": {"exceeds"}}},
}

// defenseResult is how one check ended against one hostile mode.
type defenseResult struct {
	mode    cri.Fault
	check   Check
	err     error
	elapsed time.Duration
}

// newHostileEnv starts a reference runtime with mode, creates the shared
// fixture while the mode is disarmed (it needs working port-forward), then
// arms it.
func newHostileEnv(t *testing.T, mode cri.Fault) *Env {
	t.Helper()
	e := newProofEnv(t, proofOptions(mode))
	e.Fake.SetHostile(false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.Fixture(ctx); err != nil {
		t.Fatalf("fixture before arming %s: %v", mode, err)
	}
	e.Fake.SetHostile(true)
	return e
}

// runDefense runs the representative checks against one hostile runtime,
// concurrently unless oneByOne (then settling the heap after each).
func runDefense(t *testing.T, e *Env, mode cri.Fault, oneByOne bool) []defenseResult {
	var wg sync.WaitGroup
	out := make([]defenseResult, len(selfDefenseChecks))
	for i, id := range selfDefenseChecks {
		c, ok := Lookup(id)
		if !ok {
			t.Fatalf("no check %s", id)
		}
		run := func() {
			start := time.Now()
			err := RunCheck(context.Background(), e, c)
			out[i] = defenseResult{mode: mode, check: c, err: err, elapsed: time.Since(start)}
		}
		if oneByOne {
			run()
			settledHeap()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run()
		}()
	}
	wg.Wait()
	return out
}

// judge asserts one result: an error, not a panic, in time, saying what happened.
func judge(t *testing.T, dc defenseCase, r defenseResult) {
	t.Helper()
	limit := r.check.timeout() + defenseSlack
	t.Logf("%s against %s: %s: %v", r.check.ID, r.mode, r.elapsed.Round(time.Millisecond), r.err)
	switch {
	case r.err == nil:
		t.Errorf("%s passed against %s", r.check.ID, r.mode)
		return
	case strings.Contains(r.err.Error(), "check panicked"):
		t.Errorf("%s panicked against %s: %v", r.check.ID, r.mode, r.err)
	}
	if _, skip := IsSkip(r.err); skip {
		t.Errorf("%s skipped against %s: %v", r.check.ID, r.mode, r.err)
	}
	if r.elapsed > limit {
		t.Errorf("%s took %s against %s, over its deadline + slack (%s)", r.check.ID, r.elapsed, r.mode, limit)
	}
	msg := strings.ToLower(r.err.Error())
	want := dc.want[r.check.ID]
	if !slices.ContainsFunc(want, func(w string) bool { return strings.Contains(msg, strings.ToLower(w)) }) {
		t.Errorf("%s against %s: the error does not say what happened (want one of %q): %v", r.check.ID, r.mode, want, r.err)
	}
}

// heapBytes is the live heap; runtime/metrics reads it without stopping the world.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// peakSampler records the highest live heap seen until stopped.
type peakSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func startPeakSampler() *peakSampler {
	p := &peakSampler{stop: make(chan struct{}), done: make(chan struct{})}
	p.peak.Store(heapBytes())
	go func() {
		defer close(p.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				if h := heapBytes(); h > p.peak.Load() {
					p.peak.Store(h)
				}
			}
		}
	}()
	return p
}

func (p *peakSampler) Stop() uint64 {
	close(p.stop)
	<-p.done
	return p.peak.Load()
}

func settledHeap() uint64 {
	runtime.GC()
	runtime.GC()
	return heapBytes()
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// TestSelfDefense runs the representative checks against every hostile mode.
// Quiet modes (the runtime sends nothing) run concurrently in the
// background; loud ones one after the other with the harness's heap
// measured around each (around each check for the flood modes; the other
// loud modes stay far below the per-check bound even all at once).
func TestSelfDefense(t *testing.T) {
	if testing.Short() {
		t.Skip("hostile runtimes hold each check up to its deadline")
	}
	// Mostly waiting on deadlines: run alongside TestSelfDefenseGinkgo
	// (whose never-answering runtime costs the heap nothing).
	t.Parallel()
	for _, m := range cri.HostileFaults() {
		if !slices.ContainsFunc(defenseCases, func(dc defenseCase) bool { return dc.mode == m }) {
			t.Errorf("hostile mode %s has no self-defence case", m)
		}
	}
	type quiet struct {
		dc  defenseCase
		res []defenseResult
	}
	var quietWG sync.WaitGroup
	var quiets []*quiet
	for _, dc := range defenseCases {
		if dc.loud {
			continue
		}
		q := &quiet{dc: dc}
		quiets = append(quiets, q)
		e := newHostileEnv(t, dc.mode)
		quietWG.Add(1)
		go func() {
			defer quietWG.Done()
			q.res = runDefense(t, e, dc.mode, false)
		}()
	}
	for _, dc := range defenseCases {
		if !dc.loud {
			continue
		}
		t.Run(string(dc.mode), func(t *testing.T) {
			e := newHostileEnv(t, dc.mode)
			base := settledHeap()
			ps := startPeakSampler()
			res := runDefense(t, e, dc.mode, dc.oneByOne)
			peak := ps.Stop()
			after := settledHeap()
			for _, r := range res {
				judge(t, dc, r)
			}
			t.Logf("harness heap: base %s, peak %s (+%s), after GC %s", mib(base), mib(peak), mib(peak-min(peak, base)), mib(after))
			if peak > base && peak-base > defensePeak {
				t.Errorf("the harness's heap grew by %s while %s ran (bound %s)", mib(peak-base), dc.mode, mib(defensePeak))
			}
			if after > base && after-base > defenseRetained {
				t.Errorf("the harness kept %s of heap after %s (bound %s)", mib(after-base), dc.mode, mib(defenseRetained))
			}
		})
	}
	quietWG.Wait()
	for _, q := range quiets {
		t.Run(string(q.dc.mode), func(t *testing.T) {
			for _, r := range q.res {
				judge(t, q.dc, r)
			}
		})
	}
}

// TestSelfDefenseGinkgo drives the suite's own entry point (Run, as the CLI
// does) with a focus on one SPDY check against a runtime that accepts
// connections and never answers: the spec must fail within its node
// timeout, and Run must return (issue 2). The runtime is hostile from the
// start, as a daemon would be, so the shared fixture's port-forward probe
// is what meets the silence first.
func TestSelfDefenseGinkgo(t *testing.T) {
	if testing.Short() {
		t.Skip("the focused spec waits for its deadline")
	}
	if *flagEndpoint != "" || *flagConformance {
		t.Skip("Ginkgo runs once per process, and TestStreaming runs the suite in this one")
	}
	t.Parallel()
	c, _ := Lookup("C1")
	nodeTimeout := c.timeout() + 10*time.Second // suite.go's NodeTimeout for the spec
	// BeforeSuite (start the runtime), the spec, and cleanup (CRI calls the
	// hostile mode leaves alone).
	limit := nodeTimeout + 30*time.Second
	type result struct {
		rep Report
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		rep, err := Run(RunOptions{
			Config: Config{FakeOptions: proofOptions(cri.FaultHostileNeverAnswer)},
			RunID:  "selfdefense",
			Focus:  []string{`\[C1\]`},
			// The suite-wide timeout is far above the spec's own: the
			// spec's deadline is what must end it.
			Timeout: 10 * time.Minute,
		})
		done <- result{rep, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(limit):
		t.Fatalf("Run did not return within %s against a never-answering runtime", limit)
	}
	elapsed := time.Since(start)
	if res.err != nil {
		t.Fatal(res.err)
	}
	t.Logf("Run returned after %s", elapsed.Round(time.Millisecond))
	var found bool
	for _, o := range res.rep.Outcomes {
		if o.ID != "C1" {
			if o.State != expectations.Skipped {
				t.Errorf("%s ran although only C1 was focused: %s", o.ID, o.State)
			}
			continue
		}
		found = true
		t.Logf("C1: %s: %s", o.State, o.Message)
		if o.State != expectations.Failed {
			t.Errorf("C1 against a never-answering runtime: %s, want a failure", o.State)
		}
		if msg := strings.ToLower(o.Message); !slices.ContainsFunc(deadlineWords, func(w string) bool { return strings.Contains(msg, w) }) {
			t.Errorf("C1's failure does not name the deadline: %s", o.Message)
		}
	}
	if !found {
		t.Fatalf("no C1 outcome in %+v", res.rep.Outcomes)
	}
	if elapsed > limit {
		t.Errorf("Run took %s, over the spec's node timeout %s + start/cleanup", elapsed, nodeTimeout)
	}
}
