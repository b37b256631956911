package satoken

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestIssueDecodeVerify(t *testing.T) {
	t.Parallel()
	iss, err := NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	in := Claims{Namespace: "ns1", ServiceAccount: "sa1", ServiceAccountUID: "u-sa", PodName: "p1", PodUID: "u-p",
		NodeName: "n1", NodeUID: "u-n", Audience: []string{"aud-a", "aud-b"}, TTL: 10 * time.Minute}
	tok, err := iss.Token(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	c, err := iss.Verify(tok)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if c.Namespace != "ns1" || c.ServiceAccount != "sa1" || c.ServiceAccountUID != "u-sa" || c.PodName != "p1" ||
		c.PodUID != "u-p" || c.NodeName != "n1" || strings.Join(c.Audience, ",") != "aud-a,aud-b" ||
		c.TTL != 10*time.Minute || c.Subject != "system:serviceaccount:ns1:sa1" || c.Issuer != DefaultIssuer || c.ID == "" {
		t.Fatalf("claims round trip: %+v", c)
	}
	// The kube-apiserver claim structure, literally.
	var raw map[string]any
	b, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	k := raw["kubernetes.io"].(map[string]any)
	if k["namespace"] != "ns1" || k["pod"].(map[string]any)["uid"] != "u-p" || k["serviceaccount"].(map[string]any)["name"] != "sa1" {
		t.Fatalf("kubernetes.io claim: %v", k)
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	iss, _ := NewIssuer()
	other, _ := NewIssuer()
	good, _ := iss.Issue(Claims{Namespace: "n", ServiceAccount: "s", Audience: []string{"a"}})
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"x","exp":9999999999}`)) + "." + parts[2]
	expiredIss, _ := NewIssuer()
	expiredIss.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expired, _ := expiredIss.Issue(Claims{Namespace: "n", ServiceAccount: "s", Audience: []string{"a"}})
	for _, tc := range []struct {
		name, tok string
		by        *Issuer
		want      string
	}{
		{"other key", good, other, "signature"},
		{"tampered", tampered, iss, "signature"},
		{"garbage", "abc", iss, "compact JWS"},
		{"expired", expired, expiredIss, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			by := tc.by
			if tc.name == "expired" {
				by = &Issuer{URL: by.URL, key: by.key, kid: by.kid, now: time.Now}
			}
			if _, err := by.Verify(tc.tok); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestIssueRequires(t *testing.T) {
	t.Parallel()
	iss, _ := NewIssuer()
	for _, c := range []Claims{{ServiceAccount: "s", Audience: []string{"a"}}, {Namespace: "n", Audience: []string{"a"}}, {Namespace: "n", ServiceAccount: "s"}} {
		if _, err := iss.Issue(c); err == nil {
			t.Errorf("Issue(%+v) succeeded", c)
		}
	}
}

func TestDecodeStringAudience(t *testing.T) {
	t.Parallel()
	p := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"single","iss":"i","exp":2,"iat":1}`))
	c, err := Decode("e30." + p + ".sig")
	if err != nil || len(c.Audience) != 1 || c.Audience[0] != "single" || c.TTL != time.Second {
		t.Fatalf("Decode = %+v, %v", c, err)
	}
}

// Decode reads tokens from plugins and consumers under test: it must never
// panic, whatever it is given.
func FuzzDecode(f *testing.F) {
	iss, _ := NewIssuer()
	tok, _ := iss.Issue(Claims{Namespace: "n", ServiceAccount: "s", Audience: []string{"a"}, PodName: "p"})
	for _, s := range []string{tok, "", "a.b.c", "e30.e30.", "x.eyJhdWQiOjF9.y", "..", strings.Repeat(".", 10)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = Decode(s)
		_, _ = iss.Verify(s)
	})
}
