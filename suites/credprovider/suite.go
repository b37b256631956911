// Package credprovider is Gauntlet's kubelet image credential provider suite
// (docs/checks/credprovider.md): P checks run a plugin binary exactly as the
// kubelet execs it; K and S checks drive a consumer (the kubelet's plugin
// manager and cache, or a re-implementation) with a recording probe plugin.
package credprovider

import (
	"context"
	"errors"
	"fmt"

	"github.com/gauntlet-conformance/gauntlet/conformance"
)

// Settings is the credprovider Target.Settings: the plugin under test (P)
// and the consumer under test (K/S).
type Settings struct {
	Plugin   PluginSettings   // plugin.go
	Consumer ConsumerSettings // consumer.go
}

// Env is what the checks receive.
type Env struct {
	Target   conformance.Target
	Plugin   *PluginEnv   // plugin.go
	Consumer *ConsumerEnv // consumer.go
}

// Suite is the credprovider suite; checks register into it.
var Suite = &conformance.Suite[*Env]{
	Name: "credprovider",
	Categories: map[string]string{
		"P": "plugin conformance",
		"K": "consumer matching, caching, errors",
		"S": "service-account tokens, partitioning",
	},
	Features: append(append([]conformance.FeatureInfo(nil), pluginFeatures...), consumerFeatures...),
	Setup: func(ctx context.Context, t conformance.Target) (*Env, error) {
		s, ok := t.Settings.(Settings)
		if !ok {
			return nil, fmt.Errorf("credprovider: target settings are %T, want credprovider.Settings", t.Settings)
		}
		e := &Env{Target: t}
		if err := setupPlugin(ctx, s.Plugin, e); err != nil {
			return nil, err
		}
		if err := setupConsumer(ctx, s.Consumer, e); err != nil {
			return nil, errors.Join(err, teardownPlugin(ctx, e))
		}
		return e, nil
	},
	Teardown: func(ctx context.Context, e *Env) error {
		return errors.Join(teardownConsumer(ctx, e), teardownPlugin(ctx, e))
	},
	TargetOf: func(e *Env, c conformance.Info) string {
		if c.Category() == "P" {
			return e.pluginTargetName()
		}
		return e.consumerTargetName()
	},
}
