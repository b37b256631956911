package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/internal/meshecho"
	"github.com/gauntlet-conformance/gauntlet/internal/meshkube"
	"github.com/gauntlet-conformance/gauntlet/internal/meshtranslate"
	"github.com/gauntlet-conformance/gauntlet/reports"
	"github.com/gauntlet-conformance/gauntlet/suites/meshauthz"
)

// The Kubernetes mesh driver (internal/meshkube) behind
// `gauntlet run meshauthz --mesh-kubeconfig PATH`, and `gauntlet mesh-echo`,
// what its pods run (the echo image is this binary: hack/images --mesh-echo).

func init() {
	extraCommands["mesh-echo"] = func(args []string, stdout, stderr io.Writer) int {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return meshecho.Main(ctx, args, os.Stdin, stdout, stderr, nil)
	}
}

// defaultKubePrefix prefixes the fixture namespaces in a real cluster when
// --mesh-namespace-prefix is empty (bare "cli", "ma01" could be someone's).
const defaultKubePrefix = "gauntlet-"

type meshKubeFlags struct {
	api, image, td     *string
	convergence, ready *time.Duration
	nsLabels           listFlag
}

// meshKubeFlagSet registers the Kubernetes driver's flags.
func meshKubeFlagSet(fs *flag.FlagSet) *meshKubeFlags {
	k := &meshKubeFlags{
		api:   fs.String("mesh-api", "", "policy API the Kubernetes driver writes: gep3779 (gauntlet's GEP-3779 CRD), istio (security.istio.io/v1) or linkerd (policy.linkerd.io); default: the first the cluster serves, in that order"),
		image: fs.String("mesh-echo-image", meshkube.DefaultEchoImage, "image of the echo workloads and client pods (the gauntlet binary as /gauntlet): build it with 'go run ./hack/images --out DIR --mesh-echo' and load DIR/mesh-echo.oci.tar into the cluster (kind load image-archive)"),
		td:    fs.String("mesh-trust-domain", meshtranslate.DefaultTrustDomain, "SPIFFE trust domain of the mesh's workload identities"),
		convergence: fs.Duration("mesh-convergence", meshkube.DefaultConvergenceBound,
			"bound on a policy change taking effect (3 consistent observations)"),
		ready: fs.Duration("mesh-ready-timeout", meshkube.DefaultReadyBound, "bound on each fixture pod becoming ready (3 consistent observations); a fresh cluster pulls the mesh's sidecar image first"),
	}
	fs.Var(&k.nsLabels, "mesh-namespace-label", "KEY=VALUE label enrolling fixture namespaces in the mesh (repeatable; replaces the default istio-injection=enabled, e.g. istio.io/dataplane-mode=ambient)")
	return k
}

// target builds the Kubernetes mesh target. Bad flags, an unreadable
// kubeconfig or an API server that does not answer are usage errors (exit
// 2, one line) within seconds (meshkube.ConnectTimeout).
func (k *meshKubeFlags) target(ctx context.Context, kubeconfig string, declared []conformance.Feature, impl reports.Implementation, settings meshauthz.Settings) (conformance.Target, error) {
	t := conformance.Target{Features: declared}
	if err := checkImpl(impl); err != nil {
		return t, usageError{"--mesh-kubeconfig: a real mesh's certification report names it: " + err.Error()}
	}
	o := meshkube.Options{Kubeconfig: kubeconfig, TrustDomain: *k.td, ConvergenceBound: *k.convergence, ReadyBound: *k.ready, EchoImage: *k.image}
	if *k.convergence <= 0 || *k.ready <= 0 {
		return t, usageError{"--mesh-convergence and --mesh-ready-timeout must be positive durations, e.g. 30s and 2m"}
	}
	if strings.TrimSpace(*k.td) == "" || strings.ContainsAny(*k.td, "/: ") {
		return t, usageError{fmt.Sprintf("--mesh-trust-domain %q must be a trust domain name, e.g. cluster.local", *k.td)}
	}
	if *k.image == "" {
		return t, usageError{"--mesh-echo-image must name an image, e.g. " + meshkube.DefaultEchoImage}
	}
	if *k.api != "" {
		f, err := meshtranslate.ParseFlavor(*k.api)
		if err != nil {
			return t, usageError{"--mesh-api: " + err.Error()}
		}
		o.API = f
	}
	for _, kv := range k.nsLabels {
		key, val, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return t, usageError{fmt.Sprintf("--mesh-namespace-label %q: want KEY=VALUE, e.g. istio.io/dataplane-mode=ambient", kv)}
		}
		if o.NamespaceLabels == nil {
			o.NamespaceLabels = map[string]string{}
		}
		o.NamespaceLabels[key] = val
	}
	if settings.NamespacePrefix == "" {
		settings.NamespacePrefix = defaultKubePrefix
	}
	o.NamespacePrefix = settings.NamespacePrefix
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return t, usageError{fmt.Sprintf("--mesh-kubeconfig %s: %s", kubeconfig, strings.Join(strings.Fields(err.Error()), " "))}
	}
	d, err := meshkube.New(ctx, cfg, o)
	if err != nil {
		return t, usageError{fmt.Sprintf("--mesh-kubeconfig %s: %s", kubeconfig, strings.Join(strings.Fields(err.Error()), " "))}
	}
	meshImplMu.Lock()
	meshImpl = impl
	meshImplMu.Unlock()
	settings.Driver = d
	// Cleanup is the suite's Teardown (also after an interrupt).
	return conformance.Target{Name: d.Name(), Endpoint: cfg.Host, Features: declared, Settings: settings}, nil
}
