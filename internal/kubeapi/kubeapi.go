// Package kubeapi drives a real Kubernetes API server for tests (client-go):
// namespaces, service accounts and pods as token subjects, pod-bound tokens
// from the TokenRequest API (what a kubelet asks for on behalf of a
// credential provider plugin), and their verification by TokenReview.
// hack/k8s/apiserver up starts a server to use it with.
//
// Every call runs under a deadline: the caller's context, cut to
// Client.CallTimeout, because a test against a wedged server must fail, not
// hang.
package kubeapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// DefaultCallTimeout bounds each API call when the caller's context allows
// more.
const DefaultCallTimeout = 30 * time.Second

// PlaceholderImage is the image of the pods CreatePod makes: they are token
// subjects, never scheduled (hack/k8s runs no scheduler or kubelet), so the
// image is never pulled.
const PlaceholderImage = "registry.invalid/gauntlet/never-pulled:1"

// Client is a clientset plus the namespaces it created, for Cleanup.
type Client struct {
	cs kubernetes.Interface
	// CallTimeout bounds every API call (DefaultCallTimeout if zero).
	CallTimeout time.Duration

	mu         sync.Mutex
	namespaces []string
}

// Connect builds a client from a kubeconfig file and checks that the server
// answers (GET /version), so that a wrong path or a stopped server fails
// here rather than in the first test step.
func Connect(kubeconfig string) (*Client, error) {
	if kubeconfig == "" {
		return nil, errors.New("kubeapi: empty kubeconfig path")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.Timeout = DefaultCallTimeout
	cfg.UserAgent = "gauntlet-kubeapi"
	// client-go's default client-side limit (5 QPS, burst 10) throttles a
	// suite run creating and deleting dozens of namespaces, service
	// accounts and pods to seconds per check; the server's own priority
	// and fairness still applies.
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: client for %s: %w", cfg.Host, err)
	}
	c := New(cs)
	ctx, cancel := c.call(context.Background())
	defer cancel()
	if err := cs.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Error(); err != nil {
		return nil, fmt.Errorf("kubeapi: API server %s (kubeconfig %s) does not answer: %w", cfg.Host, kubeconfig, err)
	}
	return c, nil
}

// New wraps an existing clientset (a fake one in unit tests).
func New(cs kubernetes.Interface) *Client { return &Client{cs: cs} }

// Clientset is the underlying clientset, for calls this package lacks.
func (c *Client) Clientset() kubernetes.Interface { return c.cs }

func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	d := c.CallTimeout
	if d <= 0 {
		d = DefaultCallTimeout
	}
	return context.WithTimeout(ctx, d)
}

// CreateNamespace creates a namespace named prefix plus a random suffix and
// remembers it for Cleanup. The suffix is made here, not by the server's
// generateName, so a name clash is retried and fake clientsets work too.
func (c *Client) CreateNamespace(ctx context.Context, prefix string) (string, error) {
	if prefix == "" {
		prefix = "gauntlet-"
	}
	var lastErr error
	for range 5 {
		name := prefix + randomSuffix()
		err := func() error {
			ctx, cancel := c.call(ctx)
			defer cancel()
			_, err := c.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/created-by": "gauntlet"}},
			}, metav1.CreateOptions{})
			return err
		}()
		if apierrors.IsAlreadyExists(err) {
			lastErr = err
			continue
		}
		if err != nil {
			return "", fmt.Errorf("kubeapi: create namespace %s: %w", name, err)
		}
		c.mu.Lock()
		c.namespaces = append(c.namespaces, name)
		c.mu.Unlock()
		return name, nil
	}
	return "", fmt.Errorf("kubeapi: create namespace %s*: %w", prefix, lastErr)
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // never returns an error since Go 1.24
	return hex.EncodeToString(b)
}

// CreateServiceAccount creates a service account with the given annotations
// (credential providers read theirs, e.g. a role to assume, from them).
func (c *Client) CreateServiceAccount(ctx context.Context, namespace, name string, annotations map[string]string) (*corev1.ServiceAccount, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	sa, err := c.cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Annotations: annotations},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kubeapi: create service account %s/%s: %w", namespace, name, err)
	}
	return sa, nil
}

// DeleteServiceAccount deletes a service account and waits until it is gone.
func (c *Client) DeleteServiceAccount(ctx context.Context, namespace, name string) error {
	err := func() error {
		ctx, cancel := c.call(ctx)
		defer cancel()
		return c.cs.CoreV1().ServiceAccounts(namespace).Delete(ctx, name, metav1.DeleteOptions{})
	}()
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubeapi: delete service account %s/%s: %w", namespace, name, err)
	}
	return c.waitGone(ctx, "service account "+namespace+"/"+name, func(ctx context.Context) error {
		_, err := c.cs.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
		return err
	})
}

// RecreateServiceAccount deletes a service account and creates it again
// with the same name and annotations: same name, new UID, the case where
// tokens and caches keyed by name alone go wrong. It returns the new object
// and fails if the UID did not change.
func (c *Client) RecreateServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	old, err := func() (*corev1.ServiceAccount, error) {
		ctx, cancel := c.call(ctx)
		defer cancel()
		return c.cs.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
	}()
	if err != nil {
		return nil, fmt.Errorf("kubeapi: get service account %s/%s: %w", namespace, name, err)
	}
	if err := c.DeleteServiceAccount(ctx, namespace, name); err != nil {
		return nil, err
	}
	sa, err := c.CreateServiceAccount(ctx, namespace, name, old.Annotations)
	if err != nil {
		return nil, err
	}
	if sa.UID == old.UID {
		return nil, fmt.Errorf("kubeapi: service account %s/%s recreated with its old UID %s", namespace, name, old.UID)
	}
	return sa, nil
}

// CreatePod creates a pod object that runs as serviceAccount. Nothing
// schedules or runs it: it exists to bind tokens to.
func (c *Client) CreatePod(ctx context.Context, namespace, name, serviceAccount string) (*corev1.Pod, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	pod, err := c.cs.CoreV1().Pods(namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.PodSpec{
			ServiceAccountName: serviceAccount,
			Containers:         []corev1.Container{{Name: "main", Image: PlaceholderImage}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kubeapi: create pod %s/%s: %w", namespace, name, err)
	}
	return pod, nil
}

// SetServiceAccountAnnotations replaces a service account's annotations
// (same object, same UID: what a credential provider selects on changed).
func (c *Client) SetServiceAccountAnnotations(ctx context.Context, namespace, name string, annotations map[string]string) (*corev1.ServiceAccount, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	sa, err := c.cs.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("kubeapi: get service account %s/%s: %w", namespace, name, err)
	}
	sa.Annotations = annotations
	sa, err = c.cs.CoreV1().ServiceAccounts(namespace).Update(ctx, sa, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kubeapi: update service account %s/%s: %w", namespace, name, err)
	}
	return sa, nil
}

// DeletePod deletes a pod at once (grace 0: no kubelet will confirm a
// graceful stop) and waits until it is gone.
func (c *Client) DeletePod(ctx context.Context, namespace, name string) error {
	zero := int64(0)
	err := func() error {
		ctx, cancel := c.call(ctx)
		defer cancel()
		return c.cs.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}()
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubeapi: delete pod %s/%s: %w", namespace, name, err)
	}
	return c.waitGone(ctx, "pod "+namespace+"/"+name, func(ctx context.Context) error {
		_, err := c.cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		return err
	})
}

// TokenRequest asks for a service-account token bound to a pod, the way the
// kubelet does for a credential provider in service-account mode.
type TokenRequest struct {
	Namespace      string
	ServiceAccount string
	// ServiceAccountUID, when set, is the UID the service account must
	// have (the kubelet sends it; the server answers Conflict on a
	// mismatch under TokenRequestServiceAccountUIDValidation).
	ServiceAccountUID types.UID
	// Pod the token is bound to (name and UID); required.
	PodName string
	PodUID  types.UID
	// Audiences of the token; the server's --api-audiences when empty.
	Audiences []string
	// ExpirationSeconds; the server's default (1 h) when zero, at least 600.
	ExpirationSeconds int64
}

// Token is an issued token.
type Token struct {
	Token      string
	Expiration time.Time
}

// PodToken requests a pod-bound token through the TokenRequest API
// (POST serviceaccounts/NAME/token).
func (c *Client) PodToken(ctx context.Context, r TokenRequest) (Token, error) {
	if r.Namespace == "" || r.ServiceAccount == "" || r.PodName == "" || r.PodUID == "" {
		return Token{}, fmt.Errorf("kubeapi: token request needs namespace, service account, pod name and pod UID, got %+v", r)
	}
	spec := authenticationv1.TokenRequestSpec{
		Audiences: r.Audiences,
		BoundObjectRef: &authenticationv1.BoundObjectReference{
			Kind: "Pod", APIVersion: "v1", Name: r.PodName, UID: r.PodUID,
		},
	}
	if r.ExpirationSeconds != 0 {
		spec.ExpirationSeconds = &r.ExpirationSeconds
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	tr, err := c.cs.CoreV1().ServiceAccounts(r.Namespace).CreateToken(ctx, r.ServiceAccount,
		&authenticationv1.TokenRequest{ObjectMeta: metav1.ObjectMeta{UID: r.ServiceAccountUID}, Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return Token{}, fmt.Errorf("kubeapi: token for %s/%s bound to pod %s: %w", r.Namespace, r.ServiceAccount, r.PodName, err)
	}
	if tr.Status.Token == "" {
		return Token{}, fmt.Errorf("kubeapi: token for %s/%s: the server returned an empty token", r.Namespace, r.ServiceAccount)
	}
	return Token{Token: tr.Status.Token, Expiration: tr.Status.ExpirationTimestamp.Time}, nil
}

// Review is the API server's verdict on a token (TokenReview status).
type Review struct {
	Authenticated bool
	Username      string
	UID           string
	Groups        []string
	// Audiences the token is valid for, among those asked about.
	Audiences []string
	Extra     map[string][]string
	// Error is the server's reason for not authenticating, if any.
	Error string
}

// ReviewToken verifies a token with the API server's own authenticators
// (POST tokenreviews). An unauthenticated token is a Review with
// Authenticated false, not an error.
func (c *Client) ReviewToken(ctx context.Context, token string, audiences []string) (Review, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	tr, err := c.cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return Review{}, fmt.Errorf("kubeapi: token review: %w", err)
	}
	st := tr.Status
	r := Review{
		Authenticated: st.Authenticated,
		Username:      st.User.Username,
		UID:           st.User.UID,
		Groups:        st.User.Groups,
		Audiences:     st.Audiences,
		Error:         st.Error,
	}
	if len(st.User.Extra) > 0 {
		r.Extra = make(map[string][]string, len(st.User.Extra))
		for k, v := range st.User.Extra {
			r.Extra[k] = v
		}
	}
	return r, nil
}

// ServiceAccountUsername is the user a service account's token
// authenticates as.
func ServiceAccountUsername(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// DeleteNamespace deletes what this package creates in a namespace (pods,
// service accounts), then the namespace, and finalizes it. A control plane
// from hack/k8s runs no kube-controller-manager, whose namespace controller
// would otherwise empty and finalize it; without that the namespace stays
// Terminating forever.
func (c *Client) DeleteNamespace(ctx context.Context, name string) error {
	var errs []error
	step := func(what string, f func(ctx context.Context) error) {
		ctx, cancel := c.call(ctx)
		defer cancel()
		if err := f(ctx); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	// One by one rather than DeleteCollection: fake clientsets lack it.
	zero := int64(0)
	step("delete pods", func(ctx context.Context) error {
		pods, err := c.cs.CoreV1().Pods(name).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			// Grace 0: no kubelet will ever confirm a graceful stop.
			err := c.cs.CoreV1().Pods(name).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
			if err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
		return nil
	})
	step("delete service accounts", func(ctx context.Context) error {
		sas, err := c.cs.CoreV1().ServiceAccounts(name).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, sa := range sas.Items {
			err := c.cs.CoreV1().ServiceAccounts(name).Delete(ctx, sa.Name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
		return nil
	})
	step("delete", func(ctx context.Context) error {
		return c.cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	step("finalize", func(ctx context.Context) error {
		ns, err := c.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(ns.Spec.Finalizers) == 0 {
			return nil
		}
		ns.Spec.Finalizers = nil
		_, err = c.cs.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
		return err
	})
	if len(errs) == 0 {
		if err := c.waitGone(ctx, "namespace "+name, func(ctx context.Context) error {
			_, err := c.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			return err
		}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kubeapi: namespace %s: %w", name, err)
	}
	c.mu.Lock()
	for i, n := range c.namespaces {
		if n == name {
			c.namespaces = append(c.namespaces[:i], c.namespaces[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	return nil
}

// cleanupParallel bounds the namespaces Cleanup deletes at once: a suite
// run can leave dozens, and one by one they take a second each.
const cleanupParallel = 8

// Cleanup deletes every namespace CreateNamespace made (and not yet
// deleted), several at a time.
func (c *Client) Cleanup(ctx context.Context) error {
	c.mu.Lock()
	names := append([]string(nil), c.namespaces...)
	c.mu.Unlock()
	errs := make([]error, len(names))
	sem := make(chan struct{}, cleanupParallel)
	var wg sync.WaitGroup
	for i := len(names) - 1; i >= 0; i-- {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = c.DeleteNamespace(ctx, names[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Namespaces lists the namespaces created and not yet cleaned up.
func (c *Client) Namespaces() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.namespaces...)
}

// waitGone polls get until it reports NotFound, within one CallTimeout.
func (c *Client) waitGone(ctx context.Context, what string, get func(ctx context.Context) error) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	var last error
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		last = get(ctx)
		if apierrors.IsNotFound(last) {
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%s still exists: %w (last get: %v)", what, err, last)
	}
	return nil
}
