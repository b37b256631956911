// Package faults holds the fault catalogues: every deliberate misbehaviour a
// reference target in fakes/ can inject, by name, with the layer that injects
// it and a one-line description. Checks name the faults that must make them
// fail from here, so a suite never imports a fake; each fake implements the
// names of its catalogue. One table per suite; activation (whether a fault
// can be armed on a running target) is derived from the layer.
package faults

import (
	"fmt"
	"sort"
	"strings"
)

// Fault names one deliberate misbehaviour of a reference target.
type Fault string

// Layer is where a fault acts. Faults of a Construction layer shape how the
// target is built (listeners, TLS, timers) and are set when it starts; every
// other fault can be armed on a running target, after the fixtures exist, so
// a proof exercises the check rather than its setup.
type Layer string

// Construction marks faults that are fixed when the target starts.
const Construction Layer = "construction"

// Info is one catalogue row.
type Info struct {
	Name  Fault
	Layer Layer
	Doc   string
}

// Armable reports whether the fault can be switched on in a running target.
func (i Info) Armable() bool { return i.Layer != Construction }

// Catalogue is one suite's fault table.
type Catalogue struct {
	Suite string
	rows  map[Fault]Info
	order []Fault
}

// NewCatalogue builds a catalogue; duplicate or undocumented rows panic
// (they are programming errors caught by every test run).
func NewCatalogue(suite string, rows ...Info) *Catalogue {
	c := &Catalogue{Suite: suite, rows: map[Fault]Info{}}
	for _, r := range rows {
		if r.Name == "" || r.Doc == "" || r.Layer == "" {
			panic(fmt.Sprintf("faults: %s row %q needs a name, layer and doc", suite, r.Name))
		}
		if _, dup := c.rows[r.Name]; dup {
			panic(fmt.Sprintf("faults: %s lists %q twice", suite, r.Name))
		}
		c.rows[r.Name] = r
		c.order = append(c.order, r.Name)
	}
	registerCatalogue(c)
	return c
}

// All lists the catalogue's rows sorted by name.
func (c *Catalogue) All() []Info {
	out := make([]Info, 0, len(c.rows))
	for _, f := range c.order {
		out = append(out, c.rows[f])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup finds a row.
func (c *Catalogue) Lookup(f Fault) (Info, bool) {
	i, ok := c.rows[f]
	return i, ok
}

// Has reports whether f is in the catalogue.
func (c *Catalogue) Has(f Fault) bool { _, ok := c.rows[f]; return ok }

// Parse reads a comma-separated list of fault names of this catalogue.
func (c *Catalogue) Parse(s string) ([]Fault, error) {
	var out []Fault
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !c.Has(Fault(name)) {
			return nil, fmt.Errorf("unknown %s fault %q (see --list-faults)", c.Suite, name)
		}
		out = append(out, Fault(name))
	}
	return out, nil
}

// Set is a set of active faults.
type Set map[Fault]bool

// NewSet builds a set.
func NewSet(fs ...Fault) Set {
	s := Set{}
	for _, f := range fs {
		s[f] = true
	}
	return s
}

// Has reports membership (nil-safe).
func (s Set) Has(f Fault) bool { return s[f] }

var catalogues = map[string]*Catalogue{}

func registerCatalogue(c *Catalogue) {
	if _, dup := catalogues[c.Suite]; dup {
		panic("faults: two catalogues for " + c.Suite)
	}
	for _, other := range catalogues {
		for f := range c.rows {
			if other.Has(f) {
				panic(fmt.Sprintf("faults: %q is in both %s and %s", f, other.Suite, c.Suite))
			}
		}
	}
	catalogues[c.Suite] = c
}

// For returns the catalogue of a suite.
func For(suite string) (*Catalogue, bool) {
	c, ok := catalogues[suite]
	return c, ok
}
