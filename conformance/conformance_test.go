package conformance_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
)

// toy is a target whose behaviour the tests script: which cases of X fail,
// and whether fault "toy-break" is armed.
type toy struct {
	failCases map[string]bool
	armed     atomic.Bool
	setupErr  error
}

var toyFaults = faults.NewCatalogue("toy", faults.Info{Name: "toy-break", Layer: "wire", Doc: "breaks the toy"},
	faults.Info{Name: "toy-break-setup", Layer: faults.Construction, Doc: "breaks the toy's fixture"})

func toySuite() *conformance.Suite[*toy] {
	s := &conformance.Suite[*toy]{
		Name: "toy",
		Setup: func(ctx context.Context, t conformance.Target) (*toy, error) {
			ty := t.Settings.(*toy)
			return ty, ty.setupErr
		},
	}
	s.Register(
		conformance.Check[*toy]{ID: "X1", Name: "cases", Cases: []string{"a", "b"}, Faults: []faults.Fault{"toy-break"},
			Run: func(ctx context.Context, ty *toy) error {
				for _, c := range []string{"a", "b"} {
					conformance.Case(ctx, c, func(ctx context.Context) error {
						if ty.failCases[c] || ty.armed.Load() {
							return conformance.Failf("case %s broke", c)
						}
						return nil
					})
				}
				return nil
			}},
		conformance.Check[*toy]{ID: "X2", Name: "honest", Faults: []faults.Fault{"toy-break"},
			Run: func(ctx context.Context, ty *toy) error {
				if ty.armed.Load() {
					return conformance.Failf("the toy is broken")
				}
				return nil
			}},
		conformance.Check[*toy]{ID: "X3", Name: "fixture breaks under the fault", Faults: []faults.Fault{"toy-break"},
			Run: func(ctx context.Context, ty *toy) error {
				if ty.armed.Load() {
					return errors.New("fixture: could not create the sandbox")
				}
				return nil
			}},
		conformance.Check[*toy]{ID: "X4", Name: "blind", Faults: []faults.Fault{"toy-break"},
			Run: func(ctx context.Context, ty *toy) error { return nil }},
	)
	return s
}

func toyTarget(ty *toy) conformance.Target {
	return conformance.Target{Name: "toy", Settings: ty, Arm: func(fs ...faults.Fault) error { ty.armed.Store(true); return nil }}
}

func run(t *testing.T, ty *toy, x *conformance.Expectations, ids ...string) *conformance.Report {
	t.Helper()
	sel := func(i conformance.Info) bool {
		for _, id := range ids {
			if i.ID == id {
				return true
			}
		}
		return len(ids) == 0
	}
	rep, err := conformance.Run(context.Background(), toySuite(), toyTarget(ty), conformance.RunOptions{Select: sel, Expectations: x})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func parseX(t *testing.T, doc string) *conformance.Expectations {
	t.Helper()
	x, err := conformance.ParseExpectations([]byte(doc), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Validate("toy", toySuite().Infos()); err != nil {
		t.Fatal(err)
	}
	return x
}

// A case-level expectation covers exactly its case: a new failure in
// another case of the same check turns the run red.
func TestCaseExpectations(t *testing.T) {
	x := parseX(t, "suite: toy\ntarget: t\nchecks:\n  X1/a: {reason: known, link: https://example.test/a}\n")
	for _, tc := range []struct {
		name    string
		fail    map[string]bool
		ok      bool
		verdict conformance.Verdict
	}{
		{"only the expected case fails", map[string]bool{"a": true}, true, conformance.VerdictExpectedFailure},
		{"another case newly fails", map[string]bool{"a": true, "b": true}, false, conformance.VerdictFail},
		{"the expected case is fixed", map[string]bool{}, false, conformance.VerdictUnexpectedPass},
		{"only the other case fails", map[string]bool{"b": true}, false, conformance.VerdictFail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := run(t, &toy{failCases: tc.fail}, x, "X1")
			if rep.OK() != tc.ok {
				t.Errorf("OK() = %v, want %v: %+v", rep.OK(), tc.ok, rep.Results)
			}
			for _, r := range rep.Results {
				if r.ID == "X1" && r.Verdict != tc.verdict {
					t.Errorf("X1 verdict %s, want %s (%s)", r.Verdict, tc.verdict, r.Message)
				}
			}
		})
	}
}

func TestExpectationsValidate(t *testing.T) {
	for _, doc := range []string{
		"suite: toy\ntarget: t\nchecks:\n  X9: {reason: r, link: l}\n",
		"suite: toy\ntarget: t\nchecks:\n  X1/zz: {reason: r, link: l}\n",
		"suite: other\ntarget: t\nchecks:\n  X1: {reason: r, link: l}\n",
	} {
		x, err := conformance.ParseExpectations([]byte(doc), "x.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Validate("toy", toySuite().Infos()); err == nil {
			t.Errorf("accepted %q", doc)
		}
	}
	if _, err := conformance.ParseExpectations([]byte("target: t\nchecks: {}\n"), "x.yaml"); err == nil {
		t.Error("a file without a suite was accepted")
	}
	if _, err := conformance.ParseExpectations([]byte("suite: toy\nchecks:\n  X1: {reason: r}\n"), "x.yaml"); err == nil {
		t.Error("an entry without a link was accepted")
	}
}

// A flaky entry accepts either outcome and says which happened.
func TestFlaky(t *testing.T) {
	x := parseX(t, "suite: toy\ntarget: t\nchecks:\n  X2: {reason: races, link: https://example.test, flaky: true}\n")
	for _, armed := range []bool{false, true} {
		ty := &toy{}
		ty.armed.Store(armed)
		rep := run(t, ty, x, "X2")
		if !rep.OK() || rep.Results[1].Verdict != conformance.VerdictFlaky {
			t.Errorf("armed=%v: OK %v, verdict %s", armed, rep.OK(), rep.Results[1].Verdict)
		}
	}
}

// A proof accepts only the check's own failure: a pass or a setup error
// under the fault is a defective proof.
func TestProofAcceptsOnlyOwnFailure(t *testing.T) {
	start := func(ctx context.Context, fs ...faults.Fault) (conformance.Target, error) {
		return toyTarget(&toy{}), nil
	}
	for _, tc := range []struct {
		id   string
		want string // "" = proven
	}{
		{"X1", ""},
		{"X2", ""},
		{"X3", "did not fail on its own assertion"},
		{"X4", "passed with fault"},
	} {
		res, err := conformance.Prove(context.Background(), toySuite(), start, toyFaults, tc.id, "toy-break")
		if err != nil {
			t.Fatal(err)
		}
		err = conformance.ProofError(res, "toy-break")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.id, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: proof error %v, want %q", tc.id, err, tc.want)
		}
	}
	// A fixture broken by a construction fault is a setup error, never a proof.
	bad := func(ctx context.Context, fs ...faults.Fault) (conformance.Target, error) {
		return toyTarget(&toy{setupErr: errors.New("sandbox refused")}), nil
	}
	res, err := conformance.Prove(context.Background(), toySuite(), bad, toyFaults, "X2", "toy-break-setup")
	if err != nil {
		t.Fatal(err)
	}
	if conformance.ProofError(res, "toy-break-setup") == nil {
		t.Errorf("a setup error was accepted as a proof: %+v", res)
	}
}

// An interrupted run is never green: the running check is interrupted, the
// rest never started, and the report says so.
func TestInterruptedRun(t *testing.T) {
	s := &conformance.Suite[int]{Name: "slow", Setup: func(context.Context, conformance.Target) (int, error) { return 0, nil }}
	started := make(chan struct{})
	var once sync.Once
	for _, id := range []string{"S1", "S2", "S3"} {
		s.Register(conformance.Check[int]{ID: id, Name: id, Run: func(ctx context.Context, _ int) error {
			once.Do(func() { close(started) })
			<-ctx.Done()
			return ctx.Err()
		}})
	}
	x := &conformance.Expectations{Suite: "slow", Checks: map[string]conformance.Entry{"S1": {Reason: "r", Link: "l"}}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	rep, err := conformance.Run(ctx, s, conformance.Target{Name: "t"}, conformance.RunOptions{Parallel: 1, Expectations: x})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Interrupted == "" {
		t.Fatalf("interrupted run: OK %v, Interrupted %q", rep.OK(), rep.Interrupted)
	}
	got := map[conformance.Status]int{}
	for _, r := range rep.Results {
		got[r.Status]++
	}
	if got[conformance.Interrupted] != 1 || got[conformance.NotRun] != 2 {
		t.Errorf("statuses %v, want 1 interrupted and 2 not-run", got)
	}
}

// A body that ignores its context is abandoned after the grace period.
func TestStalledCheckAbandoned(t *testing.T) {
	s := &conformance.Suite[int]{Name: "stall", Setup: func(context.Context, conformance.Target) (int, error) { return 0, nil }}
	release := make(chan struct{})
	defer close(release)
	s.Register(conformance.Check[int]{ID: "S1", Name: "stalls", Timeout: 50 * time.Millisecond,
		Run: func(ctx context.Context, _ int) error { <-release; return nil }})
	start := time.Now()
	rep, err := conformance.Run(context.Background(), s, conformance.Target{}, conformance.RunOptions{Grace: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	if r := rep.Results[0]; r.Status != conformance.Errored || !strings.Contains(r.Message, "abandoned") {
		t.Errorf("stalled check: %s %q", r.Status, r.Message)
	}
}

// Serial checks run alone, after the parallel ones; the parallel ones overlap.
func TestSerialRunsAlone(t *testing.T) {
	s := &conformance.Suite[int]{Name: "sched", Setup: func(context.Context, conformance.Target) (int, error) { return 0, nil }}
	var running, maxPar atomic.Int32
	var serialSaw atomic.Int32
	body := func(serial bool) func(context.Context, int) error {
		return func(ctx context.Context, _ int) error {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				m := maxPar.Load()
				if n <= m || maxPar.CompareAndSwap(m, n) {
					break
				}
			}
			if serial && n != 1 {
				serialSaw.Store(n)
			}
			time.Sleep(50 * time.Millisecond)
			return nil
		}
	}
	for i := 1; i <= 6; i++ {
		s.Register(conformance.Check[int]{ID: "P" + string(rune('0'+i)), Name: "p", Run: body(false)})
	}
	s.Register(conformance.Check[int]{ID: "Q1", Name: "serial", Serial: true, Run: body(true)})
	rep, err := conformance.Run(context.Background(), s, conformance.Target{}, conformance.RunOptions{Parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("not OK: %+v", rep.Results)
	}
	if maxPar.Load() < 2 {
		t.Errorf("parallel checks never overlapped (max %d)", maxPar.Load())
	}
	if n := serialSaw.Load(); n != 0 {
		t.Errorf("the serial check ran alongside %d others", n-1)
	}
}
