// Package kubesource is a satoken.Source backed by a real kube-apiserver:
// pod-bound tokens from the TokenRequest API (internal/kubeapi), the way the
// kubelet gets them for a credential provider in service-account mode.
//
// Two ways to name who a token is for. Token alone (the P checks: a plugin
// is handed a token for a made-up pod) creates a namespace, service account
// and pod for the claims on first use. Bind (satoken.Binder; the K/S
// checks: a consumer pulls as pods the suite made up) creates the subject's
// objects and hands back the UIDs the server assigned; the consumer then
// asks Token for exactly those, and the server itself checks the binding.
// Namespaces get generated names, since the suite must not touch a real
// namespace; Close deletes everything created.
package kubesource

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

	// Bind's objects: the caller's namespace -> the real one; real
	// "ns/name" -> the service account or pod as the caller named it.
	ns   map[string]string
	real map[string]bool // namespaces Bind created
	sas  map[string]boundSA
	pods map[string]boundPod
}

type subject struct{ ns, pod, podUID string }

type boundSA struct {
	callerUID, uid string
	annotations    map[string]string
}

type boundPod struct{ callerUID, uid, sa string }

var _ satoken.Binder = (*Source)(nil)

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
	return &Source{c: c, kubeconfig: name, subj: map[string]subject{}, ns: map[string]string{},
		real: map[string]bool{}, sas: map[string]boundSA{}, pods: map[string]boundPod{}}
}

// Name implements satoken.Source.
func (s *Source) Name() string { return "TokenRequest API of " + s.kubeconfig }

// Token implements satoken.Source. Claims in a namespace Bind returned are
// asked of the server as they are (service account UID, pod name and UID
// included: the server refuses a mismatch). Any other Claims.Namespace names
// a namespace the source creates (with a random suffix) with a service
// account and pod for the claims; the token's own namespace claim says
// which.
func (s *Source) Token(ctx context.Context, c satoken.Claims) (string, error) {
	if c.Namespace == "" || c.ServiceAccount == "" {
		return "", fmt.Errorf("kubesource: namespace and service account are required")
	}
	s.mu.Lock()
	bound := s.real[c.Namespace]
	s.mu.Unlock()
	if bound {
		t, err := s.c.PodToken(ctx, kubeapi.TokenRequest{Namespace: c.Namespace, ServiceAccount: c.ServiceAccount,
			ServiceAccountUID: types.UID(c.ServiceAccountUID), PodName: c.PodName, PodUID: types.UID(c.PodUID),
			Audiences: c.Audience, ExpirationSeconds: expiration(c.TTL)})
		if err != nil {
			return "", err
		}
		return t.Token, nil
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
	t, err := s.c.PodToken(ctx, kubeapi.TokenRequest{Namespace: sub.ns, ServiceAccount: c.ServiceAccount,
		PodName: sub.pod, PodUID: types.UID(sub.podUID), Audiences: c.Audience, ExpirationSeconds: expiration(c.TTL)})
	if err != nil {
		return "", err
	}
	return t.Token, nil
}

// expiration is a TokenRequest's expirationSeconds for ttl (0: the
// server's default).
func expiration(ttl time.Duration) int64 {
	exp := int64(ttl.Seconds())
	if exp != 0 && exp < 600 {
		exp = 600 // the API server's minimum
	}
	return exp
}

// Bind implements satoken.Binder. Calls are serialized; objects that
// already match cost no API call.
func (s *Source) Bind(ctx context.Context, want satoken.Subject) (satoken.Subject, error) {
	if want.Namespace == "" {
		return satoken.Subject{}, fmt.Errorf("kubesource: bind: a namespace is required")
	}
	if want.ServiceAccount != "" && want.PodName == "" {
		return satoken.Subject{}, fmt.Errorf("kubesource: bind %s/%s: a pod is required (tokens are pod-bound)", want.Namespace, want.ServiceAccount)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	got := want
	ns, ok := s.ns[want.Namespace]
	if !ok {
		var err error
		if ns, err = s.c.CreateNamespace(ctx, want.Namespace+"-"); err != nil {
			return satoken.Subject{}, err
		}
		s.ns[want.Namespace], s.real[ns] = ns, true
	}
	got.Namespace = ns
	if want.ServiceAccount == "" {
		return got, nil // a static pod: nothing in the API server binds it
	}
	saKey := ns + "/" + want.ServiceAccount
	sa, ok := s.sas[saKey]
	switch {
	case !ok || sa.callerUID != want.ServiceAccountUID:
		if ok { // the caller recreated it: so does the server (a new UID)
			if err := s.c.DeleteServiceAccount(ctx, ns, want.ServiceAccount); err != nil {
				return satoken.Subject{}, err
			}
		}
		obj, err := s.c.CreateServiceAccount(ctx, ns, want.ServiceAccount, want.Annotations)
		if apierrors.IsAlreadyExists(err) && !ok {
			// A cluster's service account controller made it (every
			// namespace gets "default"): take it over, with the
			// annotations asked for.
			obj, err = s.c.SetServiceAccountAnnotations(ctx, ns, want.ServiceAccount, want.Annotations)
		}
		if err != nil {
			return satoken.Subject{}, err
		}
		sa = boundSA{callerUID: want.ServiceAccountUID, uid: string(obj.UID), annotations: maps.Clone(want.Annotations)}
	case !maps.Equal(sa.annotations, want.Annotations):
		if _, err := s.c.SetServiceAccountAnnotations(ctx, ns, want.ServiceAccount, want.Annotations); err != nil {
			return satoken.Subject{}, err
		}
		sa.annotations = maps.Clone(want.Annotations)
	}
	s.sas[saKey] = sa
	got.ServiceAccountUID = sa.uid
	podKey := ns + "/" + want.PodName
	pod, ok := s.pods[podKey]
	if !ok || pod.callerUID != want.PodUID || pod.sa != want.ServiceAccount {
		if ok {
			if err := s.c.DeletePod(ctx, ns, want.PodName); err != nil {
				return satoken.Subject{}, err
			}
		}
		obj, err := s.c.CreatePod(ctx, ns, want.PodName, want.ServiceAccount)
		if err != nil {
			return satoken.Subject{}, err
		}
		pod = boundPod{callerUID: want.PodUID, uid: string(obj.UID), sa: want.ServiceAccount}
		s.pods[podKey] = pod
	}
	got.PodUID = pod.uid
	return got, nil
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
