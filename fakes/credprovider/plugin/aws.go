package plugin

// A loopback stand-in for the two AWS APIs ecr-credential-provider calls, so
// that its success path runs offline: ECR GetAuthorizationToken (JSON 1.1,
// X-Amz-Target, SigV4 with any keys accepted) and STS
// AssumeRoleWithWebIdentity (query protocol) for the service-account path,
// where the web identity token is verified like a real OIDC trust: by the
// Verify function (issuer key or TokenReview) and the role's audience.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// AWS endpoint facts the ECR contract relies on.
const (
	// AWSAudience is the audience the fake STS trusts (what EKS uses).
	AWSAudience = "sts.amazonaws.com"
	// NodeAccessKey is the node's static identity (env credentials).
	NodeAccessKey = "AKIAGAUNTLETNODE0001"
	// ExpiredRegion answers with an authorization token that expired a
	// minute ago (a skewed clock, or a token cached past its life).
	ExpiredRegion = "eu-west-3"
	// ECRTokenLifetime is ECR's real token lifetime.
	ECRTokenLifetime = 12 * time.Hour
)

// AWS is the running fake.
type AWS struct {
	URL string
	// Verify checks a web identity token for audience (nil: reject all).
	Verify func(ctx context.Context, token, audience string) error

	srv   *httptest.Server
	mu    sync.Mutex
	calls map[string]int
}

var credScope = regexp.MustCompile(`Credential=([A-Za-z0-9]+)/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request`)

// StartAWS serves the fake on a loopback port.
func StartAWS(verify func(ctx context.Context, token, audience string) error) *AWS {
	a := &AWS{Verify: verify, calls: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	a.URL = a.srv.URL
	return a
}

// Env is what points the AWS SDK (v2) at the fake, hermetically.
func (a *AWS) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_ECR=" + a.URL, "AWS_ENDPOINT_URL_STS=" + a.URL,
		"AWS_ACCESS_KEY_ID=" + NodeAccessKey, "AWS_SECRET_ACCESS_KEY=gauntlet-fake-secret",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
	}
}

// Calls counts requests per API.
func (a *AWS) Calls(api string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[api]
}

// Close stops the server.
func (a *AWS) Close() { a.srv.Close() }

func (a *AWS) count(api string) {
	a.mu.Lock()
	a.calls[api]++
	a.mu.Unlock()
}

func (a *AWS) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") == "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" {
		a.count("ecr:GetAuthorizationToken")
		a.ecr(w, r)
		return
	}
	if err := r.ParseForm(); err == nil && r.PostForm.Get("Action") == "AssumeRoleWithWebIdentity" {
		a.count("sts:AssumeRoleWithWebIdentity")
		a.sts(w, r)
		return
	}
	http.Error(w, "gauntlet fake AWS: unsupported request", http.StatusBadRequest)
}

func jsonErr(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func (a *AWS) ecr(w http.ResponseWriter, r *http.Request) {
	m := credScope.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil || m[3] != "ecr" {
		jsonErr(w, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
		return
	}
	key, region := m[1], m[2]
	exp := time.Now().Add(ECRTokenLifetime)
	if region == ExpiredRegion {
		exp = time.Now().Add(-time.Minute)
	}
	pw := "ecr-" + key + "-" + randHex(12)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{{
		"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:" + pw)),
		"expiresAt":          float64(exp.Unix()),
		"proxyEndpoint":      "https://111111111111.dkr.ecr." + region + ".amazonaws.com",
	}}})
}

type stsCreds struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

func (a *AWS) sts(w http.ResponseWriter, r *http.Request) {
	tok, role := r.PostForm.Get("WebIdentityToken"), r.PostForm.Get("RoleArn")
	fail := func(code, msg string) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
			code, xmlEscape(msg), randHex(8))
	}
	if role == "" || tok == "" {
		fail("ValidationError", "RoleArn and WebIdentityToken are required")
		return
	}
	if a.Verify == nil {
		fail("InvalidIdentityToken", "no OIDC provider is trusted")
		return
	}
	if err := a.Verify(r.Context(), tok, AWSAudience); err != nil {
		fail("InvalidIdentityToken", "Incorrect token audience or signature: "+err.Error())
		return
	}
	type result struct {
		XMLName xml.Name `xml:"AssumeRoleWithWebIdentityResponse"`
		NS      string   `xml:"xmlns,attr"`
		Creds   stsCreds `xml:"AssumeRoleWithWebIdentityResult>Credentials"`
		Aud     string   `xml:"AssumeRoleWithWebIdentityResult>Audience"`
		RoleArn string   `xml:"AssumeRoleWithWebIdentityResult>AssumedRoleUser>Arn"`
		RoleID  string   `xml:"AssumeRoleWithWebIdentityResult>AssumedRoleUser>AssumedRoleId"`
		ReqID   string   `xml:"ResponseMetadata>RequestId"`
	}
	out := result{NS: "https://sts.amazonaws.com/doc/2011-06-15/", Aud: AWSAudience, RoleArn: role + "/ecr-credential-provider",
		RoleID: "AROAGAUNTLET:ecr-credential-provider", ReqID: randHex(8),
		Creds: stsCreds{AccessKeyID: "ASIAGAUNTLETROLE" + strings.ToUpper(randHex(2)), SecretAccessKey: randHex(20), SessionToken: randHex(32),
			Expiration: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}}
	w.Header().Set("Content-Type", "text/xml")
	xml.NewEncoder(w).Encode(out)
}

func xmlEscape(s string) string {
	var b []byte
	buf := xmlBuf{&b}
	_ = xml.EscapeText(buf, []byte(s))
	return string(b)
}

type xmlBuf struct{ b *[]byte }

func (x xmlBuf) Write(p []byte) (int, error) { *x.b = append(*x.b, p...); return len(p), nil }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// AudienceIn reports whether aud lists want (for Verify implementations).
func AudienceIn(aud []string, want string) bool { return slices.Contains(aud, want) }
