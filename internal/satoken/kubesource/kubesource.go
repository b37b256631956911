// Package kubesource is a satoken.Source backed by a real kube-apiserver:
// pod-bound tokens from the TokenRequest API (internal/kubeapi), the way the
// kubelet gets them for a credential provider in service-account mode. The
// namespace, service account and pod a token is bound to are created on
// first use (the namespace under a generated name, since the suite must not
// touch a real namespace) and deleted by Close.
package kubesource

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/gauntlet-conformance/gauntlet/internal/kubeapi"
	"github.com/gauntlet-conformance/gauntlet/internal/satoken"
)

// Source issues real tokens.
type Source struct {
	c          *kubeapi.Client
	kubeconfig string

	mu   sync.Mutex
	subj map[string]subject // "ns/sa/pod" in the claims -> real objects
}

type subject struct{ ns, pod, podUID string }

var _ satoken.Source = (*Source)(nil)

// New connects to the API server of kubeconfig (and checks it answers).
func New(kubeconfig string) (*Source, error) {
	c, err := kubeapi.Connect(kubeconfig)
	if err != nil {
		return nil, err
	}
	return FromClient(c, kubeconfig), nil
}

// FromClient wraps an existing client (name says which server, for reports).
func FromClient(c *kubeapi.Client, name string) *Source {
	return &Source{c: c, kubeconfig: name, subj: map[string]subject{}}
}

// Name implements satoken.Source.
func (s *Source) Name() string { return "TokenRequest API of " + s.kubeconfig }

// Token implements satoken.Source. Claims.Namespace names a namespace the
// source creates (with a random suffix); the token's own namespace claim
// says which.
func (s *Source) Token(ctx context.Context, c satoken.Claims) (string, error) {
	if c.Namespace == "" || c.ServiceAccount == "" {
		return "", fmt.Errorf("kubesource: namespace and service account are required")
	}
	pod := c.PodName
	if pod == "" {
		pod = "gauntlet-token-subject"
	}
	key := c.Namespace + "/" + c.ServiceAccount + "/" + pod
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.subj[key]
	if !ok {
		ns, err := s.c.CreateNamespace(ctx, c.Namespace+"-")
		if err != nil {
			return "", err
		}
		if _, err := s.c.CreateServiceAccount(ctx, ns, c.ServiceAccount, nil); err != nil {
			return "", err
		}
		p, err := s.c.CreatePod(ctx, ns, pod, c.ServiceAccount)
		if err != nil {
			return "", err
		}
		sub = subject{ns: ns, pod: p.Name, podUID: string(p.UID)}
		s.subj[key] = sub
	}
	exp := int64(c.TTL.Seconds())
	if exp != 0 && exp < 600 {
		exp = 600 // the API server's minimum
	}
	t, err := s.c.PodToken(ctx, kubeapi.TokenRequest{Namespace: sub.ns, ServiceAccount: c.ServiceAccount,
		PodName: sub.pod, PodUID: types.UID(sub.podUID), Audiences: c.Audience, ExpirationSeconds: exp})
	if err != nil {
		return "", err
	}
	return t.Token, nil
}

// Verify checks a token with the API server (TokenReview) for audience.
func (s *Source) Verify(ctx context.Context, token, audience string) error {
	r, err := s.c.ReviewToken(ctx, token, []string{audience})
	if err != nil {
		return err
	}
	if !r.Authenticated {
		return fmt.Errorf("token review: not authenticated for audience %q: %s", audience, r.Error)
	}
	return nil
}

// Close deletes what the source created.
func (s *Source) Close(ctx context.Context) error { return s.c.Cleanup(ctx) }
