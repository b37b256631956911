// Package prooftest is the proof harness every suite's tests share (as
// net/http/httptest is for servers): each (check, fault) pair runs against a
// fresh reference target and must fail on the check's own assertion, and a
// suite's fault catalogue must be fully used.
package prooftest

import (
	"context"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
)

// Faults proves every fault of every check that skip does not exclude, as
// parallel subtests named ID/fault, with start giving each proof a fresh
// reference target (start may depend on the check: a check needing another
// configuration of the reference).
func Faults[E any](t *testing.T, s *conformance.Suite[E], cat *faults.Catalogue, start func(conformance.Info) conformance.StartFunc, skip func(conformance.Info) bool) {
	t.Helper()
	for _, c := range s.Infos() {
		if skip != nil && skip(c) {
			continue
		}
		for _, f := range c.Faults {
			t.Run(c.ID+"/"+string(f), func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), c.Deadline()+4*time.Minute)
				defer cancel()
				res, err := conformance.Prove(ctx, s, start(c), cat, c.ID, f)
				if err != nil {
					t.Fatal(err)
				}
				if err := conformance.ProofError(res, f); err != nil {
					for _, cs := range res.Cases {
						t.Logf("  case %s: %s %s", cs.Name, cs.Status, conformance.FirstLine(cs.Message, 200))
					}
					t.Fatal(err)
				}
				t.Logf("caught: %s", conformance.FirstLine(res.Message, 300))
			})
		}
	}
}

// Catalogue checks that every check skip does not exclude names at least
// one fault, that every named fault is in cat, and that every fault of cat
// is named by a check or listed in extra (faults other tests use).
func Catalogue[E any](t *testing.T, s *conformance.Suite[E], cat *faults.Catalogue, skip func(conformance.Info) bool, extra ...faults.Fault) {
	t.Helper()
	used := map[faults.Fault]bool{}
	for _, f := range extra {
		used[f] = true
	}
	for _, c := range s.Infos() {
		if len(c.Faults) == 0 && (skip == nil || !skip(c)) {
			t.Errorf("%s names no fault that breaks it", c.ID)
		}
		for _, f := range c.Faults {
			if !cat.Has(f) {
				t.Errorf("%s names %q, which is not in the %s catalogue", c.ID, f, cat.Suite)
			}
			used[f] = true
		}
	}
	for _, f := range cat.All() {
		if !used[f.Name] {
			t.Errorf("fault %s is used by no check", f.Name)
		}
	}
}
