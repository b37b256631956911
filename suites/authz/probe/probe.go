// Package probe is the contract between the authz suite and Gauntlet's probe
// webhooks (fakes/authz): how a SubjectAccessReview scripts each webhook's
// answer, how a webhook reports the reviews it received, the layout of the
// reference chain (names, order, failure policies, match conditions, TTLs)
// and the state file `gauntlet authz-webhooks` leaves for a real run. The
// chain checks drive a chain only through SubjectAccessReviews and read
// only these recordings, so the same checks judge the embedded chain and a
// real kube-apiserver.
package probe

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"sigs.k8s.io/yaml"
)

// Answer is what a probe webhook answers a review.
type Answer string

// Answers.
const (
	Allow     Answer = "allow"
	Deny      Answer = "deny"
	NoOpinion Answer = "no-opinion"
	Error     Answer = "error"     // HTTP 400 (a 500 would be retried by the apiserver's webhook client)
	Malformed Answer = "malformed" // HTTP 200 with a body that is not JSON
	Slow      Answer = "slow"      // answers after Timing.SlowBy
	Both      Answer = "both"      // allowed and denied both true
)

// ExtraPrefix prefixes every user-extra key the probes read.
const ExtraPrefix = "authz.gauntlet.dev/"

// ScriptKey is the user-extra key whose first value scripts webhook name's
// answer ("authz.gauntlet.dev/answer-authz-a": ["allow"]).
func ScriptKey(name string) string { return ExtraPrefix + "answer-" + name }

// Reason is the reason a probe webhook gives with answer a.
func Reason(name string, a Answer) string {
	return fmt.Sprintf("gauntlet probe %s answers %s", name, a)
}

// The reference webhook under test (AZ01–AZ05) decides by user when no
// script says otherwise.
const (
	AllowedUser = "gauntlet-allowed"
	DeniedUser  = "gauntlet-denied"
)

// DefaultAnswer is a probe's answer to an unscripted review.
func DefaultAnswer(user string) Answer {
	switch user {
	case AllowedUser:
		return Allow
	case DeniedUser:
		return Deny
	}
	return NoOpinion
}

// CallsPath on a probe webhook's listener returns the reviews it received
// for ?user=NAME as a JSON []Call, oldest first.
const CallsPath = "/gauntlet/calls"

// WebhookPath is where a probe webhook accepts reviews.
const WebhookPath = "/authorize"

// Call is one review a probe webhook received.
type Call struct {
	APIVersion string              `json:"apiVersion"`
	User       string              `json:"user"`
	Extra      map[string][]string `json:"extra,omitempty"`
	Answer     Answer              `json:"answer"`
	At         time.Time           `json:"at"`
}

// The reference chain, in order. A is failurePolicy NoOpinion; B is
// failurePolicy Deny with two match conditions (SkipB present -> false;
// MatchErrorB present -> evaluation error); C is failurePolicy NoOpinion.
const (
	A = "authz-a"
	B = "authz-b"
	C = "authz-c"
)

// Chain lists the reference chain's webhooks in order.
var Chain = []string{A, B, C}

// Match-condition switches of webhook B (user-extra keys).
const (
	SkipB       = ExtraPrefix + "skip-b"
	MatchErrorB = ExtraPrefix + "match-error-b"
)

// Timing is the reference chain's configured timing.
type Timing struct {
	Timeout         time.Duration `json:"timeout"`         // every webhook's timeout
	AuthorizedTTL   time.Duration `json:"authorizedTTL"`   // every webhook's
	UnauthorizedTTL time.Duration `json:"unauthorizedTTL"` // every webhook's
	SlowBy          time.Duration `json:"slowBy"`          // how late a Slow answer comes (> Timeout)
}

// DefaultTiming keeps a whole chain run within seconds. The timeout is 2 s,
// not 1 s: a TLS webhook call on a loaded 2-core CI machine took 1.5 s.
var DefaultTiming = Timing{Timeout: 2 * time.Second, AuthorizedTTL: 5 * time.Second, UnauthorizedTTL: time.Second, SlowBy: 3 * time.Second}

// ReferenceConfig is the reference chain's AuthorizationConfiguration;
// kubeconfigs maps each webhook name to its kubeconfig file (absolute).
func ReferenceConfig(kubeconfigs map[string]string, t Timing) *apiv1.AuthorizationConfiguration {
	c := &apiv1.AuthorizationConfiguration{}
	c.APIVersion, c.Kind = "apiserver.config.k8s.io/v1", "AuthorizationConfiguration"
	for _, name := range Chain {
		kc := kubeconfigs[name]
		w := &apiv1.WebhookConfiguration{
			Timeout:                    metaDuration(t.Timeout),
			AuthorizedTTL:              metaDuration(t.AuthorizedTTL),
			UnauthorizedTTL:            metaDuration(t.UnauthorizedTTL),
			SubjectAccessReviewVersion: "v1",
			FailurePolicy:              "NoOpinion",
			ConnectionInfo:             apiv1.WebhookConnectionInfo{Type: "KubeConfigFile", KubeConfigFile: &kc},
		}
		if name == B {
			w.FailurePolicy = "Deny"
			w.MatchConditionSubjectAccessReviewVersion = "v1"
			w.MatchConditions = []apiv1.WebhookMatchCondition{
				{Expression: fmt.Sprintf("!(%q in request.extra)", SkipB)},
				// A missing map key is a CEL evaluation error.
				{Expression: fmt.Sprintf("!(%q in request.extra) || request.extra[%q][0] == 'x'", MatchErrorB, ExtraPrefix+"absent")},
			}
		}
		c.Authorizers = append(c.Authorizers, apiv1.AuthorizerConfiguration{Type: "Webhook", Name: name, Webhook: w})
	}
	return c
}

// MarshalConfig renders a configuration as the YAML file a server reads.
func MarshalConfig(c *apiv1.AuthorizationConfiguration) ([]byte, error) { return yaml.Marshal(c) }

// UnmarshalConfig reads one back (for checks that derive variants).
func UnmarshalConfig(b []byte) (*apiv1.AuthorizationConfiguration, error) {
	c := &apiv1.AuthorizationConfiguration{}
	if err := yaml.UnmarshalStrict(b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Endpoint is one probe webhook.
type Endpoint struct {
	Name string `json:"name"`
	URL  string `json:"url"` // https://127.0.0.1:PORT/authorize; CallsPath on the same host
}

// State is what `gauntlet authz-webhooks --dir DIR` writes to DIR/StateFile
// once its webhooks serve: everything a run against a real chain needs.
type State struct {
	Reference  Endpoint   `json:"reference"` // the reference webhook under test (AZ01–AZ05)
	Chain      []Endpoint `json:"chain"`     // the chain's probes, in order
	CAFile     string     `json:"caFile"`
	ClientCert string     `json:"clientCert"`
	ClientKey  string     `json:"clientKey"`
	ConfigFile string     `json:"configFile"` // the AuthorizationConfiguration the server is started with
	Timing     Timing     `json:"timing"`
	PID        int        `json:"pid"`
}

// StateFile is the state's name in the daemon's directory.
const StateFile = "state.json"

// WriteState writes dir/StateFile atomically.
func WriteState(dir string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, StateFile), b)
}

// ReadState reads dir/StateFile.
func ReadState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", filepath.Join(dir, StateFile), err)
	}
	return s, nil
}

// WriteFileAtomic replaces path with data by rename, so a watcher never
// reads a half-written file (a truncate-then-write would show the server an
// empty configuration first, counted as a failed reload).
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func metaDuration(d time.Duration) metav1.Duration { return metav1.Duration{Duration: d} }
