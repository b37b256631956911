package conformance

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/gauntlet-conformance/gauntlet/faults"
)

// Target is what a run is pointed at: a real implementation (an endpoint the
// user named) or an embedded reference target started by the CLI or a test
// and handed over the same way. A suite reads it and never starts or
// inspects a fake.
type Target struct {
	Name     string // what reports call it: "containerd 2.2.9 at unix:///…", "embedded reference runtime"
	Endpoint string
	Embedded bool
	Features []Feature // declared
	// Process, when set, samples the target's resource use.
	Process ProcessWatcher
	// Settings carries suite-specific parameters (the suite's own type):
	// timeouts the target is configured with, files, credentials.
	Settings any
	// Arm switches faults on in a running embedded target (proof tests only;
	// nil for real targets). It fails for faults that are not armable.
	Arm func(fs ...faults.Fault) error
	// Close stops whatever was started for this target.
	Close func() error
}

// Has reports whether the target declares f.
func (t Target) Has(f Feature) bool {
	for _, g := range t.Features {
		if g == f {
			return true
		}
	}
	return false
}

// Usage is a sample of a target's resource use; zero fields were not observed.
type Usage struct {
	Goroutines  int
	LeakedBytes int
	FDs         int
	Threads     int
	RSSKiB      int64
}

// ProcessWatcher samples a target process's resource use.
type ProcessWatcher interface {
	Sample(ctx context.Context) (Usage, error)
}

// Suite is a set of checks over an environment E built from a Target.
type Suite[E any] struct {
	Name       string
	Categories map[string]string // category prefix -> description
	Features   []FeatureInfo     // every optional feature the suite knows
	// Setup builds the environment (dials the target; cheap). Prepare, if set,
	// builds the shared fixtures up front, so that proofs can arm a fault
	// after them and parallel checks do not race to create them.
	Setup    func(ctx context.Context, t Target) (E, error)
	Prepare  func(ctx context.Context, env E) error
	Teardown func(ctx context.Context, env E) error
	// TargetOf names the target a check runs against when a suite drives
	// several (credprovider: plugin vs consumer); nil: the run's target.
	TargetOf func(env E, c Info) string
	// Features an environment exercises beyond the checks' own declarations
	// are not reported: only features of checks that ran count.

	checks []Check[E]
	byID   map[string]int
}

// Register adds checks; IDs must be unique and bodies present. It returns
// true so a package can call it from a var initialiser.
func (s *Suite[E]) Register(cs ...Check[E]) bool {
	if s.byID == nil {
		s.byID = map[string]int{}
	}
	for _, c := range cs {
		if _, dup := s.byID[c.ID]; dup {
			panic(fmt.Sprintf("%s: duplicate check ID %s", s.Name, c.ID))
		}
		if c.Run == nil || c.Name == "" || c.ID == "" {
			panic(fmt.Sprintf("%s: check %q has no ID, name or body", s.Name, c.ID))
		}
		s.byID[c.ID] = len(s.checks)
		s.checks = append(s.checks, c)
	}
	return true
}

// Checks returns the checks in catalogue order (A1, A2, …, A10, B1, …).
func (s *Suite[E]) Checks() []Check[E] {
	out := append([]Check[E](nil), s.checks...)
	sort.SliceStable(out, func(i, j int) bool { return LessID(out[i].ID, out[j].ID) })
	return out
}

// Infos lists the checks without bodies, in catalogue order.
func (s *Suite[E]) Infos() []Info {
	cs := s.Checks()
	out := make([]Info, len(cs))
	for i, c := range cs {
		out[i] = c.Info()
	}
	return out
}

// Lookup finds a check by ID.
func (s *Suite[E]) Lookup(id string) (Check[E], bool) {
	i, ok := s.byID[id]
	if !ok {
		return Check[E]{}, false
	}
	return s.checks[i], true
}

// Feature documents a known feature ("" when unknown).
func (s *Suite[E]) Feature(f Feature) (FeatureInfo, bool) {
	for _, fi := range s.Features {
		if fi.Name == f {
			return fi, true
		}
	}
	return FeatureInfo{}, false
}

// LessID orders catalogue IDs: by prefix, then numerically.
func LessID(a, b string) bool {
	ca, cb := Category(a), Category(b)
	if ca != cb {
		return ca < cb
	}
	na, _ := strconv.Atoi(a[len(ca):])
	nb, _ := strconv.Atoi(b[len(cb):])
	if na != nb {
		return na < nb
	}
	return a < b
}

// Env helpers every suite's checks use.

// Require returns a skip naming f when the target does not declare it.
func Require(t Target, known []FeatureInfo, f Feature) error {
	if t.Has(f) {
		return nil
	}
	doc := string(f)
	for _, k := range known {
		if k.Name == f {
			doc = k.Doc
		}
	}
	return Skip(f, "%s not declared", doc)
}

// Runnable is a suite with its environment type erased: what the CLI and
// report code hold.
type Runnable interface {
	SuiteName() string
	Infos() []Info
	KnownFeatures() []FeatureInfo
	CategoryNames() map[string]string
	Execute(ctx context.Context, t Target, o RunOptions) (*Report, error)
}

// SuiteName implements Runnable.
func (s *Suite[E]) SuiteName() string { return s.Name }

// KnownFeatures implements Runnable.
func (s *Suite[E]) KnownFeatures() []FeatureInfo { return s.Features }

// CategoryNames implements Runnable.
func (s *Suite[E]) CategoryNames() map[string]string { return s.Categories }

// Execute implements Runnable.
func (s *Suite[E]) Execute(ctx context.Context, t Target, o RunOptions) (*Report, error) {
	return Run(ctx, s, t, o)
}

// ParseFeatures parses a comma-separated feature list against the known ones.
func ParseFeatures(s string, known []FeatureInfo) ([]Feature, error) {
	var out []Feature
	for _, f := range splitList(s) {
		ok := false
		for _, k := range known {
			ok = ok || string(k.Name) == f
		}
		if !ok {
			names := make([]string, len(known))
			for i, k := range known {
				names[i] = string(k.Name)
			}
			return nil, fmt.Errorf("unknown feature %q (known: %s)", f, joinStrings(names))
		}
		out = append(out, Feature(f))
	}
	return out, nil
}
