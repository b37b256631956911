// Package credwire holds the wire formats of the credprovider suite's
// consumer side, shared by the three programs that speak them: the suite
// (suites/credprovider), the reference consumer (fakes/credprovider/consumer)
// and the real kubelet's wrapper (hack/credprovider-kubelet), plus the probe
// plugin (fakes/credprovider/probe) whose script and records the suite
// writes and reads.
//
// The consumer line protocol: JSON objects, one per line, both ways, one
// connection (one process, for a command) per scenario. The suite sends
// Requests with an increasing ID and the consumer answers each with an
// Answer of that ID:
//
//	{"id":1,"op":"configure","config":"/…/config.yaml or a directory","binDir":"/…/bin","env":["K=V",…]}
//	  -> {"id":1,"name":"what the consumer is"}  or  {"id":1,"error":"the config error, verbatim"}
//	{"id":2,"op":"pull","concurrent":false,"pulls":[{"image":"reg.test/a:1","namespace":"ns",
//	  "podName":"p","podUID":"…","serviceAccount":{"name":"sa","uid":"…","annotations":{…}}}]}
//	  -> {"id":2,"results":[{"credentials":[{"username":"…","password":"…"}]}],"log":["…"]}
//
// While serving a request the consumer asks the suite for service-account
// tokens with a TokenCallback, and the suite replies with a Request that
// carries only its CID and a token or an error:
//
//	{"callback":"token","cid":7,"namespace":"ns","serviceAccount":"sa","serviceAccountUID":"…",
//	  "audiences":["…"],"boundKind":"Pod","boundName":"p","boundUID":"…"}
//	  <- {"cid":7,"token":"…"}  or  {"cid":7,"error":"…"}
//
// The semantics (what "env", "concurrent" and "log" mean, how the suite
// caches tokens) are documented with the suite (suites/credprovider,
// consumer.go).
package credwire

import "time"

// Request is a line from the suite: an operation (ID and Op set) or the
// reply to a token callback (only CID and Token or Error set).
type Request struct {
	ID         int64    `json:"id,omitempty"`
	Op         string   `json:"op,omitempty"` // "configure" or "pull"
	Config     string   `json:"config,omitempty"`
	BinDir     string   `json:"binDir,omitempty"`
	Env        []string `json:"env,omitempty"`
	Pulls      []Pull   `json:"pulls,omitempty"`
	Concurrent bool     `json:"concurrent,omitempty"`

	CID   int64  `json:"cid,omitempty"`
	Token string `json:"token,omitempty"`
	Error string `json:"error,omitempty"`
}

// IsTokenReply reports whether r answers a token callback.
func (r Request) IsTokenReply() bool { return r.Op == "" && r.CID != 0 }

// Pull is one image pull for a pod, the image as written in the pod spec.
type Pull struct {
	Image          string          `json:"image"`
	Namespace      string          `json:"namespace"`
	PodName        string          `json:"podName"`
	PodUID         string          `json:"podUID"`
	ServiceAccount *ServiceAccount `json:"serviceAccount,omitempty"` // nil: a pod without one
}

// ServiceAccount is a pod's service account as the API server would
// return it.
type ServiceAccount struct {
	Name        string            `json:"name"`
	UID         string            `json:"uid"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Credential is one username/password pair (offered for a pull, or an auth
// entry of a probe response).
type Credential struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (c Credential) String() string { return c.Username + ":" + c.Password }

// Result is the answer for one pull: the credentials the consumer would
// try, in order (an empty list, not null, for none).
type Result struct {
	Credentials []Credential `json:"credentials"`
}

// Answer is the consumer's reply to a Request.
type Answer struct {
	ID      int64    `json:"id"`
	Name    string   `json:"name,omitempty"`
	Error   string   `json:"error,omitempty"`
	Results []Result `json:"results,omitempty"`
	Log     []string `json:"log,omitempty"`
}

// TokenCallback is the consumer asking for a service-account token, with
// the TokenRequest it would send the API server.
type TokenCallback struct {
	Callback          string   `json:"callback"` // "token"
	CID               int64    `json:"cid"`
	Namespace         string   `json:"namespace"`
	ServiceAccount    string   `json:"serviceAccount"`
	ServiceAccountUID string   `json:"serviceAccountUID"`
	Audiences         []string `json:"audiences"`
	BoundKind         string   `json:"boundKind,omitempty"`
	BoundName         string   `json:"boundName,omitempty"`
	BoundUID          string   `json:"boundUID,omitempty"`
	ExpirationSeconds int64    `json:"expirationSeconds,omitempty"`
}

// ConsumerLine is any line a consumer writes: an Answer, or a TokenCallback
// when Callback is set.
type ConsumerLine struct {
	Answer
	TokenCallback
}

// The probe plugin's files (fakes/credprovider/probe): P.script.json, a
// ProbeScript the suite writes, and P.records.jsonl, one ProbeRecord per
// invocation.

// ProbeScript is what a probe answers; Responses[n-1] answers invocation
// n, the last one repeating. RecordEnv names environment variables to
// record.
type ProbeScript struct {
	Responses []ProbeResponse `json:"responses"`
	RecordEnv []string        `json:"recordEnv,omitempty"`
}

// ProbeResponse is one scripted answer. Strings in Auth (keys, username,
// password), Raw and Stderr are templates: {name} {n} {image} {ns} {sa}
// {pod} {token}, from the request and the token's claims.
type ProbeResponse struct {
	Sleep string `json:"sleep,omitempty"`
	Hang  bool   `json:"hang,omitempty"`
	// HangChild: before hanging, start a child that inherits stdout and
	// stderr and outlives a kill of the plugin (a helper left running).
	HangChild     bool                  `json:"hangChild,omitempty"`
	ExitCode      int                   `json:"exitCode,omitempty"`
	Stderr        string                `json:"stderr,omitempty"`
	Raw           *string               `json:"raw,omitempty"`
	Prefix        string                `json:"prefix,omitempty"`
	APIVersion    string                `json:"apiVersion,omitempty"`
	CacheKeyType  string                `json:"cacheKeyType,omitempty"`
	CacheDuration *string               `json:"cacheDuration,omitempty"`
	Auth          map[string]Credential `json:"auth,omitempty"`
	Extra         map[string]any        `json:"extra,omitempty"`
}

// ProbeRecord is one probe invocation as the probe saw it: the request
// with the service-account token replaced by its hash and decoded claims.
type ProbeRecord struct {
	N            int               `json:"n"`
	Name         string            `json:"name"`
	PID          int               `json:"pid"`
	Start        time.Time         `json:"start"`
	Args         []string          `json:"args"`
	Env          map[string]string `json:"env,omitempty"`
	RequestError string            `json:"requestError,omitempty"`
	APIVersion   string            `json:"apiVersion,omitempty"`
	Kind         string            `json:"kind,omitempty"`
	Image        string            `json:"image"`
	HasToken     bool              `json:"hasToken"`
	TokenHash    string            `json:"tokenHash,omitempty"` // "sha256:<hex>"
	Claims       *ProbeClaims      `json:"claims,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	// Fields lists the request's top-level JSON fields.
	Fields []string `json:"fields"`
}

// ProbeClaims are a token's decoded (unverified) claims.
type ProbeClaims struct {
	Audience          []string `json:"audience"`
	Namespace         string   `json:"namespace"`
	ServiceAccount    string   `json:"serviceAccount"`
	ServiceAccountUID string   `json:"serviceAccountUID"`
	PodName           string   `json:"podName"`
	PodUID            string   `json:"podUID"`
	Error             string   `json:"error,omitempty"`
}
