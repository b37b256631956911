package cri

import (
	"fmt"
	"sync/atomic"

	"github.com/gauntlet-conformance/gauntlet/faults"
)

// The fault names live in package faults (faults.Streaming is the table);
// this runtime implements them. Faults of the construction layer are read
// when the runtime starts; the others are read per request, so Arm can
// switch them on in a running runtime after a test's fixtures exist.

// faultSet is the active faults, swappable at run time.
type faultSet struct{ p atomic.Pointer[faults.Set] }

func newFaultSet(fs []faults.Fault) *faultSet {
	s := &faultSet{}
	set := faults.NewSet(fs...)
	s.p.Store(&set)
	return s
}

func (s *faultSet) has(f faults.Fault) bool {
	if s == nil {
		return false
	}
	m := s.p.Load()
	return m != nil && (*m)[f]
}

// Arm switches on faults in the running runtime, on top of those it started
// with. Construction faults cannot be armed: pass them in Options.Faults.
func (r *Runtime) Arm(fs ...faults.Fault) error {
	for _, f := range fs {
		info, ok := faults.Streaming.Lookup(f)
		if !ok {
			return fmt.Errorf("unknown streaming fault %q", f)
		}
		if !info.Armable() {
			return fmt.Errorf("fault %s is fixed at start (layer %s): pass it in Options.Faults", f, info.Layer)
		}
	}
	next := faults.Set{}
	for f := range *r.faults.p.Load() {
		next[f] = true
	}
	for _, f := range fs {
		next[f] = true
	}
	r.faults.p.Store(&next)
	return nil
}
