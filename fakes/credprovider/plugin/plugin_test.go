package plugin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/satoken"
)

// Main's answers, in-process (the suite's proofs exec it for real).
func TestMain_Answers(t *testing.T) {
	in, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	t.Setenv(StateEnv, in.Dir)
	t.Setenv(UsernameEnv, "u")
	iss, _ := satoken.NewIssuer()
	good, _ := iss.Issue(satoken.Claims{Namespace: "n", ServiceAccount: "s", Audience: []string{Audience}})
	wrong, _ := iss.Issue(satoken.Claims{Namespace: "n", ServiceAccount: "s", Audience: []string{"other"}})
	req := func(v, image, tok string, ann string) string {
		s := `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/` + v + `","image":"` + image + `"`
		if tok != "" {
			s += `,"serviceAccountToken":"` + tok + `"`
		}
		if ann != "" {
			s += `,"serviceAccountAnnotations":{"` + ann + `":"x"}`
		}
		return s + "}"
	}
	img := Registry + "/team/app"
	for _, tc := range []struct {
		name, stdin string
		args        []string
		exit        int
		stdout      string // substring
	}{
		{"in scope", req("v1", img, "", ""), []string{"--password-prefix=p-"}, 0, `"username":"u","password":"p-pw-`},
		{"v1beta1 answered in kind", req("v1beta1", img, "", ""), nil, 0, `"apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1"`},
		{"out of scope", req("v1", "elsewhere.test/x", "", ""), nil, 0, `"cacheDuration":"0s"`},
		{"expired lifetime", req("v1", Registry+"/p07/expired", "", ""), nil, 0, `"cacheDuration":"0s"`},
		{"token", req("v1", img, good, RoleAnnotation), nil, 0, `"auth"`},
		{"token without annotation", req("v1", img, good, ""), nil, 1, ""},
		{"wrong audience", req("v1", img, wrong, RoleAnnotation), nil, 1, ""},
		{"unknown version", req("v9", img, "", ""), nil, 1, ""},
		{"empty image", req("v1", "", "", ""), nil, 1, ""},
		{"empty stdin", "", nil, 1, ""},
		{"unknown arg", req("v1", img, "", ""), []string{"--nope"}, 1, ""},
		{"unknown request field", strings.TrimSuffix(req("v1", img, "", ""), "}") + `,"bogus":1}`, nil, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(tc.args, strings.NewReader(tc.stdin), &out, &errb)
			if code != tc.exit || !strings.Contains(out.String(), tc.stdout) {
				t.Fatalf("exit %d stdout %q stderr %q; want exit %d and %q", code, out.String(), errb.String(), tc.exit, tc.stdout)
			}
			if code != 0 && (out.Len() > 0 || errb.Len() == 0) {
				t.Fatalf("a failure must write stderr only: stdout %q stderr %q", out.String(), errb.String())
			}
		})
	}
	t.Run("rules and arm", func(t *testing.T) {
		if err := in.SetRules([]Rule{{Image: "scripted.test/x", Stdout: "garbage", Exit: 3}}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if code := Main(nil, strings.NewReader(req("v1", "scripted.test/x", "", "")), &out, io.Discard); code != 3 || out.String() != "garbage" {
			t.Fatalf("rule: exit %d stdout %q", code, out.String())
		}
		if err := in.Arm(faults.CPWrongKind); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		Main(nil, strings.NewReader(req("v1", img, "", "")), &out, io.Discard)
		if !strings.Contains(out.String(), `"kind":"CredentialProviderRequest"`) {
			t.Fatalf("armed cp-wrong-kind: %s", out.String())
		}
		if err := in.Arm("no-such-fault"); err == nil {
			t.Fatal("arming an unknown fault succeeded")
		}
	})
}

func TestAWS(t *testing.T) {
	t.Parallel()
	iss, _ := satoken.NewIssuer()
	a := StartAWS(func(_ context.Context, tok, aud string) error {
		c, err := iss.Verify(tok)
		if err == nil && !AudienceIn(c.Audience, aud) {
			err = errors.New("wrong audience")
		}
		return err
	})
	defer a.Close()
	ecr := func(auth string) (*http.Response, map[string]any) {
		r, _ := http.NewRequest("POST", a.URL, strings.NewReader("{}"))
		r.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}
	resp, m := ecr("AWS4-HMAC-SHA256 Credential=AKIAX/20261202/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=00")
	data, _ := m["authorizationData"].([]any)
	if resp.StatusCode != 200 || len(data) != 1 {
		t.Fatalf("GetAuthorizationToken: %d %v", resp.StatusCode, m)
	}
	tok, _ := base64.StdEncoding.DecodeString(data[0].(map[string]any)["authorizationToken"].(string))
	if !strings.HasPrefix(string(tok), "AWS:ecr-AKIAX-") {
		t.Fatalf("token %q", tok)
	}
	if resp, _ := ecr(""); resp.StatusCode != 403 {
		t.Fatalf("unsigned request: %d", resp.StatusCode)
	}
	sts := func(tok string) (int, string) {
		resp, err := http.PostForm(a.URL, url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "RoleArn": {"arn:aws:iam::1:role/r"}, "WebIdentityToken": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	good, _ := iss.Issue(satoken.Claims{Namespace: "n", ServiceAccount: "s", Audience: []string{AWSAudience}})
	bad, _ := iss.Issue(satoken.Claims{Namespace: "n", ServiceAccount: "s", Audience: []string{"x"}})
	if code, body := sts(good); code != 200 || !strings.Contains(body, "<AccessKeyId>ASIA") {
		t.Fatalf("STS good token: %d %s", code, body)
	}
	if code, body := sts(bad); code != 400 || !strings.Contains(body, "InvalidIdentityToken") {
		t.Fatalf("STS wrong audience: %d %s", code, body)
	}
	if a.Calls("sts:AssumeRoleWithWebIdentity") != 2 || a.Calls("ecr:GetAuthorizationToken") != 2 {
		t.Fatalf("calls: %v", a.calls)
	}
}
