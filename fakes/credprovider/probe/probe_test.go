package probe

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gauntlet-conformance/gauntlet/internal/credwire"
)

func TestMainRecordsAndAnswers(t *testing.T) {
	t.Parallel()
	prefix := filepath.Join(t.TempDir(), "prov")
	dur := "0s"
	script := credwire.ProbeScript{Responses: []credwire.ProbeResponse{
		{CacheKeyType: "Image", CacheDuration: &dur, Auth: map[string]credwire.Credential{"{image}": {Username: "{name}", Password: "{name}-{n}"}}},
		{ExitCode: 1, Stderr: "boom {n}"},
	}}
	b, _ := json.Marshal(script)
	if err := os.WriteFile(prefix+".script.json", b, 0o644); err != nil {
		t.Fatal(err)
	}
	req := `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"reg.test/app","serviceAccountToken":"not-a-jwt"}`
	var out, errb bytes.Buffer
	if rc := Main(prefix, []string{"--a"}, strings.NewReader(req), &out, &errb); rc != 0 {
		t.Fatalf("rc %d, stderr %q", rc, errb.String())
	}
	var resp map[string]any
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		t.Fatalf("stdout is not one JSON document: %q", out.String())
	}
	if resp["apiVersion"] != "credentialprovider.kubelet.k8s.io/v1" || resp["cacheDuration"] != "0s" ||
		!strings.Contains(out.String(), `"reg.test/app":{"username":"prov","password":"prov-1"}`) {
		t.Errorf("response %s", out.String())
	}
	out.Reset()
	errb.Reset()
	// A non-zero exit still writes the scripted document (what a lax
	// consumer would wrongly use).
	if rc := Main(prefix, nil, strings.NewReader(req), &out, &errb); rc != 1 || errb.String() != "boom 2" || !strings.Contains(out.String(), "CredentialProviderResponse") {
		t.Errorf("second answer: rc %d stdout %q stderr %q", rc, out.String(), errb.String())
	}
	recs, err := os.ReadFile(prefix + ".records.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(recs), "not-a-jwt") {
		t.Errorf("the records hold the raw token: %s", recs)
	}
	var r credwire.ProbeRecord
	if err := json.Unmarshal(bytes.SplitN(recs, []byte("\n"), 2)[0], &r); err != nil {
		t.Fatal(err)
	}
	if r.N != 1 || r.Image != "reg.test/app" || !r.HasToken || !strings.HasPrefix(r.TokenHash, "sha256:") || r.Claims == nil || r.Claims.Error == "" || len(r.Args) != 1 {
		t.Errorf("record %+v", r)
	}
}

// Invocation numbers are exact under concurrency.
func TestRecordNumbering(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "r.jsonl")
	var wg sync.WaitGroup
	seen := make(chan int, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := appendRecord(path, &credwire.ProbeRecord{})
			if err != nil {
				t.Error(err)
			}
			seen <- n
		}()
	}
	wg.Wait()
	close(seen)
	got := map[int]bool{}
	for n := range seen {
		got[n] = true
	}
	for n := 1; n <= 20; n++ {
		if !got[n] {
			t.Errorf("no invocation numbered %d: %v", n, got)
		}
	}
}
