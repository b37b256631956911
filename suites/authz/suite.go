// Package authz is Gauntlet's authorizer suite (docs/checks/authz.md, the AZ
// section of the mesh/authorizer catalogue): AZ01–AZ05 speak
// SubjectAccessReview to one authorization webhook; AZ06–AZ12 drive a
// structured authorization chain (KEP-3221) — the embedded one assembled
// from k8s.io/apiserver, or a real kube-apiserver started with
// --authorization-config — through SubjectAccessReviews, and observe which
// of Gauntlet's probe webhooks (package probe) were called.
package authz

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/suites/authz/probe"
)

// Settings is the authz Target.Settings. Either part may be nil: its checks
// then skip, naming the flag that provides it.
type Settings struct {
	Webhook *WebhookSettings
	Chain   *ChainSettings
}

// WebhookSettings name the webhook under test (AZ01–AZ05).
type WebhookSettings struct {
	Name    string      // for reports
	URL     string      // where it accepts SubjectAccessReviews
	TLS     *tls.Config // CA and client certificate
	Timeout time.Duration
}

// ChainSettings name the chain under test (AZ06–AZ12).
type ChainSettings struct {
	Name string
	// REST reaches the chain's SubjectAccessReview API as a user the chain
	// lets create reviews (kube-apiserver: the admin kubeconfig).
	REST *rest.Config
	// Probes are Gauntlet's probe webhooks the chain calls, in chain
	// order (probe.Chain), and the TLS to read their recordings.
	Probes   []probe.Endpoint
	ProbeTLS *tls.Config
	Timing   probe.Timing
	// Config changes the chain's configuration (AZ12).
	Config Configurator
	// ReloadWait bounds how long a configuration change may take to be
	// picked up (kube-apiserver: fsnotify, else a poll every minute).
	ReloadWait time.Duration
}

// Configurator reaches a chain's configuration (AZ12).
type Configurator interface {
	// Base is the configuration the chain was started with.
	Base() []byte
	// Startup reports whether the server starts with data. A nil
	// Configurator error with accepted=false is a refusal; detail says why.
	// ErrNoStartup means the target cannot be restarted by the suite.
	Startup(ctx context.Context, data []byte) (accepted bool, detail string, err error)
	// Write replaces the live configuration file.
	Write(ctx context.Context, data []byte) error
	// Reloads counts the reloads applied and rejected so far.
	Reloads(ctx context.Context) (ok, failed int, err error)
}

// ErrNoStartup is Startup's answer when start-up validation cannot be
// exercised (no server binary was given).
var ErrNoStartup = errors.New("start-up validation needs the server binary (--authorizer-apiserver-binary)")

// Env is what the checks receive.
type Env struct {
	Target  conformance.Target
	Webhook *WebhookSettings
	Chain   *ChainSettings

	web    *http.Client
	sar    authorizationclient.SubjectAccessReviewInterface
	probe  *http.Client
	byName map[string]probe.Endpoint
}

// Suite is the authz suite; checks register into it.
var Suite = &conformance.Suite[*Env]{
	Name: "authz",
	Categories: map[string]string{
		"AZ": "authorization webhooks and the structured authorization chain (KEP-3221)",
	},
	Setup: func(ctx context.Context, t conformance.Target) (*Env, error) {
		s, ok := t.Settings.(Settings)
		if !ok {
			return nil, fmt.Errorf("authz: target settings are %T, want authz.Settings", t.Settings)
		}
		e := &Env{Target: t, Webhook: s.Webhook, Chain: s.Chain}
		if w := s.Webhook; w != nil {
			// Each request carries its own deadline; this bounds a stall.
			e.web = &http.Client{Timeout: w.Timeout + 10*time.Second, Transport: &http.Transport{TLSClientConfig: w.TLS, ForceAttemptHTTP2: true}}
		}
		if c := s.Chain; c != nil {
			rc := rest.CopyConfig(c.REST)
			rc.Timeout = 30 * time.Second
			// JSON, so any chain front end that speaks the API's JSON works
			// (client-go would send protobuf).
			rc.ContentType, rc.AcceptContentTypes = "application/json", "application/json"
			// No client-side throttling: AZ11 times reviews to the TTLs.
			rc.QPS = -1
			cl, err := authorizationclient.NewForConfig(rc)
			if err != nil {
				return nil, fmt.Errorf("chain client: %w", err)
			}
			e.sar = cl.SubjectAccessReviews()
			e.probe = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c.ProbeTLS}}
			e.byName = map[string]probe.Endpoint{}
			for _, p := range c.Probes {
				e.byName[p.Name] = p
			}
			for _, n := range probe.Chain {
				if _, ok := e.byName[n]; !ok {
					return nil, fmt.Errorf("chain settings lack probe webhook %s", n)
				}
			}
		}
		return e, nil
	},
	Teardown: func(ctx context.Context, e *Env) error {
		if e.web != nil {
			e.web.CloseIdleConnections()
		}
		if e.probe != nil {
			e.probe.CloseIdleConnections()
		}
		return nil
	},
	TargetOf: func(e *Env, c conformance.Info) string {
		if isWebhookCheck(c.ID) {
			if e.Webhook != nil {
				return e.Webhook.Name
			}
			return "no webhook target"
		}
		if e.Chain != nil {
			return e.Chain.Name
		}
		return "no chain target"
	},
}

func isWebhookCheck(id string) bool {
	switch id {
	case "AZ01", "AZ02", "AZ03", "AZ04", "AZ05":
		return true
	}
	return false
}

func (e *Env) needWebhook() error {
	if e.Webhook == nil {
		return conformance.Skip("", "no webhook target: name one with --authorizer-webhook URL")
	}
	return nil
}

func (e *Env) needChain() error {
	if e.Chain == nil {
		return conformance.Skip("", "no chain target: name a kube-apiserver with --authorizer-chain-kubeconfig and --authorizer-webhooks-dir")
	}
	return nil
}
