package plugin

// A loopback stand-in for the GCE metadata server, so that the success path
// of the kubelet's e2e test plugin (k8s.io/kubernetes
// test/e2e_node/plugins/gcp-credential-provider) runs offline. That plugin
// GETs a hard-coded http://metadata.google.internal./computeMetadata/... URL
// with Go's default transport, which honours HTTP_PROXY: the fake is that
// proxy, answering the one metadata request itself (it never forwards
// anything anywhere).

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
)

// GCE metadata facts the gcp-credential-provider contract relies on.
const (
	// GCEMetadataHost is the metadata server's name (with and without the
	// trailing dot the plugin uses).
	GCEMetadataHost = "metadata.google.internal"
	// GCETokenPath is the default service account's access token.
	GCETokenPath = "/computeMetadata/v1/instance/service-accounts/default/token"
	// GCETokenPrefix starts every access token the fake issues.
	GCETokenPrefix = "ya29.gauntlet-"
)

// GCE is the running fake.
type GCE struct {
	URL   string
	srv   *httptest.Server
	calls atomic.Int64
}

// StartGCE serves the fake on a loopback port.
func StartGCE() *GCE {
	g := &GCE{}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	g.URL = g.srv.URL
	return g
}

// Env points a plugin's HTTP client at the fake (as its proxy), and nothing
// else anywhere: every other host is refused by the fake.
func (g *GCE) Env() []string {
	return []string{"HTTP_PROXY=" + g.URL, "http_proxy=" + g.URL, "NO_PROXY=", "no_proxy="}
}

// Calls counts token requests served.
func (g *GCE) Calls() int { return int(g.calls.Load()) }

// Close stops the server.
func (g *GCE) Close() { g.srv.Close() }

func (g *GCE) serve(w http.ResponseWriter, r *http.Request) {
	host := strings.TrimSuffix(r.URL.Hostname(), ".")
	switch {
	case host != GCEMetadataHost:
		// A proxied request for any other host, or a direct one.
		http.Error(w, "gauntlet fake GCE metadata: only "+GCEMetadataHost+" is served", http.StatusForbidden)
	case r.URL.Path != GCETokenPath || r.Method != http.MethodGet:
		http.NotFound(w, r)
	case r.Header.Get("Metadata-Flavor") != "Google":
		// The real server's answer to a request without the header.
		http.Error(w, "Missing required header: Metadata-Flavor", http.StatusForbidden)
	default:
		n := g.calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Metadata-Flavor", "Google")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": GCETokenPrefix + randHex(4) + "-" + strconv.FormatInt(n, 10),
			"expires_in":   3599, "token_type": "Bearer",
		})
	}
}
