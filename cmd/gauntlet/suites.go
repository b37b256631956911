package main

import (
	"context"
	"flag"
	"sort"

	"github.com/gauntlet-conformance/gauntlet/conformance"
)

// suiteEntry is how a suite plugs into `gauntlet run SUITE`: every suite goes
// through the same code path (runSuite); a file per suite (suite_<name>.go)
// registers its entry from init.
type suiteEntry struct {
	Suite conformance.Runnable
	Doc   string // one line for the usage text
	// Flags registers the suite's own flags and returns the function that,
	// once flags are parsed, builds the target: the one the user named, or
	// the embedded reference target when they named none. Bad input returns
	// a usageError (exit 2) naming the flag and how to fix it.
	Flags func(fs *flag.FlagSet) targetFunc
	// Reference is the built-in expectations file for the embedded target
	// (a name under expectations/, without .yaml; "" for none).
	Reference string
	// Writers produce extra reports after a run (e.g. the certification
	// report); each returns the path it wrote.
	Writers []func(dir string, r *conformance.Report) (string, error)
}

// targetFunc builds a run's target after flag parsing.
type targetFunc func(ctx context.Context, declared []conformance.Feature) (conformance.Target, error)

var suites = map[string]suiteEntry{}

func registerSuite(e suiteEntry) {
	name := e.Suite.SuiteName()
	if _, dup := suites[name]; dup {
		panic("gauntlet: suite " + name + " registered twice")
	}
	suites[name] = e
}

func suiteNames() []string {
	var out []string
	for n := range suites {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
