// Package meshtarget builds the meshauthz suite's embedded reference
// target: a reference mesh (fakes/mesh) configured from the declared
// features, wrapped as a conformance.Target. The CLI and the suite's tests
// share it; the suite itself never imports a fake.
package meshtarget

import (
	"context"
	"fmt"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/fakes/mesh"
	"github.com/gauntlet-conformance/gauntlet/faults"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/suites/meshauthz"
)

// Supported are the features the reference mesh implements (all of them).
func Supported() []conformance.Feature {
	out := make([]conformance.Feature, len(meshauthz.Features))
	for i, f := range meshauthz.Features {
		out[i] = f.Name
	}
	return out
}

// MeshOptions configures a reference mesh for declared features: it
// installs only the declared extensions (without AuthorizationPolicyDeny
// its API rejects DENY, as a core-only install) and, when protocol features
// (meshauthz.FeatureProtocol*) are named, serves only those protocols.
func MeshOptions(declared []conformance.Feature) mesh.Options {
	has := map[conformance.Feature]bool{}
	for _, f := range declared {
		has[f] = true
	}
	o := mesh.DefaultOptions()
	o.Deny, o.ClusterScope = has[meshauthz.FeatureDeny], has[meshauthz.FeatureClusterScope]
	for _, p := range mp.AllProtocols {
		if has[meshauthz.ProtocolFeature(p)] {
			o.Protocols = append(o.Protocols, p)
		}
	}
	return o
}

// Start starts a reference mesh with the given faults active and returns
// it as a target. declared nil means every supported feature; otherwise the
// mesh is configured by MeshOptions, and the target's features are
// completed with the protocols it serves (meshauthz.TargetFeatures).
// settings supplies the non-driver settings (hook, timeouts).
func Start(declared []conformance.Feature, settings meshauthz.Settings, fs ...faults.Fault) (conformance.Target, *mesh.Mesh, error) {
	if declared == nil {
		declared = Supported()
	}
	o := MeshOptions(declared)
	o.Faults = fs
	m, err := mesh.Start(o)
	if err != nil {
		return conformance.Target{}, nil, fmt.Errorf("start the reference mesh: %w", err)
	}
	features, err := meshauthz.TargetFeatures(declared, m)
	if err != nil {
		m.Close()
		return conformance.Target{}, nil, err
	}
	settings.Driver = m
	return conformance.Target{
		Name:     m.Name(),
		Endpoint: "in-process",
		Embedded: true,
		Features: features,
		Settings: settings,
		Arm:      m.Arm,
		Close:    m.Close,
	}, m, nil
}

// StartFunc is Start for conformance.Prove, with every feature declared.
func StartFunc(settings meshauthz.Settings) conformance.StartFunc {
	return StartFuncWith(nil, settings)
}

// StartFuncWith is Start for conformance.Prove with these features
// declared (nil: every feature).
func StartFuncWith(declared []conformance.Feature, settings meshauthz.Settings) conformance.StartFunc {
	return func(ctx context.Context, fs ...faults.Fault) (conformance.Target, error) {
		t, _, err := Start(declared, settings, fs...)
		return t, err
	}
}
