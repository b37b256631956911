package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	fakeauthz "github.com/gauntlet-conformance/gauntlet/fakes/authz"
	"github.com/gauntlet-conformance/gauntlet/suites/authz"
	"github.com/gauntlet-conformance/gauntlet/suites/authz/probe"
)

func init() {
	registerSuite(suiteEntry{
		Suite: authz.Suite,
		Doc:   "authorization webhooks (AZ01-05, --authorizer-webhook) and the structured authorizer chain (AZ06-12, --authorizer-chain-kubeconfig); embedded reference webhook and chain unless named",
		Flags: authzFlags,
	})
	extraCommands["authz-webhooks"] = authzWebhooks
}

func authzFlags(fs *flag.FlagSet) targetFunc {
	webhook := fs.String("authorizer-webhook", "", "URL of the authorization webhook under test (AZ01-AZ05), e.g. https://127.0.0.1:8443/authorize")
	cert := fs.String("authorizer-client-cert", "", "client certificate (PEM) to present to --authorizer-webhook")
	key := fs.String("authorizer-client-key", "", "key (PEM) of --authorizer-client-cert")
	ca := fs.String("authorizer-ca", "", "CA bundle (PEM) that signed --authorizer-webhook's serving certificate")
	timeout := fs.Duration("authorizer-webhook-timeout", 10*time.Second, "the timeout the webhook is configured with in the API server (AZ05 judges latency against it)")
	kubeconfig := fs.String("authorizer-chain-kubeconfig", "", "admin kubeconfig of a kube-apiserver started with the --authorization-config that `gauntlet authz-webhooks` wrote (AZ06-AZ12)")
	dir := fs.String("authorizer-webhooks-dir", "", "the --dir of the running `gauntlet authz-webhooks` the chain calls")
	binary := fs.String("authorizer-apiserver-binary", "", "kube-apiserver binary whose start-up validation AZ12 runs (e.g. $(hack/k8s/build.sh kube-apiserver)); empty: those cases skip")
	return func(ctx context.Context, declared []conformance.Feature) (conformance.Target, error) {
		t := conformance.Target{Features: declared}
		realChain := *kubeconfig != "" || *dir != ""
		if *webhook == "" && (*cert != "" || *key != "" || *ca != "") {
			return t, usageError{"--authorizer-client-cert, --authorizer-client-key and --authorizer-ca describe a webhook: pass --authorizer-webhook too"}
		}
		if realChain && (*kubeconfig == "" || *dir == "") {
			return t, usageError{"--authorizer-chain-kubeconfig and --authorizer-webhooks-dir go together: the API server's admin kubeconfig and the directory of the `gauntlet authz-webhooks` it calls"}
		}
		if !realChain && *binary != "" {
			return t, usageError{"--authorizer-apiserver-binary is for a real chain: pass --authorizer-chain-kubeconfig and --authorizer-webhooks-dir too"}
		}
		if *webhook == "" && !realChain {
			fakeauthz.QuietKlog()
			emb, err := fakeauthz.Start(ctx)
			if err != nil {
				return t, fmt.Errorf("start the embedded authz reference: %w", err)
			}
			emb.Features = declared
			return emb, nil
		}
		s := authz.Settings{}
		var names []string
		if *webhook != "" {
			w, err := authz.WebhookTarget(*webhook, *cert, *key, *ca, *timeout)
			if err != nil {
				return t, usageError{err.Error()}
			}
			s.Webhook = w
			names = append(names, w.Name)
		}
		if realChain {
			c, _, err := authz.RealChain(ctx, *kubeconfig, *dir, *binary)
			if err != nil {
				return t, usageError{err.Error()}
			}
			s.Chain = c
			names = append(names, c.Name)
		}
		t.Name, t.Settings = names[0], s
		if len(names) > 1 {
			t.Name = names[0] + " + " + names[1]
		}
		t.Endpoint = *webhook
		if realChain {
			t.Endpoint = s.Chain.REST.Host
		}
		return t, nil
	}
}

// authzWebhooks serves Gauntlet's probe webhooks for a real kube-apiserver
// until interrupted: `gauntlet authz-webhooks --dir DIR` writes the
// kubeconfigs, DIR/authorization-config.yaml (pass it to kube-apiserver
// --authorization-config) and, once serving, DIR/state.json; it prints
// KEY=value lines for a script to eval.
func authzWebhooks(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gauntlet authz-webhooks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory for the webhooks' kubeconfigs, the AuthorizationConfiguration and state.json (created)")
	t := probe.DefaultTiming
	fs.DurationVar(&t.Timeout, "timeout", t.Timeout, "every webhook's timeout in the written configuration")
	fs.DurationVar(&t.AuthorizedTTL, "authorized-ttl", t.AuthorizedTTL, "every webhook's authorizedTTL")
	fs.DurationVar(&t.UnauthorizedTTL, "unauthorized-ttl", t.UnauthorizedTTL, "every webhook's unauthorizedTTL (keep it well below --authorized-ttl: AZ11 tells them apart)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "gauntlet authz-webhooks: pass --dir DIR (and no other arguments)")
		return 2
	}
	if t.Timeout <= 0 || t.Timeout > 30*time.Second {
		fmt.Fprintf(stderr, "gauntlet authz-webhooks: --timeout %s: want (0, 30s], as kube-apiserver requires\n", t.Timeout)
		return 2
	}
	t.SlowBy = t.Timeout + t.Timeout/2
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "gauntlet authz-webhooks: --dir %s: %v\n", *dir, err)
		return 2
	}
	ready := make(chan error, 1)
	go func() { ready <- fakeauthz.Serve(ctx, abs, t) }()
	// Serve writes state.json once the webhooks listen.
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case err := <-ready:
			if err != nil {
				fmt.Fprintf(stderr, "gauntlet authz-webhooks: %v\n", err)
				return 1
			}
			return 0
		case <-time.After(20 * time.Millisecond):
		}
		if st, err := probe.ReadState(abs); err == nil && st.PID == os.Getpid() {
			fmt.Fprintf(stdout, "GAUNTLET_AUTHZ_WEBHOOKS_DIR=%s\nGAUNTLET_AUTHZ_CONFIG=%s\n", abs, st.ConfigFile)
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(stderr, "gauntlet authz-webhooks: the webhooks did not come up within 30s")
			return 1
		}
	}
	if err := <-ready; err != nil {
		fmt.Fprintf(stderr, "gauntlet authz-webhooks: %v\n", err)
		return 1
	}
	return 0
}
