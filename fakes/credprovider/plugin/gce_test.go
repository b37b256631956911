package plugin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The fake GCE metadata server answers the plugin's one request when it is
// used as the HTTP proxy, as the real metadata server would, and refuses
// every other host, path and a request without Metadata-Flavor.
func TestGCEMetadataProxy(t *testing.T) {
	t.Parallel()
	g := StartGCE()
	defer g.Close()
	proxy, err := url.Parse(g.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	for _, c := range []struct {
		name, url string
		flavor    bool
		code      int
	}{
		{"token", "http://metadata.google.internal." + GCETokenPath, true, 200},
		{"token-no-dot", "http://metadata.google.internal" + GCETokenPath, true, 200},
		{"no-flavor", "http://metadata.google.internal." + GCETokenPath, false, 403},
		{"other-path", "http://metadata.google.internal./computeMetadata/v1/project/project-id", true, 404},
		{"other-host", "http://registry.gauntlet.test" + GCETokenPath, true, 403},
	} {
		req, _ := http.NewRequest("GET", c.url, nil)
		if c.flavor {
			req.Header.Set("Metadata-Flavor", "Google")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var body struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.code)
		}
		if c.code == 200 && !strings.HasPrefix(body.AccessToken, GCETokenPrefix) {
			t.Errorf("%s: access token %q", c.name, body.AccessToken)
		}
	}
	if g.Calls() != 2 {
		t.Errorf("%d tokens served, want 2", g.Calls())
	}
	if env := strings.Join(g.Env(), " "); !strings.Contains(env, "HTTP_PROXY="+g.URL) {
		t.Errorf("env %q does not name the fake as the proxy", env)
	}
}
