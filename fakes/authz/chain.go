package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	api "k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/apis/apiserver/load"
	"k8s.io/apiserver/pkg/apis/apiserver/validation"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	"k8s.io/apiserver/pkg/authorization/union"
	"k8s.io/apiserver/pkg/util/filesystem"
	webhookutil "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/plugin/pkg/authorizer/webhook"
	webhookmetrics "k8s.io/apiserver/plugin/pkg/authorizer/webhook/metrics"

	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/suites/authz/probe"
)

// The embedded chain knows the authorizer types it can build without a
// cluster; Webhook is the only repeatable one, as in kube-apiserver.
var (
	knownTypes      = sets.New(string(api.TypeWebhook), "AlwaysAllow", "AlwaysDeny")
	repeatableTypes = sets.New(string(api.TypeWebhook))
)

// SARPath is where the embedded chain's front end accepts reviews, as
// kube-apiserver does.
const SARPath = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

// Chain is the embedded reference chain: an authorizer assembled from an
// AuthorizationConfiguration file the way kube-apiserver's
// pkg/kubeapiserver/authorizer (config.go, reload.go) does, from the same
// k8s.io/apiserver pieces: load + validation, the system:masters
// privileged-group authorizer first, a webhook authorizer per Webhook entry
// (kubeconfig, timeout, failurePolicy, TTLs, match conditions, the default
// retry backoff), union, and a file watch that swaps in a valid changed
// configuration and keeps the last good one otherwise. What it does not
// have: Node, RBAC and ABAC (they need a cluster) and the kube-apiserver-only
// rule that non-webhook authorizers be named after their type.
type Chain struct {
	file     string
	compiler authorizationcel.Compiler
	srv      *httptest.Server
	stop     context.CancelFunc
	done     chan struct{}

	base []byte // the configuration it started with

	mu       sync.Mutex // guards faults, lastData, lastGood
	faults   faults.Set
	lastData []byte
	lastGood *api.AuthorizationConfiguration

	current          atomic.Pointer[authorizer.Authorizer]
	reloadOK, reload atomic.Int64 // successful / failed reloads
}

// StartChain loads and validates file (refusing to start on an invalid
// configuration, as kube-apiserver does), serves SubjectAccessReviews with
// the PKI's serving certificate and watches file for changes.
func StartChain(file string, p *PKI, fs ...faults.Fault) (*Chain, error) {
	c := &Chain{file: file, compiler: authorizationcel.NewDefaultCompiler(), faults: faults.NewSet(fs...), done: make(chan struct{})}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	cfg, err := c.loadAndValidate(data)
	if err != nil {
		return nil, fmt.Errorf("invalid authorization configuration %s: %w", file, err)
	}
	a, err := c.build(cfg)
	if err != nil {
		return nil, err
	}
	c.base, c.lastData, c.lastGood = data, data, cfg
	c.current.Store(&a)
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(c.serveSAR))
	c.srv.TLS = p.ServerTLS(false)
	c.srv.Config.ReadHeaderTimeout = 10 * time.Second
	c.srv.StartTLS()
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	go func() {
		defer close(c.done)
		// kube-apiserver polls every minute besides fsnotify; a second keeps
		// the embedded target quick when fsnotify misses a rename.
		filesystem.WatchUntil(ctx, time.Second, file, func() { c.checkFile() }, nil)
	}()
	return c, nil
}

// URL is the front end's base URL (a rest.Config Host).
func (c *Chain) URL() string { return c.srv.URL }

// Close stops the watch and the front end.
func (c *Chain) Close() {
	c.stop()
	<-c.done
	c.srv.CloseClientConnections()
	c.srv.Close()
}

// Arm switches chain faults on and rebuilds the chain from the last good
// configuration, so the fault acts on the very next review.
func (c *Chain) Arm(fs ...faults.Fault) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range fs {
		c.faults[f] = true
	}
	a, err := c.buildLocked(c.lastGood)
	if err != nil {
		return err
	}
	c.current.Store(&a)
	return nil
}

func (c *Chain) has(f faults.Fault) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.faults.Has(f)
}

// Base is the configuration the chain started with.
func (c *Chain) Base() []byte { return append([]byte(nil), c.base...) }

// Startup reports whether the chain would start with data: the same load
// and validation StartChain runs.
func (c *Chain) Startup(_ context.Context, data []byte) (accepted bool, detail string, err error) {
	if _, err := c.loadAndValidate(data); err != nil {
		return false, err.Error(), nil
	}
	return true, "", nil
}

// Write replaces the configuration file (by rename, as a careful operator
// or a ConfigMap volume does).
func (c *Chain) Write(_ context.Context, data []byte) error {
	return probe.WriteFileAtomic(c.file, data)
}

// Reloads counts reload attempts that were applied and that were rejected.
func (c *Chain) Reloads(context.Context) (ok, failed int, err error) {
	return int(c.reloadOK.Load()), int(c.reload.Load()), nil
}

func (c *Chain) loadAndValidate(data []byte) (*api.AuthorizationConfiguration, error) {
	cfg, err := load.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("failed to load AuthorizationConfiguration: %w", err)
	}
	if c.has(faults.AZChainSkipsValidation) {
		return cfg, nil
	}
	if errs := validation.ValidateAuthorizationConfiguration(c.compiler, nil, cfg, knownTypes, repeatableTypes); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	return cfg, nil
}

// checkFile mirrors kube-apiserver's reload: unchanged bytes are ignored; an
// invalid or unbuildable configuration counts as a failed reload and keeps
// the current chain.
func (c *Chain) checkFile() {
	if c.has(faults.AZChainNoReload) {
		return
	}
	data, err := os.ReadFile(c.file)
	if err != nil {
		c.reload.Add(1)
		return
	}
	c.mu.Lock()
	same := bytes.Equal(data, c.lastData)
	if !same {
		c.lastData = data
	}
	c.mu.Unlock()
	if same {
		return
	}
	cfg, err := c.loadAndValidate(data)
	if err != nil {
		c.reload.Add(1)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a, err := c.buildLocked(cfg)
	if err != nil {
		c.reload.Add(1)
		return
	}
	c.lastGood = cfg
	c.current.Store(&a)
	c.reloadOK.Add(1)
}

func (c *Chain) build(cfg *api.AuthorizationConfiguration) (authorizer.Authorizer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buildLocked(cfg)
}

type webhookMetrics struct {
	webhookmetrics.NoopRequestMetrics
	webhookmetrics.NoopWebhookMetrics
	authorizationcel.NoopMatcherMetrics
}

func (c *Chain) buildLocked(cfg *api.AuthorizationConfiguration) (authorizer.Authorizer, error) {
	if len(cfg.Authorizers) == 0 {
		return nil, errors.New("at least one authorization mode must be passed")
	}
	named := []union.NamedAuthorizer{{AuthorizerName: "kubernetes.io/system-privileged-group", Authorizer: authorizerfactory.NewPrivilegedGroups(user.SystemPrivilegedGroup)}}
	for _, ac := range cfg.Authorizers {
		var a authorizer.Authorizer
		switch string(ac.Type) {
		case "AlwaysAllow":
			a = authorizerfactory.NewAlwaysAllowAuthorizer()
		case "AlwaysDeny":
			a = authorizerfactory.NewAlwaysDenyAuthorizer()
		case string(api.TypeWebhook):
			if ac.Webhook == nil || ac.Webhook.ConnectionInfo.KubeConfigFile == nil {
				return nil, fmt.Errorf("authorizer %q: webhook has no kubeconfig", ac.Name)
			}
			w := ac.Webhook
			rc, err := webhookutil.LoadKubeconfig(*w.ConnectionInfo.KubeConfigFile, nil)
			if err != nil {
				return nil, err
			}
			if w.Timeout.Duration != 0 {
				rc.Timeout = w.Timeout.Duration
			}
			decisionOnError := authorizer.DecisionNoOpinion
			if w.FailurePolicy == api.FailurePolicyDeny && !c.faults.Has(faults.AZChainIgnoresFailurePolicy) {
				decisionOnError = authorizer.DecisionDeny
			}
			authorizedTTL, unauthorizedTTL := w.AuthorizedTTL.Duration, w.UnauthorizedTTL.Duration
			if !w.CacheAuthorizedRequests || c.faults.Has(faults.AZChainNoCache) {
				authorizedTTL = 0
			}
			if !w.CacheUnauthorizedRequests || c.faults.Has(faults.AZChainNoCache) {
				unauthorizedTTL = 0
			}
			conds := w.MatchConditions
			if c.faults.Has(faults.AZChainIgnoresMatchConds) {
				conds = nil
			}
			wa, err := webhook.New(rc, w.SubjectAccessReviewVersion, authorizedTTL, unauthorizedTTL, *webhook.DefaultRetryBackoff(),
				decisionOnError, conds, ac.Name, webhookMetrics{}, c.compiler)
			if err != nil {
				return nil, err
			}
			a = wa
			if c.faults.Has(faults.AZChainAllowedDeniedAllows) {
				a = allowedDeniedAllows{wa}
			}
		default:
			return nil, fmt.Errorf("authorizer type %s is not supported by the embedded chain", ac.Type)
		}
		named = append(named, union.NamedAuthorizer{AuthorizerName: ac.Name, Authorizer: a})
	}
	if c.faults.Has(faults.AZChainNoShortCircuit) {
		return callsAll(named), nil
	}
	return union.New(named...)
}

// allowedDeniedAllows is the AZChainAllowedDeniedAllows fault: a webhook
// answer with both allowed and denied set, which upstream turns into a deny
// with an error, becomes an allow.
type allowedDeniedAllows struct{ authorizer.Authorizer }

func (a allowedDeniedAllows) Authorize(ctx context.Context, attr authorizer.Attributes) (authorizer.Decision, string, error) {
	d, reason, err := a.Authorizer.Authorize(ctx, attr)
	if d == authorizer.DecisionDeny && err != nil && strings.Contains(err.Error(), "both allow and deny") {
		return authorizer.DecisionAllow, reason, nil
	}
	return d, reason, err
}

func (a allowedDeniedAllows) ConditionsAwareAuthorize(ctx context.Context, attr authorizer.Attributes) authorizer.ConditionsAwareDecision {
	return authorizer.ConditionsAwareDecisionFromParts(a.Authorize(ctx, attr))
}

// callsAll is the AZChainNoShortCircuit fault: the first decision still
// wins, but every later authorizer is called too.
type callsAll []union.NamedAuthorizer

func (all callsAll) Authorize(ctx context.Context, attr authorizer.Attributes) (authorizer.Decision, string, error) {
	decision, reason, firstErr := authorizer.DecisionNoOpinion, "", error(nil)
	var reasons []string
	decided := false
	for _, n := range all {
		d, r, err := n.Authorizer.Authorize(ctx, attr)
		if decided {
			continue
		}
		if r != "" {
			reasons = append(reasons, n.AuthorizerName+": "+r)
		}
		if d != authorizer.DecisionNoOpinion {
			decision, reason, firstErr, decided = d, r, err, true
		}
	}
	if !decided {
		reason = strings.Join(reasons, "\n")
	}
	return decision, reason, firstErr
}

func (all callsAll) ConditionsAwareAuthorize(ctx context.Context, attr authorizer.Attributes) authorizer.ConditionsAwareDecision {
	return authorizer.ConditionsAwareDecisionFromParts(all.Authorize(ctx, attr))
}

func (all callsAll) EvaluateConditions(context.Context, authorizer.ConditionsAwareDecision, authorizer.ConditionsData) (authorizer.Decision, string, error) {
	return authorizer.DecisionDeny, "", authorizer.ErrorConditionEvaluationNotSupported
}

// serveSAR answers a v1 SubjectAccessReview the way kube-apiserver's
// subjectaccessreview REST handler does: allowed and denied from the
// decision, the reason, the error as evaluationError.
func (c *Chain) serveSAR(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != SARPath || r.Method != http.MethodPost {
		http.Error(rw, "the embedded chain serves POST "+SARPath, http.StatusNotFound)
		return
	}
	var sar authorizationv1.SubjectAccessReview
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &sar)
	}
	if err != nil {
		http.Error(rw, "not a SubjectAccessReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	s := sar.Spec
	extra := map[string][]string{}
	for k, v := range s.Extra {
		extra[k] = v
	}
	attrs := authorizer.AttributesRecord{User: &user.DefaultInfo{Name: s.User, UID: s.UID, Groups: s.Groups, Extra: extra}}
	if ra := s.ResourceAttributes; ra != nil {
		attrs.ResourceRequest = true
		attrs.Verb, attrs.Namespace, attrs.APIGroup, attrs.APIVersion = ra.Verb, ra.Namespace, ra.Group, ra.Version
		attrs.Resource, attrs.Subresource, attrs.Name = ra.Resource, ra.Subresource, ra.Name
	} else if na := s.NonResourceAttributes; na != nil {
		attrs.Verb, attrs.Path = na.Verb, na.Path
	}
	a := *c.current.Load()
	d, reason, evalErr := a.Authorize(r.Context(), attrs)
	sar.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: d == authorizer.DecisionAllow, Denied: d == authorizer.DecisionDeny, Reason: reason}
	if d == authorizer.DecisionNoOpinion && c.has(faults.AZChainNoOpinionAllows) {
		sar.Status.Allowed = true
	}
	if evalErr != nil {
		sar.Status.EvaluationError = evalErr.Error()
	}
	sar.APIVersion, sar.Kind = "authorization.k8s.io/v1", "SubjectAccessReview"
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(http.StatusCreated)
	json.NewEncoder(rw).Encode(&sar)
}
