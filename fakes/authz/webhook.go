// Package authz holds Gauntlet's reference authorization webhooks and the
// embedded reference chain: probe webhooks (real HTTPS servers on loopback
// with client-certificate auth) that answer SubjectAccessReviews as a
// review's user-extra script says and record every review they receive, the
// embedded chain assembled from k8s.io/apiserver's own authorizer code
// (union, webhook authorizer with cache and retry, CEL match conditions,
// configuration loading and validation) behind a SubjectAccessReview
// endpoint, the faults of the authz catalogue, and the daemon that serves
// the probes for a real kube-apiserver.
package authz

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	authorizationv1beta1 "k8s.io/api/authorization/v1beta1"

	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/suites/authz/probe"
)

// maxCalls bounds a probe's recording.
const maxCalls = 100000

const (
	v1      = "authorization.k8s.io/v1"
	v1beta1 = "authorization.k8s.io/v1beta1"
	sarKind = "SubjectAccessReview"
)

// Webhook is one probe webhook.
type Webhook struct {
	Name string
	// Reference webhooks decide unscripted reviews by user
	// (probe.DefaultAnswer) and obey the webhook faults; chain probes have
	// no opinion unless scripted.
	Reference bool
	timing    probe.Timing
	srv       *httptest.Server

	mu     sync.Mutex
	calls  []probe.Call
	faults faults.Set
}

// StartWebhook serves a probe webhook on a loopback port with the PKI's
// serving certificate, requiring its client certificate.
func StartWebhook(name string, reference bool, p *PKI, t probe.Timing) *Webhook {
	w := &Webhook{Name: name, Reference: reference, timing: t, faults: faults.Set{}}
	w.srv = httptest.NewUnstartedServer(w)
	w.srv.TLS = p.ServerTLS(true)
	w.srv.Config.ReadHeaderTimeout = 10 * time.Second
	w.srv.StartTLS()
	return w
}

// URL is where the webhook accepts reviews.
func (w *Webhook) URL() string { return w.srv.URL + probe.WebhookPath }

// Endpoint describes the webhook for a state file.
func (w *Webhook) Endpoint() probe.Endpoint { return probe.Endpoint{Name: w.Name, URL: w.URL()} }

// Close stops the server (and any slow answer in flight).
func (w *Webhook) Close() {
	w.srv.CloseClientConnections()
	w.srv.Close()
}

// Arm switches webhook faults on.
func (w *Webhook) Arm(fs ...faults.Fault) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range fs {
		w.faults[f] = true
	}
}

func (w *Webhook) has(f faults.Fault) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.Reference && w.faults.Has(f)
}

// Calls returns the reviews received for user.
func (w *Webhook) Calls(user string) []probe.Call {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []probe.Call
	for _, c := range w.calls {
		if c.User == user {
			out = append(out, c)
		}
	}
	return out
}

type review struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Spec       json.RawMessage `json:"spec"`
}

type reviewStatus struct {
	Allowed bool   `json:"allowed"`
	Denied  bool   `json:"denied,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

type reviewAnswer struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Status     reviewStatus `json:"status"`
}

func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == probe.CallsPath && r.Method == http.MethodGet:
		rw.Header().Set("Content-Type", "application/json")
		calls := w.Calls(r.URL.Query().Get("user"))
		if calls == nil {
			calls = []probe.Call{}
		}
		json.NewEncoder(rw).Encode(calls)
	case r.URL.Path == probe.WebhookPath && r.Method == http.MethodPost:
		w.review(rw, r)
	default:
		http.Error(rw, "gauntlet probe webhook: POST "+probe.WebhookPath+" or GET "+probe.CallsPath, http.StatusNotFound)
	}
}

func (w *Webhook) review(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	user, extra, version, err := decodeReview(body)
	if err != nil {
		if w.has(faults.AZAllowOnMalformed) {
			w.answer(rw, v1, reviewStatus{Allowed: true, Reason: "gauntlet probe " + w.Name + " allows what it cannot read"})
			return
		}
		http.Error(rw, "gauntlet probe "+w.Name+": "+err.Error(), http.StatusBadRequest)
		return
	}
	a := probe.NoOpinion
	if w.Reference {
		a = probe.DefaultAnswer(user)
	}
	if s := extra[probe.ScriptKey(w.Name)]; len(s) > 0 {
		a = probe.Answer(s[0])
	}
	w.mu.Lock()
	if len(w.calls) >= maxCalls { // a long-running daemon keeps the newest
		w.calls = append(w.calls[:0], w.calls[maxCalls/2:]...)
	}
	w.calls = append(w.calls, probe.Call{APIVersion: version, User: user, Extra: extra, Answer: a, At: time.Now()})
	w.mu.Unlock()

	if a == probe.Slow || w.has(faults.AZSlowWebhook) {
		select {
		case <-time.After(w.timing.SlowBy):
		case <-r.Context().Done():
			return
		}
	}
	if w.has(faults.AZWrongAPIVersion) {
		if version == v1 {
			version = v1beta1
		} else {
			version = v1
		}
	}
	st := reviewStatus{Reason: probe.Reason(w.Name, a)}
	switch a {
	case probe.Allow:
		st.Allowed = true
	case probe.Deny:
		st.Denied = true
		st.Allowed = w.has(faults.AZAllowedAndDenied)
	case probe.Both:
		st.Allowed, st.Denied = true, true
	case probe.Error:
		// 400, not 500: the apiserver's webhook client retries 500 with
		// backoff, which would blur call counts and cost seconds.
		http.Error(rw, "gauntlet probe "+w.Name+" fails on purpose", http.StatusBadRequest)
		return
	case probe.Malformed:
		rw.Header().Set("Content-Type", "application/json")
		io.WriteString(rw, `{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "status": {"allowed": tr`)
		return
	case probe.NoOpinion, probe.Slow:
		if w.has(faults.AZNoOpinionWithoutReason) {
			st.Reason = ""
		}
	default:
		http.Error(rw, fmt.Sprintf("gauntlet probe %s: unknown script answer %q", w.Name, a), http.StatusBadRequest)
		return
	}
	w.answer(rw, version, st)
}

func (w *Webhook) answer(rw http.ResponseWriter, version string, st reviewStatus) {
	rw.Header().Set("Content-Type", "application/json")
	json.NewEncoder(rw).Encode(reviewAnswer{APIVersion: version, Kind: sarKind, Status: st})
}

// decodeReview accepts exactly a v1 or v1beta1 SubjectAccessReview with a
// spec naming a user or groups.
func decodeReview(body []byte) (user string, extra map[string][]string, version string, err error) {
	var rv review
	if err := json.Unmarshal(body, &rv); err != nil {
		return "", nil, "", fmt.Errorf("not a JSON object: %v", err)
	}
	if rv.Kind != sarKind {
		return "", nil, "", fmt.Errorf("kind %q, want %s", rv.Kind, sarKind)
	}
	if len(rv.Spec) == 0 {
		return "", nil, "", fmt.Errorf("no spec")
	}
	extra = map[string][]string{}
	var groups []string
	switch rv.APIVersion {
	case v1:
		var s authorizationv1.SubjectAccessReviewSpec
		if err := json.Unmarshal(rv.Spec, &s); err != nil {
			return "", nil, "", fmt.Errorf("spec: %v", err)
		}
		user, groups = s.User, s.Groups
		for k, v := range s.Extra {
			extra[k] = v
		}
	case v1beta1:
		var s authorizationv1beta1.SubjectAccessReviewSpec
		if err := json.Unmarshal(rv.Spec, &s); err != nil {
			return "", nil, "", fmt.Errorf("spec: %v", err)
		}
		user, groups = s.User, s.Groups
		for k, v := range s.Extra {
			extra[k] = v
		}
	default:
		return "", nil, "", fmt.Errorf("apiVersion %q, want %s or %s", rv.APIVersion, v1, v1beta1)
	}
	if user == "" && len(groups) == 0 {
		return "", nil, "", fmt.Errorf("spec names neither user nor groups")
	}
	return user, extra, rv.APIVersion, nil
}
