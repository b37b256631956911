// Package satoken issues and reads Kubernetes service-account tokens: an
// in-process issuer that signs JWTs shaped exactly like the kube-apiserver's
// pod-bound TokenRequest tokens (the "kubernetes.io" private claim with
// namespace, pod, service account, node and warnafter), and decoding and
// verification of any such token. Credential provider plugins receive these
// tokens (KEP-4412), so the suites need tokens a real plugin would accept
// without a cluster; Source lets a real-apiserver TokenRequest backend stand
// in when one is available.
package satoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// DefaultIssuer is the issuer URL of a default kube-apiserver
// (--service-account-issuer in kubeadm clusters).
const DefaultIssuer = "https://kubernetes.default.svc.cluster.local"

// DefaultTTL is the kube-apiserver's default TokenRequest expiry (1 h).
const DefaultTTL = time.Hour

// Claims is what a token is bound to: the request side (what to issue) and,
// after Decode/Verify, what a token says.
type Claims struct {
	Namespace         string
	ServiceAccount    string
	ServiceAccountUID string
	PodName           string // empty: not pod-bound
	PodUID            string
	NodeName          string // optional, as with the kubelet's pod tokens
	NodeUID           string
	Audience          []string
	TTL               time.Duration // 0: DefaultTTL (Issue); the lifetime exp-iat (Decode)

	// Set by Decode/Verify.
	Issuer    string
	Subject   string
	ID        string
	IssuedAt  time.Time
	NotBefore time.Time
	Expiry    time.Time
	WarnAfter time.Time // zero when absent
}

// Source hands out service-account tokens: the in-process Issuer, or a real
// kube-apiserver's TokenRequest API.
type Source interface {
	// Token returns a token bound as c asks (audience, pod, service account).
	Token(ctx context.Context, c Claims) (string, error)
	// Name says where tokens come from, for reports.
	Name() string
}

// Subject is who pulls: a namespace, and optionally a service account (with
// its annotations) and a pod running as it. A caller names subjects with
// identities of its own making (any names, UIDs it generated); a Binder
// returns the same subject as the API server has it.
type Subject struct {
	Namespace         string
	ServiceAccount    string // empty: a pod without one (a static pod)
	ServiceAccountUID string
	Annotations       map[string]string
	PodName           string
	PodUID            string
}

// A Binder is a Source that can only bind tokens to objects that exist (a
// real API server's TokenRequest checks the pod's and the service
// account's UIDs). Bind makes the subject exist: the namespace (under a
// generated name the first time the caller's namespace is named), the
// service account with exactly the given annotations (recreated, so with a
// new UID, when the caller's UID for it changed) and the pod running as it
// (recreated when the caller's pod UID changed). It returns the real
// namespace and UIDs; a subject without a service account only gets its
// namespace translated. Token then issues tokens for the returned
// identities.
type Binder interface {
	Source
	Bind(ctx context.Context, s Subject) (Subject, error)
}

// Issuer signs tokens with its own ES256 key. It is safe for concurrent use.
type Issuer struct {
	URL string
	key *ecdsa.PrivateKey
	kid string
	now func() time.Time
}

// NewIssuer creates an issuer with a fresh P-256 key and DefaultIssuer as URL.
func NewIssuer() (*Issuer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("satoken: generate key: %w", err)
	}
	pub, err := json.Marshal([]string{k.X.Text(16), k.Y.Text(16)})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pub)
	return &Issuer{URL: DefaultIssuer, key: k, kid: hex.EncodeToString(sum[:16]), now: time.Now}, nil
}

// PublicKey is the verification key.
func (i *Issuer) PublicKey() *ecdsa.PublicKey { return &i.key.PublicKey }

// KeyID is the "kid" header of the issuer's tokens.
func (i *Issuer) KeyID() string { return i.kid }

// Name implements Source.
func (i *Issuer) Name() string { return "in-process issuer " + i.URL }

// Token implements Source.
func (i *Issuer) Token(ctx context.Context, c Claims) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return i.Issue(c)
}

// kubeClaims is the kube-apiserver's private claim (pkg/serviceaccount/claims.go).
type kubeClaims struct {
	Namespace string `json:"namespace,omitempty"`
	Node      *ref   `json:"node,omitempty"`
	Pod       *ref   `json:"pod,omitempty"`
	SA        *ref   `json:"serviceaccount,omitempty"`
	WarnAfter *int64 `json:"warnafter,omitempty"`
}

type ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

type payload struct {
	Aud  []string    `json:"aud"`
	Exp  int64       `json:"exp"`
	Iat  int64       `json:"iat"`
	Iss  string      `json:"iss"`
	Jti  string      `json:"jti,omitempty"`
	Kube *kubeClaims `json:"kubernetes.io,omitempty"`
	Nbf  int64       `json:"nbf"`
	Sub  string      `json:"sub"`
}

// Issue signs a token for c. Namespace, ServiceAccount and at least one
// audience are required, as TokenRequest requires them.
func (i *Issuer) Issue(c Claims) (string, error) {
	if c.Namespace == "" || c.ServiceAccount == "" {
		return "", errors.New("satoken: namespace and service account are required")
	}
	if len(c.Audience) == 0 {
		return "", errors.New("satoken: at least one audience is required")
	}
	ttl := c.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	now := i.now().Truncate(time.Second)
	kc := &kubeClaims{Namespace: c.Namespace, SA: &ref{Name: c.ServiceAccount, UID: c.ServiceAccountUID}}
	if c.PodName != "" {
		kc.Pod = &ref{Name: c.PodName, UID: c.PodUID}
	}
	if c.NodeName != "" {
		kc.Node = &ref{Name: c.NodeName, UID: c.NodeUID}
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	p := payload{
		Aud: append([]string(nil), c.Audience...), Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(ttl).Unix(),
		Iss: i.URL, Jti: uuid(jti), Kube: kc,
		Sub: "system:serviceaccount:" + c.Namespace + ":" + c.ServiceAccount,
	}
	hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": i.kid})
	body, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	signing := b64(hdr) + "." + b64(body)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, i.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64) // JWS ES256: fixed-width r || s
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + b64(sig), nil
}

// Verify checks the signature, issuer and time window of a token issued by
// i and returns its claims.
func (i *Issuer) Verify(token string) (Claims, error) {
	return VerifyWith(token, &i.key.PublicKey, i.URL, i.now())
}

// VerifyWith verifies an ES256 token against key and issuer at time now.
func VerifyWith(token string, key crypto.PublicKey, issuer string, now time.Time) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, errors.New("satoken: not a compact JWS (want 3 dot-separated parts)")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := decodePart(parts[0], &hdr); err != nil {
		return Claims{}, fmt.Errorf("satoken: header: %w", err)
	}
	pk, ok := key.(*ecdsa.PublicKey)
	if !ok || hdr.Alg != "ES256" {
		return Claims{}, fmt.Errorf("satoken: unsupported alg %q (this verifier handles ES256)", hdr.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return Claims{}, errors.New("satoken: malformed ES256 signature")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pk, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return Claims{}, errors.New("satoken: signature does not verify")
	}
	c, err := Decode(token)
	if err != nil {
		return Claims{}, err
	}
	switch {
	case issuer != "" && c.Issuer != issuer:
		return c, fmt.Errorf("satoken: issuer %q, want %q", c.Issuer, issuer)
	case now.Before(c.NotBefore):
		return c, fmt.Errorf("satoken: not valid before %s", c.NotBefore.UTC().Format(time.RFC3339))
	case !now.Before(c.Expiry):
		return c, fmt.Errorf("satoken: expired at %s", c.Expiry.UTC().Format(time.RFC3339))
	}
	return c, nil
}

// Decode reads a token's claims WITHOUT verifying it (for recording what a
// plugin or consumer was sent). It accepts any kube-apiserver token shape.
func Decode(token string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, errors.New("satoken: not a compact JWS (want 3 dot-separated parts)")
	}
	var raw struct {
		payload
		Aud json.RawMessage `json:"aud"` // a string or a list (RFC 7519)
	}
	if err := decodePart(parts[1], &raw); err != nil {
		return Claims{}, fmt.Errorf("satoken: payload: %w", err)
	}
	p := raw.payload
	c := Claims{Issuer: p.Iss, Subject: p.Sub, ID: p.Jti,
		IssuedAt: time.Unix(p.Iat, 0), NotBefore: time.Unix(p.Nbf, 0), Expiry: time.Unix(p.Exp, 0)}
	if len(raw.Aud) > 0 {
		var one string
		if json.Unmarshal(raw.Aud, &one) == nil {
			c.Audience = []string{one}
		} else if err := json.Unmarshal(raw.Aud, &c.Audience); err != nil {
			return Claims{}, fmt.Errorf("satoken: aud: %w", err)
		}
	}
	if p.Iat != 0 && p.Exp != 0 {
		c.TTL = time.Duration(p.Exp-p.Iat) * time.Second
	}
	if k := p.Kube; k != nil {
		c.Namespace = k.Namespace
		if k.SA != nil {
			c.ServiceAccount, c.ServiceAccountUID = k.SA.Name, k.SA.UID
		}
		if k.Pod != nil {
			c.PodName, c.PodUID = k.Pod.Name, k.Pod.UID
		}
		if k.Node != nil {
			c.NodeName, c.NodeUID = k.Node.Name, k.Node.UID
		}
		if k.WarnAfter != nil {
			c.WarnAfter = time.Unix(*k.WarnAfter, 0)
		}
	}
	return c, nil
}

func decodePart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func uuid(b []byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
