// Package streaming is Gauntlet's CRI streaming conformance suite: every check
// of the catalogue (docs/checks/streaming.md) as a conformance.Check with an
// ID, the optional features it needs, the reference-runtime faults that must
// make it fail (named from package faults), and a body. The suite receives a
// conformance.Target (a CRI endpoint plus critarget.Settings) and never
// starts or inspects a runtime itself.
package streaming

import (
	"github.com/gauntlet-conformance/gauntlet/conformance"
)

// Check is one streaming check.
type Check = conformance.Check[*Env]

// Feature is an optional capability a target declares (--features).
type Feature = conformance.Feature

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

// Features lists every feature with its meaning.
var Features = []conformance.FeatureInfo{
	{Name: FeatureV5, Doc: "v5.channel.k8s.io is served (kubelet >= 1.36, conmon-rs)"},
	{Name: FeatureAuthorizeStream, Doc: "KEP-6051 AuthorizeStream hook with the Gauntlet deny contract"},
	{Name: FeatureNoAuthorize, Doc: "the target runs without an AuthorizeStream hook (enables G7)"},
	{Name: FeatureProcessStats, Doc: "the runtime's resource use is observable"},
	{Name: FeatureIdleTimeout, Doc: "the stream idle timeout is stated with --stream-idle-timeout"},
	{Name: FeatureHostNetwork, Doc: "host-network sandboxes can be created"},
	{Name: FeatureTLS, Doc: "stream URLs are https"},
}

// Shorthands the check bodies use.
var (
	Failf  = conformance.Failf
	Skip   = conformance.Skip
	IsSkip = conformance.IsSkip
	note   = conformance.Note
)

// register adds checks to the suite (from var initialisers).
func register(cs ...Check) bool { return Suite.Register(cs...) }

// Checks returns every check in catalogue order.
func Checks() []Check { return Suite.Checks() }

// Lookup finds a check by ID.
func Lookup(id string) (Check, bool) { return Suite.Lookup(id) }
