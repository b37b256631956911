package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/fakes/mesh/meshtarget"
	"github.com/gauntlet-conformance/gauntlet/reports"
	"github.com/gauntlet-conformance/gauntlet/suites/meshauthz"
)

func init() {
	registerSuite(suiteEntry{
		Suite: meshauthz.Suite,
		Doc:   "mesh east-west authorization (GEP-3779 MA01-23, extensions MX24-30) and reports/meshauthz-report.yaml; embedded reference mesh unless a driver is named",
		Flags: meshauthzFlags,
		Writers: []func(dir string, r *conformance.Report) (string, error){
			func(dir string, r *conformance.Report) (string, error) {
				meshImplMu.Lock()
				impl := meshImpl
				meshImplMu.Unlock()
				return reports.WriteCertification(dir, r, impl, meshauthz.Features)
			},
		},
	})
}

// meshImpl is the implementation the certification report names (set by
// the target function once flags are parsed; one run per process, the
// mutex only keeps in-process tests honest).
var (
	meshImplMu sync.Mutex
	meshImpl   reports.Implementation
)

// referenceImpl names the embedded reference mesh.
var referenceImpl = reports.Implementation{
	Organization: "gauntlet-conformance",
	Project:      "gauntlet reference mesh (fakes/mesh)",
	URL:          "https://github.com/gauntlet-conformance/gauntlet",
	Version:      "(embedded)",
	Contact:      []string{"https://github.com/gauntlet-conformance/gauntlet/issues"},
}

func meshauthzFlags(fs *flag.FlagSet) targetFunc {
	kubeconfig := fs.String("mesh-kubeconfig", "", "kubeconfig of a cluster running the mesh under test (Kubernetes driver); empty: the embedded reference mesh")
	kube := meshKubeFlagSet(fs) // --mesh-api, --mesh-echo-image, --mesh-trust-domain, --mesh-convergence, --mesh-ready-timeout, --mesh-namespace-label (meshauthz_kube.go)
	driver := fs.String("mesh-driver", "", "command (\"CMD ARGS\", split on spaces) of an out-of-process mesh driver speaking the meshexec protocol on its stdin/stdout (internal/meshpolicy/meshexec), e.g. \"gauntlet mesh-driver --protocols GRPC\"; its hello declares the features unless --features is given")
	driverLog := fs.String("mesh-driver-log", "", "file receiving the --mesh-driver's stderr (default: only its tail, quoted in errors)")
	hook := fs.String("baseline-hook", "", "shell command run after the fixtures are deployed and before the checks, for default-deny installs (gets $GAUNTLET_MESH_NAMESPACES, $GAUNTLET_MESH_TRUST_DOMAIN) (MA22)")
	hookTimeout := fs.Duration("baseline-hook-timeout", 2*time.Minute, "bound on --baseline-hook")
	prefix := fs.String("mesh-namespace-prefix", "", "prefix of every fixture namespace (e.g. gauntlet-)")
	reqTimeout := fs.Duration("mesh-request-timeout", 3*time.Second, "bound on one request; a dropped request counts as a denial after it")
	org := fs.String("implementation-organization", "", "certification report: organization of the implementation (required for a real mesh)")
	project := fs.String("implementation-project", "", "certification report: project name (required for a real mesh)")
	implURL := fs.String("implementation-url", "", "certification report: absolute http(s) URL of the project (required for a real mesh)")
	version := fs.String("implementation-version", "", "certification report: version under test (required for a real mesh)")
	contact := fs.String("implementation-contact", "", "certification report: comma-separated contacts (GitHub handles, team URLs, e-mail) (required for a real mesh)")
	return func(ctx context.Context, declared []conformance.Feature) (ft conformance.Target, ferr error) {
		// Whatever the driver, the target's features say which protocols
		// it serves (meshauthz.TargetFeatures).
		defer func() {
			if ferr == nil {
				ft, ferr = withProtocolFeatures(ft)
			}
		}()
		t := conformance.Target{Features: declared}
		if *hookTimeout <= 0 || *reqTimeout <= 0 {
			return t, usageError{"--baseline-hook-timeout and --mesh-request-timeout must be positive durations, e.g. 2m and 3s"}
		}
		impl := reports.Implementation{Organization: *org, Project: *project, URL: *implURL, Version: *version}
		for _, c := range strings.Split(*contact, ",") {
			if c = strings.TrimSpace(c); c != "" {
				impl.Contact = append(impl.Contact, c)
			}
		}
		anyImpl := *org != "" || *project != "" || *implURL != "" || *version != "" || *contact != ""
		if anyImpl {
			if err := checkImpl(impl); err != nil {
				return t, err
			}
		}
		if *driver != "" {
			if *kubeconfig != "" {
				return t, usageError{"--mesh-driver and --mesh-kubeconfig name two meshes: give one"}
			}
			if err := checkImpl(impl); err != nil {
				return t, usageError{"--mesh-driver: " + err.Error()}
			}
			meshImplMu.Lock()
			meshImpl = impl
			meshImplMu.Unlock()
			settings := meshauthz.Settings{BaselineHook: *hook, HookTimeout: *hookTimeout, NamespacePrefix: *prefix, RequestTimeout: *reqTimeout}
			return startMeshDriver(ctx, *driver, *driverLog, declared, settings)
		}
		if *kubeconfig != "" {
			settings := meshauthz.Settings{BaselineHook: *hook, HookTimeout: *hookTimeout, NamespacePrefix: *prefix, RequestTimeout: *reqTimeout}
			return kube.target(ctx, *kubeconfig, declared, impl, settings) // meshauthz_kube.go
		}
		// The embedded reference mesh is described by Gauntlet itself: a
		// certification report must never name a vendor for it.
		if anyImpl {
			return t, usageError{"--implementation-* describe a real mesh; the embedded reference mesh is always reported as itself: drop them or name a mesh driver"}
		}
		impl = referenceImpl
		meshImplMu.Lock()
		meshImpl = impl
		meshImplMu.Unlock()
		settings := meshauthz.Settings{BaselineHook: *hook, HookTimeout: *hookTimeout, NamespacePrefix: *prefix, RequestTimeout: *reqTimeout}
		if len(declared) == 0 {
			declared = nil // the reference declares every feature it implements
		}
		target, _, err := meshtarget.Start(declared, settings)
		if err != nil {
			return t, err
		}
		return target, nil
	}
}

// checkImpl enforces what Gateway API's report requires of implementation.
func checkImpl(impl reports.Implementation) error {
	var missing []string
	for flagName, v := range map[string]string{"--implementation-organization": impl.Organization, "--implementation-project": impl.Project,
		"--implementation-url": impl.URL, "--implementation-version": impl.Version} {
		if v == "" {
			missing = append(missing, flagName)
		}
	}
	if len(impl.Contact) == 0 {
		missing = append(missing, "--implementation-contact")
	}
	if len(missing) > 0 {
		return usageError{fmt.Sprintf("the certification report needs every --implementation-* flag; missing %s", strings.Join(sortedStrings(missing), ", "))}
	}
	u, err := url.Parse(impl.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Sprintf("--implementation-url %q must be an absolute http(s) URL, e.g. https://github.com/org/project", impl.URL)}
	}
	return nil
}

func sortedStrings(l []string) []string {
	out := append([]string(nil), l...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
