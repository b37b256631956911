package authz

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
	authzsuite "github.com/gauntlet-conformance/gauntlet/suites/authz"
	"github.com/gauntlet-conformance/gauntlet/suites/authz/probe"
)

// Probes is a set of running probe webhooks with the files a chain needs to
// call them: a kubeconfig per chain probe and the reference chain's
// AuthorizationConfiguration, all under Dir.
type Probes struct {
	Dir        string
	PKI        *PKI
	Reference  *Webhook   // the webhook under test of AZ01–AZ05
	Chain      []*Webhook // probe.Chain, in order
	ConfigFile string
	Timing     probe.Timing
}

// StartProbes starts the reference webhook and the chain probes and writes
// their kubeconfigs, PEM files and the reference configuration into dir.
func StartProbes(dir string, t probe.Timing) (*Probes, error) {
	p, err := NewPKI()
	if err != nil {
		return nil, err
	}
	ps := &Probes{Dir: dir, PKI: p, Timing: t, ConfigFile: filepath.Join(dir, "authorization-config.yaml")}
	ps.Reference = StartWebhook("reference", true, p, t)
	kubeconfigs := map[string]string{}
	for _, name := range probe.Chain {
		w := StartWebhook(name, false, p, t)
		ps.Chain = append(ps.Chain, w)
		kubeconfigs[name] = filepath.Join(dir, name+".kubeconfig")
	}
	files := map[string][]byte{"ca.crt": p.CAPEM, "client.crt": p.ClientCertPEM, "client.key": p.ClientKeyPEM}
	for _, w := range ps.Chain {
		files[w.Name+".kubeconfig"] = p.Kubeconfig(w.Name, w.URL())
	}
	cfg, err := probe.MarshalConfig(probe.ReferenceConfig(kubeconfigs, t))
	if err != nil {
		ps.Close()
		return nil, err
	}
	files[filepath.Base(ps.ConfigFile)] = cfg
	for name, b := range files {
		mode := os.FileMode(0o644)
		if name == "client.key" || filepath.Ext(name) == ".kubeconfig" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, mode); err != nil {
			ps.Close()
			return nil, err
		}
	}
	return ps, nil
}

// Endpoints lists the chain probes for a state file or settings.
func (ps *Probes) Endpoints() []probe.Endpoint {
	var out []probe.Endpoint
	for _, w := range ps.Chain {
		out = append(out, w.Endpoint())
	}
	return out
}

// State is what the daemon publishes.
func (ps *Probes) State() probe.State {
	return probe.State{
		Reference: ps.Reference.Endpoint(), Chain: ps.Endpoints(),
		CAFile: filepath.Join(ps.Dir, "ca.crt"), ClientCert: filepath.Join(ps.Dir, "client.crt"), ClientKey: filepath.Join(ps.Dir, "client.key"),
		ConfigFile: ps.ConfigFile, Timing: ps.Timing, PID: os.Getpid(),
	}
}

// Close stops every probe.
func (ps *Probes) Close() {
	if ps.Reference != nil {
		ps.Reference.Close()
	}
	for _, w := range ps.Chain {
		w.Close()
	}
}

// EmbeddedName names the embedded targets in reports.
const (
	EmbeddedWebhookName = "embedded reference webhook"
	EmbeddedChainName   = "embedded chain (k8s.io/apiserver v0.37.2 union + webhook authorizers)"
)

// Start starts the embedded authz target: the reference webhook (AZ01–AZ05)
// and the embedded chain over the chain probes (AZ06–AZ12), with faults
// armed from the start (every authz fault can also be armed later).
func Start(_ context.Context, fs ...faults.Fault) (conformance.Target, error) {
	for _, f := range fs {
		if !faults.Authz.Has(f) {
			return conformance.Target{}, fmt.Errorf("unknown authz fault %q", f)
		}
	}
	dir, err := os.MkdirTemp("", "gauntlet-authz-")
	if err != nil {
		return conformance.Target{}, err
	}
	ps, err := StartProbes(dir, probe.DefaultTiming)
	if err != nil {
		os.RemoveAll(dir)
		return conformance.Target{}, err
	}
	var webhookFaults, chainFaults []faults.Fault
	split := func(fs []faults.Fault) {
		webhookFaults, chainFaults = nil, nil
		for _, f := range fs {
			if info, _ := faults.Authz.Lookup(f); info.Layer == "webhook" {
				webhookFaults = append(webhookFaults, f)
			} else {
				chainFaults = append(chainFaults, f)
			}
		}
	}
	split(fs)
	ps.Reference.Arm(webhookFaults...)
	chain, err := StartChain(ps.ConfigFile, ps.PKI, chainFaults...)
	if err != nil {
		ps.Close()
		os.RemoveAll(dir)
		return conformance.Target{}, err
	}
	closed := false
	return conformance.Target{
		Name:     "embedded authz reference (webhook + chain)",
		Endpoint: chain.URL(),
		Embedded: true,
		Settings: authzsuite.Settings{
			Webhook: &authzsuite.WebhookSettings{Name: EmbeddedWebhookName, URL: ps.Reference.URL(), TLS: ps.PKI.ClientTLS(), Timeout: ps.Timing.Timeout},
			Chain: &authzsuite.ChainSettings{
				Name:   EmbeddedChainName,
				REST:   &rest.Config{Host: chain.URL(), TLSClientConfig: rest.TLSClientConfig{CAData: ps.PKI.CAPEM}},
				Probes: ps.Endpoints(), ProbeTLS: ps.PKI.ClientTLS(), Timing: ps.Timing,
				Config: chain, ReloadWait: 5 * time.Second,
			},
		},
		Arm: func(fs ...faults.Fault) error {
			for _, f := range fs {
				if !faults.Authz.Has(f) {
					return fmt.Errorf("unknown authz fault %q", f)
				}
			}
			split(fs)
			ps.Reference.Arm(webhookFaults...)
			if len(chainFaults) > 0 {
				return chain.Arm(chainFaults...)
			}
			return nil
		},
		Close: func() error {
			if closed {
				return nil
			}
			closed = true
			chain.Close()
			ps.Close()
			return os.RemoveAll(dir)
		},
	}, nil
}

// Serve runs the probes for a real chain until ctx ends: it writes the
// kubeconfigs, the reference AuthorizationConfiguration and, last, the
// state file into dir (creating it), and removes the state file on exit.
func Serve(ctx context.Context, dir string, t probe.Timing) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	ps, err := StartProbes(abs, t)
	if err != nil {
		return err
	}
	defer ps.Close()
	if err := probe.WriteState(abs, ps.State()); err != nil {
		return err
	}
	<-ctx.Done()
	if err := os.Remove(filepath.Join(abs, probe.StateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// QuietKlog silences klog: the upstream webhook authorizer logs every failed
// webhook call, and the chain checks provoke them on purpose.
func QuietKlog() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	fs.Set("logtostderr", "false")
	fs.Set("alsologtostderr", "false")
	fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
}
