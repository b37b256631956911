package streaming

import (
	"context"

	"github.com/gauntlet-conformance/gauntlet/conformance"
)

// Categories names the catalogue sections.
var Categories = map[string]string{
	"A": "URL, token, request cache",
	"B": "SPDY handshake",
	"C": "remotecommand over SPDY",
	"D": "legacy WebSocket",
	"E": "v5 close semantics",
	"F": "port forward",
	"G": "security and robustness",
}

// Suite is the streaming suite. Prepare creates the shared sandbox and
// container up front: parallel checks then share one fixture, and a proof's
// fault is armed only after it exists.
var Suite = &conformance.Suite[*Env]{
	Name:       "streaming",
	Categories: Categories,
	Features:   Features,
	Setup:      NewEnv,
	Prepare: func(ctx context.Context, e *Env) error {
		if _, err := e.Fixture(ctx); err != nil {
			return err
		}
		if e.Has(FeatureHostNetwork) {
			_, err := e.HostFixture(ctx)
			return err
		}
		return nil
	},
	Teardown: func(ctx context.Context, e *Env) error { return e.Close(ctx) },
}
