package conformance

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// recorder collects what a running check reports besides its error: named
// sub-cases and informational notes.
type recorder struct {
	mu    sync.Mutex
	cases []CaseResult
	notes []Observation
	used  []Feature
}

type recorderKey struct{}

func withRecorder(ctx context.Context, r *recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, r)
}

func recorderFrom(ctx context.Context) *recorder {
	r, _ := ctx.Value(recorderKey{}).(*recorder)
	return r
}

// Note records an observation in the check's report entry (informational
// values such as a negotiated protocol or a measured latency).
func Note(ctx context.Context, name, value string) {
	if r := recorderFrom(ctx); r != nil {
		r.mu.Lock()
		r.notes = append(r.notes, Observation{Name: name, Value: value})
		r.mu.Unlock()
	}
}

// Exercise records that the running check exercised feature f although it
// does not require it: e.g. a meshauthz core check that sends its requests
// over whichever protocol the target serves. The report then counts f as
// exercised by this check (Result.Features), so reports name only, and all
// of, what actually ran.
func Exercise(ctx context.Context, f Feature) {
	if r := recorderFrom(ctx); r != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, u := range r.used {
			if u == f {
				return
			}
		}
		r.used = append(r.used, f)
	}
}

// Case runs one named sub-case of a check and records its outcome; a failing
// case does not stop the others. The check fails when any case failed, and
// each case is reported (and can be expected) on its own. Case returns fn's
// error so a body can still stop early when a later case depends on it.
func Case(ctx context.Context, name string, fn func(ctx context.Context) error) (err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("case panicked: %v\n%s", p, debug.Stack())
		}
		r := recorderFrom(ctx)
		if r == nil {
			return
		}
		cr := CaseResult{Name: name, Status: statusOf(err), Duration: time.Since(start)}
		if err != nil {
			cr.Message = err.Error()
		}
		r.mu.Lock()
		r.cases = append(r.cases, cr)
		r.mu.Unlock()
	}()
	return fn(ctx)
}

func (r *recorder) snapshot() ([]CaseResult, []Observation, []Feature) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]CaseResult(nil), r.cases...), append([]Observation(nil), r.notes...), append([]Feature(nil), r.used...)
}
