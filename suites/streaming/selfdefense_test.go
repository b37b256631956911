package streaming_test

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

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/fakes/cri"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/reference"
	"github.com/gauntlet-conformance/gauntlet/suites/streaming"
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
	mode faults.Fault
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
	{mode: faults.HostileNeverAnswer, want: map[string][]string{"C1": deadlineWords, "D5": deadlineWords, "F1": deadlineWords}},
	{mode: faults.HostileMute, want: map[string][]string{"C1": deadlineWords, "D5": deadlineWords, "F1": deadlineWords}},
	{mode: faults.HostileCRIHang, want: map[string][]string{"C1": {"Exec(", "deadline"}, "D5": {"Exec(", "deadline"}, "F1": {"PortForward(", "deadline"}}},
	{mode: faults.HostileGarbage, loud: true, want: map[string][]string{"C1": deadlineWords, "D5": {"stream broke"}, "F1": deadlineWords}},
	// The collection cap ends the flood; on a slow machine (-race) the
	// check's deadline may come first, which is as good.
	{mode: faults.HostileEndless, loud: true, oneByOne: true, want: map[string][]string{"C1": {"more than 64 MiB", "deadline"}, "D5": {"more than 64 MiB", "deadline"}, "F1": {"more than 64 MiB", "returned data", "deadline"}}},
	{mode: faults.HostileGiantFrame, loud: true, want: map[string][]string{"C1": deadlineWords, "D5": {"read limit"}, "F1": deadlineWords}},
	{mode: faults.HostileHeaderBomb, loud: true, want: map[string][]string{"C1": {"not answered"}, "D5": deadlineWords, "F1": {"not answered"}}},
	{mode: faults.HostileEndlessHead, loud: true, want: map[string][]string{"C1": {"exceeds"}, "D5": {"exceeds"}, "F1": {"exceeds"}}},
}

// defenseResult is how one check ended against one hostile mode.
type defenseResult struct {
	mode    faults.Fault
	check   streaming.Check
	res     conformance.Result
	elapsed time.Duration
}

// newHostileEnv starts a reference runtime with mode, creates the shared
// fixture while the mode is disarmed (it needs working port-forward), then
// arms it.
func newHostileEnv(t *testing.T, mode faults.Fault) *testEnv {
	t.Helper()
	e := newTestEnv(t, proofOptions(mode))
	e.rt.SetHostile(false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.Fixture(ctx); err != nil {
		t.Fatalf("fixture before arming %s: %v", mode, err)
	}
	e.rt.SetHostile(true)
	return e
}

// runDefense runs the representative checks against one hostile runtime,
// concurrently unless oneByOne (then settling the heap after each).
func runDefense(t *testing.T, e *testEnv, mode faults.Fault, oneByOne bool) []defenseResult {
	var wg sync.WaitGroup
	out := make([]defenseResult, len(selfDefenseChecks))
	for i, id := range selfDefenseChecks {
		c, ok := streaming.Lookup(id)
		if !ok {
			t.Fatalf("no check %s", id)
		}
		run := func() {
			start := time.Now()
			res := conformance.RunCheck(context.Background(), streaming.Suite, c, e.Env, e.target)
			out[i] = defenseResult{mode: mode, check: c, res: res, elapsed: time.Since(start)}
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
	limit := r.check.Info().Deadline() + defenseSlack
	t.Logf("%s against %s: %s: %s: %s", r.check.ID, r.mode, r.elapsed.Round(time.Millisecond), r.res.Status, r.res.Message)
	switch {
	case r.res.Status == conformance.Passed:
		t.Errorf("%s passed against %s", r.check.ID, r.mode)
		return
	case strings.Contains(r.res.Message, "check panicked"):
		t.Errorf("%s panicked against %s: %v", r.check.ID, r.mode, r.res.Message)
	case r.res.Status == conformance.Skipped:
		t.Errorf("%s skipped against %s: %v", r.check.ID, r.mode, r.res.Message)
	}
	if r.elapsed > limit {
		t.Errorf("%s took %s against %s, over its deadline + slack (%s)", r.check.ID, r.elapsed, r.mode, limit)
	}
	msg := strings.ToLower(r.res.Message)
	want := dc.want[r.check.ID]
	if !slices.ContainsFunc(want, func(w string) bool { return strings.Contains(msg, strings.ToLower(w)) }) {
		t.Errorf("%s against %s: the error does not say what happened (want one of %q): %v", r.check.ID, r.mode, want, r.res.Message)
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
	// Mostly waiting on deadlines: run alongside TestSelfDefenseRun
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

// TestSelfDefenseRun drives the suite through conformance.Run, as the CLI
// does, with only C1 selected against a runtime that accepts connections and
// never answers from the start (as a daemon would): the shared fixture's
// port-forward probe meets the silence first, every selected check must end
// as an error within its deadline, and Run must return.
func TestSelfDefenseRun(t *testing.T) {
	if testing.Short() {
		t.Skip("the selected check waits for its deadline")
	}
	t.Parallel()
	c, _ := streaming.Lookup("C1")
	limit := 3*time.Minute + c.Info().Deadline() // setup + Prepare's bound + the check
	tg, _, err := reference.Streaming(proofOptions(faults.HostileNeverAnswer))
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	type result struct {
		rep *conformance.Report
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		rep, err := conformance.Run(context.Background(), streaming.Suite, tg, conformance.RunOptions{
			Select: func(i conformance.Info) bool { return i.ID == "C1" }, Timeout: 10 * time.Minute})
		done <- result{rep, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(limit):
		t.Fatalf("Run did not return within %s against a never-answering runtime", limit)
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	t.Logf("Run returned after %s", time.Since(start).Round(time.Millisecond))
	for _, r := range res.rep.Results {
		if r.ID != "C1" {
			if r.Status != conformance.Filtered {
				t.Errorf("%s ran although only C1 was selected: %s", r.ID, r.Status)
			}
			continue
		}
		t.Logf("C1: %s: %s", r.Status, r.Message)
		if r.Status != conformance.Errored && r.Status != conformance.Failed {
			t.Errorf("C1 against a never-answering runtime: %s, want a failure", r.Status)
		}
		if msg := strings.ToLower(r.Message); !slices.ContainsFunc(deadlineWords, func(w string) bool { return strings.Contains(msg, w) }) {
			t.Errorf("C1's failure does not name the deadline: %s", r.Message)
		}
	}
	if res.rep.OK() {
		t.Error("a run whose only check failed is OK")
	}
}
