// Package conformance is the check model every Gauntlet suite is built on: a
// check is a value (ID, name, labels, required features, the faults that must
// break it, body); a suite is a list of checks plus how to set up an
// environment from a Target; Run schedules the checks (in parallel where they
// are independent), and produces one Report type that the expectations judge
// and the writers in package reports render. Modelled on Gateway API's
// conformance/: the suite decides run/skip from declared features.
//
// Errors have three kinds, and proofs rely on the difference: a *Failure
// (Failf) is the check's own assertion failing; a *SkipError (Skip) is a
// missing feature or precondition; any other error is a setup error (a
// fixture, the target or the network broke before the assertion could be
// judged).
package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/gauntlet-conformance/gauntlet/faults"
)

// Feature is an optional capability a target declares.
type Feature string

// FeatureInfo documents a feature.
type FeatureInfo struct {
	Name Feature
	Doc  string
}

// DefaultTimeout is a check's deadline when it names none.
const DefaultTimeout = 30 * time.Second

// Check is one conformance check of a suite whose environment is E.
type Check[E any] struct {
	ID       string // catalogue ID, e.g. "C7", "MA02"
	Name     string
	Labels   []string
	Features []Feature      // required optional features: skipped with the feature name when absent
	Faults   []faults.Fault // reference-target faults that must make this check fail
	Slow     bool           // long-running; label "Slow"
	// Serial checks run alone, after the parallel phase: they measure the
	// target's resource use, fill a shared limit, or need a quiet target.
	Serial  bool
	Timeout time.Duration // default DefaultTimeout
	// Cases names the sub-cases the body reports with Case, so that an
	// expectations entry can name one ("A10/empty-container-id").
	Cases []string
	Run   func(ctx context.Context, env E) error
}

// Info is the check without its body.
func (c Check[E]) Info() Info {
	return Info{ID: c.ID, Name: c.Name, Labels: c.Labels, Features: c.Features, Faults: c.Faults,
		Slow: c.Slow, Serial: c.Serial, Timeout: c.Timeout, Cases: c.Cases}
}

// Info describes a check (the type-erased part of Check).
type Info struct {
	ID       string
	Name     string
	Labels   []string
	Features []Feature
	Faults   []faults.Fault
	Slow     bool
	Serial   bool
	Timeout  time.Duration
	Cases    []string
}

// Category is the ID's letter prefix: "A" for A10, "MA" for MA02.
func (i Info) Category() string { return Category(i.ID) }

// Category is an ID's letter prefix.
func Category(id string) string {
	n := strings.IndexFunc(id, unicode.IsDigit)
	if n < 0 {
		return id
	}
	return id[:n]
}

// Title is the spec name: "[C7] stdin half-close ...".
func (i Info) Title() string { return fmt.Sprintf("[%s] %s", i.ID, i.Name) }

// Deadline is the check's timeout.
func (i Info) Deadline() time.Duration {
	if i.Timeout > 0 {
		return i.Timeout
	}
	return DefaultTimeout
}

// AllLabels adds the category, Slow, Serial and feature labels, for label filters.
func (i Info) AllLabels() []string {
	l := append([]string{"cat:" + i.Category()}, i.Labels...)
	for _, f := range i.Features {
		l = append(l, "feature:"+string(f))
	}
	if i.Slow {
		l = append(l, "Slow")
	}
	if i.Serial {
		l = append(l, "Serial")
	}
	return l
}

// Failure is a check's own assertion failing.
type Failure struct{ err error }

func (f *Failure) Error() string { return f.err.Error() }

// Unwrap exposes a %w cause.
func (f *Failure) Unwrap() error { return errors.Unwrap(f.err) }

// Failf builds a check failure: the target did something the check forbids.
// It formats like fmt.Errorf (%w wraps the observed error).
func Failf(format string, args ...any) error {
	return &Failure{err: fmt.Errorf(format, args...)}
}

// IsFailure reports whether err is (or wraps) a check failure.
func IsFailure(err error) bool {
	var f *Failure
	return errors.As(err, &f)
}

// SkipError skips a check; Feature names the missing optional feature.
type SkipError struct {
	Feature Feature
	Reason  string
}

func (s *SkipError) Error() string {
	if s.Feature != "" {
		return fmt.Sprintf("skipped: %s (feature %q)", s.Reason, s.Feature)
	}
	return "skipped: " + s.Reason
}

// Skip returns a SkipError.
func Skip(feature Feature, format string, args ...any) error {
	return &SkipError{Feature: feature, Reason: fmt.Sprintf(format, args...)}
}

// IsSkip reports whether err is a skip.
func IsSkip(err error) (*SkipError, bool) {
	var s *SkipError
	ok := errors.As(err, &s)
	return s, ok
}

// Setupf builds a setup error explicitly (any non-Failure, non-skip error is
// one; this reads better at call sites that want to say so).
func Setupf(format string, args ...any) error { return fmt.Errorf("setup: "+format, args...) }

// statusOf classifies a body's error.
func statusOf(err error) Status {
	switch {
	case err == nil:
		return Passed
	case IsFailure(err):
		return Failed
	}
	if _, ok := IsSkip(err); ok {
		return Skipped
	}
	return Errored
}
