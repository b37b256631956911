// Package streaming is Gauntlet's CRI streaming conformance suite: every check
// of the catalogue (docs/checks/streaming.md) as a value with an ID, the
// optional features it needs, the reference-runtime faults that must make it
// fail, and a body. Ginkgo specs are generated from the table (suite.go); the
// proof tests run the same bodies against the reference runtime with faults.
package streaming

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gauntlet-conformance/gauntlet/fakes/cri"
)

// Feature is an optional capability a target declares (--capabilities).
type Feature string

// Optional features.
const (
	FeatureV5              Feature = "v5"                  // v5.channel.k8s.io served (kubelet >= 1.36, conmon-rs)
	FeatureAuthorizeStream Feature = "authorize-stream"    // KEP-6051 hook with the deny contract of docs/authorize-stream.md
	FeatureNoAuthorize     Feature = "no-authorize-stream" // target is known to run without the hook (G7)
	FeatureProcessStats    Feature = "process-stats"       // the runtime's resource use is observable (--runtime-pid or embedded)
	FeatureIdleTimeout     Feature = "idle-timeout"        // --stream-idle-timeout states the configured idle timeout
	FeatureHostNetwork     Feature = "host-network"        // host-network sandboxes can be created
	FeatureTLS             Feature = "tls-streaming"       // stream URLs are https
)

// KnownFeatures lists every feature name with its meaning (for --help).
var KnownFeatures = map[Feature]string{
	FeatureV5:              "v5.channel.k8s.io is served (kubelet >= 1.36, conmon-rs)",
	FeatureAuthorizeStream: "KEP-6051 AuthorizeStream hook with the Gauntlet deny contract",
	FeatureNoAuthorize:     "the target runs without an AuthorizeStream hook (enables G7)",
	FeatureProcessStats:    "the runtime's resource use is observable",
	FeatureIdleTimeout:     "the stream idle timeout is stated with --stream-idle-timeout",
	FeatureHostNetwork:     "host-network sandboxes can be created",
	FeatureTLS:             "stream URLs are https",
}

// Check is one conformance check.
type Check struct {
	ID       string // catalogue ID, e.g. "C7"
	Name     string
	Labels   []string    // transport/protocol labels (spdy, websocket, v4, portforward, ...)
	Features []Feature   // required optional features: skipped with the feature name when absent
	Faults   []cri.Fault // reference-runtime faults that must make this check fail
	Slow     bool
	Timeout  time.Duration // default 30 s
	Run      func(ctx context.Context, e *Env) error
}

// Category is the catalogue letter.
func (c Check) Category() string { return c.ID[:1] }

// Title is the spec name: "[C7] stdin half-close ...".
func (c Check) Title() string { return fmt.Sprintf("[%s] %s", c.ID, c.Name) }

func (c Check) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 30 * time.Second
}

// AllLabels adds the category, Slow and feature labels.
func (c Check) AllLabels() []string {
	l := append([]string{"cat:" + c.Category()}, c.Labels...)
	for _, f := range c.Features {
		l = append(l, "feature:"+string(f))
	}
	if c.Slow {
		l = append(l, "Slow")
	}
	return l
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

// Failf builds a check failure.
func Failf(format string, args ...any) error { return fmt.Errorf(format, args...) }

var registry = map[string]Check{}

// register adds checks; IDs must be unique.
func register(cs ...Check) bool {
	for _, c := range cs {
		if _, dup := registry[c.ID]; dup {
			panic("duplicate check ID " + c.ID)
		}
		if c.Run == nil || c.Name == "" {
			panic("check " + c.ID + " has no body or name")
		}
		registry[c.ID] = c
	}
	return true
}

// Checks returns every check in catalogue order (A1, A2, ..., A10, B1, ...).
func Checks() []Check {
	out := make([]Check, 0, len(registry))
	for _, c := range registry {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return lessID(out[i].ID, out[j].ID) })
	return out
}

func lessID(a, b string) bool {
	if a[0] != b[0] {
		return a[0] < b[0]
	}
	var na, nb int
	fmt.Sscan(a[1:], &na)
	fmt.Sscan(b[1:], &nb)
	return na < nb
}

// Lookup finds a check by ID.
func Lookup(id string) (Check, bool) {
	c, ok := registry[strings.ToUpper(id)]
	return c, ok
}
