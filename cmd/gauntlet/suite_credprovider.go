package main

import (
	"context"
	"flag"
	"fmt"
	"slices"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	refplugin "github.com/gauntlet-conformance/gauntlet/fakes/credprovider/plugin"
	"github.com/gauntlet-conformance/gauntlet/internal/satoken"
	"github.com/gauntlet-conformance/gauntlet/internal/satoken/kubesource"
	"github.com/gauntlet-conformance/gauntlet/suites/credprovider"
)

// Importing fakes/credprovider/plugin also makes this binary the reference
// plugin when it is exec'd through a link named
// gauntlet-reference-credential-provider (see that package).

func init() {
	registerSuite(suiteEntry{
		Suite: credprovider.Suite,
		Doc:   "kubelet image credential providers: plugin conformance (P) and consumer caching/partitioning (K, S); embedded reference plugin unless --plugin",
		Flags: credproviderFlags,
	})
}

func credproviderFlags(fs *flag.FlagSet) targetFunc {
	plugin := fs.String("plugin", "", "credential provider plugin binary for the P checks; empty: the embedded reference plugin")
	config := fs.String("plugin-config", "", "the kubelet CredentialProviderConfig configuring --plugin (its provider named after the binary)")
	contract := fs.String("plugin-contract", "", "YAML stating what the plugin promises: in-scope images, service account, lifetimes (see suites/credprovider PluginContract)")
	pluginName := fs.String("plugin-name", "", "what reports call --plugin (default: \"plugin PATH\"), e.g. \"ecr-credential-provider 1.37.1\"")
	fakeAWS := fs.Bool("plugin-fake-aws", false, "serve a loopback fake ECR + STS and point the provider's AWS SDK at it (for ecr-credential-provider)")
	fakeGCE := fs.Bool("plugin-fake-gce", false, "serve a loopback fake GCE metadata server as the provider's HTTP proxy (for the kubelet's e2e gcp-credential-provider)")
	kubeconfig := fs.String("kubeconfig", "", "a kube-apiserver's kubeconfig: service-account tokens come from its TokenRequest API instead of the in-process issuer (K/S checks: their pods and service accounts are created there, in generated namespaces)")
	consumer := credproviderConsumerFlags(fs) // --consumer, --consumer-exec-deadline (credprovider_consumer.go)
	return func(ctx context.Context, declared []conformance.Feature) (conformance.Target, error) {
		var closers []func() error
		closeAll := func() error {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
			return nil
		}
		var tokens satoken.Source
		var verify func(ctx context.Context, token, audience string) error
		if *kubeconfig != "" {
			src, err := kubesource.New(*kubeconfig)
			if err != nil {
				return conformance.Target{}, usageError{fmt.Sprintf("--kubeconfig %s: %v", *kubeconfig, err)}
			}
			closers = append(closers, func() error { return src.Close(context.Background()) })
			tokens, verify = src, src.Verify
		} else {
			iss, err := satoken.NewIssuer()
			if err != nil {
				return conformance.Target{}, err
			}
			tokens = iss
			verify = func(_ context.Context, token, audience string) error {
				c, err := iss.Verify(token)
				if err != nil {
					return err
				}
				if !slices.Contains(c.Audience, audience) {
					return fmt.Errorf("audience %v does not include %q", c.Audience, audience)
				}
				return nil
			}
		}
		ps := credprovider.PluginSettings{Path: *plugin, ConfigFile: *config, ContractFile: *contract, Tokens: tokens, Name: *pluginName}
		t := conformance.Target{Features: declared}
		if *plugin == "" {
			if *config != "" || *contract != "" || *fakeAWS || *fakeGCE || *pluginName != "" {
				closeAll()
				return t, usageError{"--plugin-config, --plugin-contract, --plugin-name, --plugin-fake-aws and --plugin-fake-gce describe a plugin: pass --plugin too"}
			}
			in, err := refplugin.Start()
			if err != nil {
				closeAll()
				return t, fmt.Errorf("start the reference plugin: %w", err)
			}
			closers = append(closers, in.Close)
			ps.Path, ps.ConfigFile, ps.ContractFile, ps.Name = in.Path, in.ConfigFile, in.ContractFile, "embedded reference plugin"
			t.Embedded, t.Arm = true, in.Arm
		}
		if *fakeAWS {
			aws := refplugin.StartAWS(verify)
			closers = append(closers, func() error { aws.Close(); return nil })
			ps.ConfigEnv = aws.Env()
		}
		if *fakeGCE {
			gce := refplugin.StartGCE()
			closers = append(closers, func() error { gce.Close(); return nil })
			ps.ConfigEnv = append(ps.ConfigEnv, gce.Env()...)
		}
		_, feats, err := credprovider.LoadPlugin(ps)
		if err != nil {
			closeAll()
			return t, usageError{err.Error()}
		}
		if ps.Name == "" {
			ps.Name = "plugin " + ps.Path
		}
		t.Name = ps.Name
		for _, f := range feats {
			if !slices.Contains(t.Features, f) {
				t.Features = append(t.Features, f)
			}
		}
		ct, err := consumer(ctx)
		if err != nil {
			closeAll()
			return t, err
		}
		for _, f := range ct.Features {
			if !slices.Contains(t.Features, f) {
				t.Features = append(t.Features, f)
			}
		}
		if *kubeconfig != "" {
			// The K/S checks' pods and service accounts are created in
			// the API server and the consumer's tokens are TokenRequests
			// bound to them (satoken.Binder).
			ct.Settings.Tokens = tokens
		}
		t.Arm = armBoth(t.Arm, ct.Arm)
		t.Settings = credprovider.Settings{Plugin: ps, Consumer: ct.Settings}
		t.Close = closeAll
		return t, nil
	}
}
