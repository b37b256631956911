package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/suites/authz/probe"
)

func TestDecodeReview(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body, user, version string
		ok                        bool
	}{
		{"v1", `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"u","groups":["g"],"extra":{"k":["v"]}}}`, "u", v1, true},
		{"v1beta1 spells groups in the singular", `{"apiVersion":"authorization.k8s.io/v1beta1","kind":"SubjectAccessReview","spec":{"group":["g"]}}`, "", v1beta1, true},
		{"wrong kind", `{"apiVersion":"authorization.k8s.io/v1","kind":"TokenReview","spec":{"user":"u"}}`, "", "", false},
		{"unknown version", `{"apiVersion":"authorization.k8s.io/v2","kind":"SubjectAccessReview","spec":{"user":"u"}}`, "", "", false},
		{"no subject", `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{}}`, "", "", false},
		{"not json", `{"apiVersion":`, "", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			user, _, version, err := decodeReview([]byte(c.body))
			if (err == nil) != c.ok || user != c.user || version != c.version {
				t.Errorf("decodeReview = %q, %q, %v; want %q, %q, ok=%t", user, version, err, c.user, c.version, c.ok)
			}
		})
	}
}

// TestProbeAnswers: each scripted answer on the wire, and the recording.
func TestProbeAnswers(t *testing.T) {
	t.Parallel()
	p, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	timing := probe.Timing{Timeout: 200 * time.Millisecond, SlowBy: 300 * time.Millisecond}
	w := StartWebhook("authz-x", false, p, timing)
	defer w.Close()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: p.ClientTLS()}}
	cases := []struct {
		answer      probe.Answer
		code        int
		allowed     bool
		denied      bool
		minDuration time.Duration
	}{
		{probe.Allow, 200, true, false, 0},
		{probe.Deny, 200, false, true, 0},
		{probe.NoOpinion, 200, false, false, 0},
		{probe.Both, 200, true, true, 0},
		{probe.Error, 400, false, false, 0},
		{probe.Malformed, 200, false, false, 0},
		{probe.Slow, 200, false, false, timing.SlowBy},
	}
	for _, c := range cases {
		user := "u-" + string(c.answer)
		body, _ := json.Marshal(map[string]any{"apiVersion": v1, "kind": sarKind,
			"spec": map[string]any{"user": user, "extra": map[string][]string{probe.ScriptKey("authz-x"): {string(c.answer)}}}})
		start := time.Now()
		resp, err := client.Post(w.URL(), "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", c.answer, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || time.Since(start) < c.minDuration {
			t.Errorf("%s: HTTP %d after %s, want %d after at least %s", c.answer, resp.StatusCode, time.Since(start), c.code, c.minDuration)
		}
		var a reviewAnswer
		decodeErr := json.Unmarshal(b, &a)
		if c.answer == probe.Malformed {
			if decodeErr == nil {
				t.Errorf("malformed: the body decodes: %s", b)
			}
		} else if c.code == 200 && (decodeErr != nil || a.Status.Allowed != c.allowed || a.Status.Denied != c.denied || a.APIVersion != v1) {
			t.Errorf("%s: answer %s (%v)", c.answer, b, decodeErr)
		}
		if n := len(w.Calls(user)); n != 1 {
			t.Errorf("%s: recorded %d calls, want 1", c.answer, n)
		}
	}
	// Without the client certificate the probe refuses the connection.
	bare := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: p.ClientTLS().Clone()}}
	bare.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
	if resp, err := bare.Post(w.URL(), "application/json", bytes.NewReader(nil)); err == nil {
		resp.Body.Close()
		t.Errorf("a client without certificate got HTTP %d", resp.StatusCode)
	}
}

// TestServe: the daemon publishes its state and configuration, and removes
// the state when it stops.
func TestServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, dir, probe.DefaultTiming) }()
	var st probe.State
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if st, err = probe.ReadState(dir); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no state within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(st.Chain) != len(probe.Chain) || st.Reference.URL == "" {
		t.Errorf("state %+v", st)
	}
	if _, err := os.Stat(st.ConfigFile); err != nil {
		t.Error(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, probe.StateFile)); !os.IsNotExist(err) {
		t.Errorf("state file left after stop: %v", err)
	}
}
