// Package reference hands Gauntlet's embedded reference targets (fakes/) to
// the suites as conformance.Targets, the same way a real target is handed
// over: the CLI and the tests start them here, and the suites never import a
// fake.
package reference

import (
	"context"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/fakes/cri"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/critarget"
	"github.com/gauntlet-conformance/gauntlet/suites/streaming"
)

// StreamingOptions are the reference runtime's options for the embedded
// target: the library's semantics with short timers, so the checks that
// wait for a token to expire (A6), a stream pairing to time out (C12, F6),
// an idle connection to close (C13) or a slow header to be refused (G5)
// wait seconds, not minutes.
func StreamingOptions() cri.Options {
	o := cri.DefaultOptions()
	o.StreamCreationTimeout = 2 * time.Second
	o.StreamIdleTimeout = 6 * time.Second // above C12's bound (creation + 2 s slack) so it cannot mask C12
	o.TokenTTL = 3 * time.Second
	o.HeaderTimeout = 3 * time.Second
	return o
}

// Streaming starts the reference runtime with opts and describes it as a
// target: its features follow from the options, its timers are stated in
// the settings, and its resource use is observable.
func Streaming(opts cri.Options) (conformance.Target, *cri.Runtime, error) {
	rt, err := cri.Start("", opts)
	if err != nil {
		return conformance.Target{}, nil, err
	}
	feats := []conformance.Feature{streaming.FeatureProcessStats, streaming.FeatureIdleTimeout, streaming.FeatureHostNetwork}
	if opts.ServeV5 && !opts.TLS {
		feats = append(feats, streaming.FeatureV5)
	}
	if opts.TLS {
		feats = append(feats, streaming.FeatureTLS)
	}
	if opts.Authorize != nil {
		feats = append(feats, streaming.FeatureAuthorizeStream)
	} else {
		feats = append(feats, streaming.FeatureNoAuthorize)
	}
	set := critarget.Settings{
		StreamCreationTimeout: rt.Options().StreamCreationTimeout,
		StreamIdleTimeout:     rt.Options().StreamIdleTimeout,
		TokenTTL:              time.Minute, // the library's fixed TTL
		HeaderTimeout:         rt.Options().HeaderTimeout,
		ExecBurst:             10, // in-process: no daemon to overwhelm
	}
	if opts.OwnTokens() {
		set.TokenTTL = rt.Options().TokenTTL
	}
	if opts.TLS {
		set.StreamCA = rt.StreamCA()
	}
	return conformance.Target{
		Name:     "embedded reference runtime",
		Endpoint: rt.Endpoint(),
		Embedded: true,
		Features: feats,
		Process:  runtimeWatcher{rt},
		Settings: set,
		Arm:      rt.Arm,
		Close:    rt.Close,
	}, rt, nil
}

// StreamingStart is a conformance.StartFunc for proofs: a fresh reference
// runtime with opts plus the construction faults asked for.
func StreamingStart(opts cri.Options) conformance.StartFunc {
	return func(ctx context.Context, fs ...faults.Fault) (conformance.Target, error) {
		o := opts
		o.Faults = append(append([]faults.Fault(nil), o.Faults...), fs...)
		t, _, err := Streaming(o)
		return t, err
	}
}

// runtimeWatcher samples the in-process reference runtime.
type runtimeWatcher struct{ rt *cri.Runtime }

func (w runtimeWatcher) Sample(ctx context.Context) (conformance.Usage, error) {
	// Goroutines of finished sessions take a moment to unwind.
	select {
	case <-time.After(100 * time.Millisecond):
	case <-ctx.Done():
		return conformance.Usage{}, ctx.Err()
	}
	s := w.rt.Stats()
	return conformance.Usage{Goroutines: s.Goroutines, LeakedBytes: s.LeakedBytes}, nil
}
