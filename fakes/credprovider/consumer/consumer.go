// Package consumer is the reference credential provider consumer: the
// kubelet's image-credential semantics (pkg/credentialprovider/plugin and
// the keyring it feeds) re-implemented on the published config and API
// types (k8s.io/kubelet), with a fault per K/S check of the credprovider
// suite. It serves the suite's consumer line protocol (server.go) over an
// in-process pipe (Reference.Dial); one connection is one scenario.
//
// What it implements, as the kubelet does: config decoding (strict; a file
// or a directory merged in order) and validation; matchImages matching;
// the request (normalized repository; token and annotations only for
// providers with tokenAttributes); exec with args, env over the host's and a
// deadline; strict response decoding; cache keys (image | registry |
// global, plus the service-account partition and, in Token mode, the token
// hash) with expiry; singleflight; the echoed-token guard; the keyring's
// credential order.
package consumer

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"golang.org/x/sync/singleflight"
	configv1 "k8s.io/kubelet/config/v1"

	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/credwire"
)

// DefaultExecDeadline is the reference consumer's plugin deadline: short,
// so that the hanging-plugin check is quick (the kubelet's is 1 minute),
// but not 3 s: a probe exec took that long under `make test`'s load.
const DefaultExecDeadline = 5 * time.Second

// Options configure a reference consumer.
type Options struct {
	// ExecDeadline bounds each plugin exec (0: DefaultExecDeadline).
	ExecDeadline time.Duration
	// Faults active from the start (all consumer faults are also armable).
	Faults []faults.Fault
}

// Reference is the reference consumer; it is safe for concurrent use.
type Reference struct {
	deadline time.Duration
	mu       sync.Mutex
	faults   faults.Set
}

// New returns a reference consumer.
func New(o Options) (*Reference, error) {
	r := &Reference{deadline: o.ExecDeadline, faults: faults.Set{}}
	if r.deadline <= 0 {
		r.deadline = DefaultExecDeadline
	}
	return r, r.Arm(o.Faults...)
}

// Name is what reports call it.
func (r *Reference) Name() string { return "embedded reference consumer" }

// ExecDeadline is its plugin deadline.
func (r *Reference) ExecDeadline() time.Duration { return r.deadline }

// Arm switches consumer faults on; they apply to every later config load
// and pull, also of open scenarios.
func (r *Reference) Arm(fs ...faults.Fault) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range fs {
		if !faults.IsCredConsumerFault(f) {
			return fmt.Errorf("%q is not a reference consumer fault", f)
		}
		r.faults[f] = true
	}
	return nil
}

func (r *Reference) snapshot() faults.Set {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := faults.Set{}
	for f := range r.faults {
		s[f] = true
	}
	return s
}

// Dial opens one scenario: the suite's end of an in-process connection
// served by this consumer until either end closes it.
func (r *Reference) Dial(ctx context.Context) (io.ReadWriteCloser, error) {
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		Serve(server, r)
	}()
	return client, nil
}

// A pull and its parts are the line protocol's (internal/credwire).
type (
	// ServiceAccount is a pod's service account as the API server would return it.
	ServiceAccount = credwire.ServiceAccount
	// Pull is one image pull for a pod.
	Pull = credwire.Pull
	// Credential is one username/password pair offered for a pull.
	Credential = credwire.Credential
)

// TokenRequest is what the consumer asks the token source for.
type TokenRequest struct {
	Namespace         string
	ServiceAccount    string
	ServiceAccountUID string
	Audiences         []string
	BoundKind         string
	BoundName         string
	BoundUID          string
}

// scenario is one loaded config with its providers and caches.
type scenario struct {
	ref     *Reference
	ctx     context.Context // cancelled when the scenario's connection closes
	binDir  string
	environ []string
	token   func(ctx context.Context, tr TokenRequest) (string, error)

	saMu sync.Mutex
	sas  map[string]*ServiceAccount

	logMu sync.Mutex
	log   []string

	providers []*provider
}

type provider struct {
	cfg configv1.CredentialProvider

	mu    sync.Mutex
	cache map[string]cacheEntry
	group singleflight.Group
}

type cacheEntry struct {
	creds     map[string]Credential
	expiresAt time.Time
}

func (s *scenario) logf(format string, args ...any) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	s.log = append(s.log, fmt.Sprintf(format, args...))
}

func (s *scenario) takeLog() []string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	l := s.log
	s.log = nil
	return l
}

// load reads and validates the config, as RegisterCredentialProviderPlugins.
func (s *scenario) load(configPath string) error {
	fs := s.ref.snapshot()
	if err := statDir(s.binDir); err != nil {
		return err
	}
	cfg, err := readConfig(configPath, fs)
	if err != nil {
		return err
	}
	if errs := validateConfig(cfg, fs); len(errs) > 0 {
		return fmt.Errorf("failed to validate credential provider config: %v", errs.ToAggregate())
	}
	for _, p := range cfg.Providers {
		if err := lookPath(s.binDir, p.Name); err != nil {
			return err
		}
		s.providers = append(s.providers, &provider{cfg: p, cache: map[string]cacheEntry{}})
	}
	return nil
}

// normalize is the kubelet image manager's step before the keyring: the
// repository of the reference, Docker Hub short names expanded.
func normalize(image string) (string, error) {
	n, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("couldn't parse image name %q: %v", image, err)
	}
	return n.Name(), nil
}

// lookup returns the credentials to try for a pull, in order.
func (s *scenario) lookup(p Pull) []Credential {
	repo, err := normalize(p.Image)
	if err != nil {
		s.logf("Failed to parse image name err=%q image=%q", err, p.Image)
		return []Credential{}
	}
	fs := s.ref.snapshot()
	order := s.providers
	if fs.Has(faults.CCProviderOrderReversed) {
		order = make([]*provider, len(s.providers))
		for i, pr := range s.providers {
			order[len(order)-1-i] = pr
		}
	}
	var kr keyring
	for _, pr := range order {
		creds, err := s.provide(pr, repo, p, fs)
		if err != nil {
			s.logf("Failed to provide credentials for image err=%q provider=%q image=%q", err.Error(), pr.cfg.Name, repo)
			continue
		}
		kr.add(creds)
	}
	return kr.lookup(repo)
}

func hash(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(s)))
}

// key joins key parts unambiguously (length-prefixed).
func key(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "%d:%s|", len(p), p)
	}
	return b.String()
}

func annotationKey(a map[string]string) string {
	ks := make([]string, 0, len(a))
	for k := range a {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	parts := []string{fmt.Sprint(len(ks))}
	for _, k := range ks {
		parts = append(parts, k, a[k])
	}
	return key(parts...)
}

func registryOf(repo string, fs faults.Set) string {
	r, _, _ := strings.Cut(repo, "/")
	if fs.Has(faults.CCRegistryKeyNoPort) {
		if h, _, err := net.SplitHostPort(r); err == nil {
			r = h
		}
	}
	return r
}

const globalKey = "<global>"

// provide is one provider's answer for a pull: cached or from the plugin.
func (s *scenario) provide(pr *provider, repo string, p Pull, fs faults.Set) (map[string]Credential, error) {
	cfg := pr.cfg
	allowed := false
	for _, m := range cfg.MatchImages {
		allowed = allowed || urlsMatch(m, repo, fs)
	}
	if !allowed {
		return nil, nil
	}
	ta := cfg.TokenAttributes
	saName := ""
	if p.ServiceAccount != nil {
		saName = p.ServiceAccount.Name
	}
	var token, saKey string
	var annotations map[string]string
	if ta != nil {
		switch {
		case saName == "" && ta.RequireServiceAccount != nil && *ta.RequireServiceAccount && !fs.Has(faults.CCNoSAInvoked):
			return nil, nil
		case saName != "":
			sa := s.serviceAccount(p.Namespace, saName)
			if sa == nil {
				return nil, fmt.Errorf("failed to get service account: serviceaccounts %q not found", saName)
			}
			annotations = map[string]string{}
			for _, k := range ta.RequiredServiceAccountAnnotationKeys {
				v, ok := sa.Annotations[k]
				if !ok && !fs.Has(faults.CCRequiredAnnotationLax) {
					// Not an error: required annotations are how a
					// workload opts in; the plugin is simply not invoked.
					return nil, nil
				}
				if ok {
					annotations[k] = v
				}
			}
			for _, k := range ta.OptionalServiceAccountAnnotationKeys {
				if v, ok := sa.Annotations[k]; ok {
					annotations[k] = v
				}
			}
			if fs.Has(faults.CCAnnotationsAll) {
				for k, v := range sa.Annotations {
					annotations[k] = v
				}
			}
			aud := ta.ServiceAccountTokenAudience
			if fs.Has(faults.CCTokenAudienceWrong) {
				aud = "https://kubernetes.default.svc.cluster.local"
			}
			t, err := s.token(s.ctx, TokenRequest{Namespace: p.Namespace, ServiceAccount: saName, ServiceAccountUID: sa.UID,
				Audiences: []string{aud}, BoundKind: "Pod", BoundName: p.PodName, BoundUID: p.PodUID})
			if err != nil {
				return nil, fmt.Errorf("failed to get service account token: %w", err)
			}
			token = t
			tokenMode := ta.CacheType == configv1.TokenServiceAccountTokenCacheType
			ns, uid, annos := p.Namespace, sa.UID, annotationKey(annotations)
			if fs.Has(faults.CCCacheIgnoresNamespace) {
				ns = ""
			}
			if fs.Has(faults.CCCacheIgnoresSAUID) {
				uid = ""
			}
			if fs.Has(faults.CCCacheIgnoresAnnotations) {
				annos = ""
			}
			parts := []string{ns, saName, uid, annos}
			if (tokenMode && !fs.Has(faults.CCTokenCacheIgnoresToken)) || (!tokenMode && fs.Has(faults.CCSACacheByToken)) {
				parts = append(parts, "token", hash(token))
			}
			saKey = key(parts...)
			if fs.Has(faults.CCCacheIgnoresSA) {
				saKey = ""
			}
		}
	} else if saName != "" && fs.Has(faults.CCTokenToAllProviders) {
		sa := s.serviceAccount(p.Namespace, saName)
		uid := ""
		if sa != nil {
			uid = sa.UID
		}
		t, err := s.token(s.ctx, TokenRequest{Namespace: p.Namespace, ServiceAccount: saName, ServiceAccountUID: uid,
			Audiences: []string{cfg.Name}, BoundKind: "Pod", BoundName: p.PodName, BoundUID: p.PodUID})
		if err != nil {
			return nil, fmt.Errorf("failed to get service account token: %w", err)
		}
		token = t
	}

	imageKey := repo
	if fs.Has(faults.CCImageKeyWithTag) {
		imageKey = p.Image
	}
	if c, ok := pr.cached(fs, saKey, imageKey, registryOf(repo, fs), globalKey); ok {
		return c, nil
	}

	flightKey := repo
	if ta != nil && saName != "" && !fs.Has(faults.CCSingleflightIgnoresSA) {
		flightKey = key(repo, hash(token), annotationKey(annotations))
	}
	run := func() (any, error) {
		reqImage := repo
		if fs.Has(faults.CCRequestImageRaw) {
			reqImage = p.Image
		}
		return s.exec(pr, reqImage, token, annotations, fs)
	}
	var res any
	var err error
	if fs.Has(faults.CCNoSingleflight) {
		res, err = run()
	} else {
		res, err, _ = pr.group.Do(flightKey, run)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get credential from external registry credential provider: %w", err)
	}
	resp := res.(*response)
	if token != "" && ta != nil && ta.CacheType != configv1.TokenServiceAccountTokenCacheType && !fs.Has(faults.CCEchoGuardMissing) {
		for _, a := range resp.Auth {
			if a.Password == token {
				return nil, errors.New("credential provider plugin returned the service account token as the password which is not allowed when service account cache type is not set to 'Token'")
			}
		}
	}
	var base string
	switch resp.CacheKeyType {
	case "Image":
		base = imageKey
	case "Registry":
		base = registryOf(repo, fs)
	case "Global":
		base = globalKey
		if fs.Has(faults.CCGlobalKeyAsImage) {
			base = imageKey
		}
	default:
		if !fs.Has(faults.CCCacheKeyTypeLax) {
			return nil, fmt.Errorf("credential provider plugin did not return a valid cacheKeyType: %s", resp.CacheKeyType)
		}
		base = imageKey
	}
	creds := make(map[string]Credential, len(resp.Auth))
	for k, a := range resp.Auth {
		creds[k] = Credential{Username: a.Username, Password: a.Password}
	}
	var ttl time.Duration
	switch {
	case resp.CacheDuration != nil && resp.CacheDuration.Duration == 0 && !fs.Has(faults.CCCacheZeroDuration):
		return creds, nil
	case resp.CacheDuration == nil || resp.CacheDuration.Duration == 0:
		if cfg.DefaultCacheDuration == nil || cfg.DefaultCacheDuration.Duration == 0 || fs.Has(faults.CCDefaultDurationIgnored) {
			return creds, nil
		}
		ttl = cfg.DefaultCacheDuration.Duration
	default:
		ttl = resp.CacheDuration.Duration
	}
	exp := time.Now().Add(ttl)
	if fs.Has(faults.CCCacheNoExpiry) {
		exp = time.Now().Add(100 * 365 * 24 * time.Hour)
	}
	pr.mu.Lock()
	pr.cache[key(base, saKey)] = cacheEntry{creds: creds, expiresAt: exp}
	pr.mu.Unlock()
	return creds, nil
}

// cached looks the bases up in order (image, registry, global).
func (pr *provider) cached(fs faults.Set, saKey string, bases ...string) (map[string]Credential, bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	now := time.Now()
	for _, b := range bases {
		k := key(b, saKey)
		e, ok := pr.cache[k]
		if !ok {
			continue
		}
		if now.After(e.expiresAt) {
			delete(pr.cache, k)
			continue
		}
		return e.creds, true
	}
	return nil, false
}

func (s *scenario) serviceAccount(ns, name string) *ServiceAccount {
	s.saMu.Lock()
	defer s.saMu.Unlock()
	return s.sas[ns+"/"+name]
}
