package kubeapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Claims are what a kube-apiserver service-account token says about itself:
// the registered JWT claims and the private "kubernetes.io" claim that binds
// it to a namespace, service account and (for pod-bound tokens) a pod and
// node.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	ID        string
	IssuedAt  time.Time
	NotBefore time.Time
	Expiry    time.Time

	Namespace          string
	ServiceAccountName string
	ServiceAccountUID  string
	PodName            string
	PodUID             string
	NodeName           string
	NodeUID            string
	// WarnAfter is set on tokens the server extended past the requested
	// lifetime (--service-account-extend-token-expiration).
	WarnAfter time.Time
}

type objectRef struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

type rawClaims struct {
	Iss  string   `json:"iss"`
	Sub  string   `json:"sub"`
	Aud  audience `json:"aud"`
	Jti  string   `json:"jti"`
	Iat  int64    `json:"iat"`
	Nbf  int64    `json:"nbf"`
	Exp  int64    `json:"exp"`
	Kube *struct {
		Namespace      string     `json:"namespace"`
		Pod            *objectRef `json:"pod"`
		Node           *objectRef `json:"node"`
		ServiceAccount *objectRef `json:"serviceaccount"`
		WarnAfter      int64      `json:"warnafter"`
	} `json:"kubernetes.io"`
}

// audience is the JWT "aud" claim: one string or an array of them (RFC 7519
// allows both; the kube-apiserver writes an array).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("aud is neither a string nor an array of strings: %s", b)
	}
	*a = many
	return nil
}

// DecodeClaims reads a token's claims WITHOUT verifying its signature: for
// asserting what the server issued. Verification is ReviewToken's job.
func DecodeClaims(token string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, fmt.Errorf("kubeapi: not a JWS compact token: %d dot-separated parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Claims{}, fmt.Errorf("kubeapi: token payload is not base64url: %w", err)
	}
	var raw rawClaims
	if err := json.Unmarshal(payload, &raw); err != nil {
		return Claims{}, fmt.Errorf("kubeapi: token payload: %w", err)
	}
	c := Claims{
		Issuer:    raw.Iss,
		Subject:   raw.Sub,
		Audience:  raw.Aud,
		ID:        raw.Jti,
		IssuedAt:  unix(raw.Iat),
		NotBefore: unix(raw.Nbf),
		Expiry:    unix(raw.Exp),
	}
	if k := raw.Kube; k != nil {
		c.Namespace = k.Namespace
		c.WarnAfter = unix(k.WarnAfter)
		if k.ServiceAccount != nil {
			c.ServiceAccountName, c.ServiceAccountUID = k.ServiceAccount.Name, k.ServiceAccount.UID
		}
		if k.Pod != nil {
			c.PodName, c.PodUID = k.Pod.Name, k.Pod.UID
		}
		if k.Node != nil {
			c.NodeName, c.NodeUID = k.Node.Name, k.Node.UID
		}
	}
	return c, nil
}

func unix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}
