package credprovider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	refconsumer "github.com/gauntlet-conformance/gauntlet/fakes/credprovider/consumer"
	"github.com/gauntlet-conformance/gauntlet/fakes/credprovider/probe"
	"github.com/gauntlet-conformance/gauntlet/internal/satoken"
)

// strictBinder plays a real API server for the S checks without one: Bind
// gives subjects a namespace and UIDs of its own (as kubesource does), and
// Token, like TokenRequest, refuses claims that do not name a bound pod
// and service account with exactly their current UIDs. The tokens are the
// in-process issuer's.
type strictBinder struct {
	iss *satoken.Issuer

	mu   sync.Mutex
	ns   map[string]string
	sas  map[string][2]string // real ns/name -> caller's UID, real UID
	ann  map[string]map[string]string
	pods map[string][3]string // real ns/name -> caller's UID, real UID, service account
	toks int
}

func newStrictBinder(t *testing.T) *strictBinder {
	iss, err := satoken.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	return &strictBinder{iss: iss, ns: map[string]string{}, sas: map[string][2]string{},
		ann: map[string]map[string]string{}, pods: map[string][3]string{}}
}

func (b *strictBinder) Name() string { return "strict binder" }

func (b *strictBinder) Bind(_ context.Context, s satoken.Subject) (satoken.Subject, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	uid := func() string { x := make([]byte, 8); _, _ = rand.Read(x); return "real-" + hex.EncodeToString(x) }
	ns, ok := b.ns[s.Namespace]
	if !ok {
		ns = s.Namespace + "-" + uid()[5:11]
		b.ns[s.Namespace] = ns
	}
	got := s
	got.Namespace = ns
	if s.ServiceAccount == "" {
		return got, nil
	}
	k := ns + "/" + s.ServiceAccount
	if sa, ok := b.sas[k]; !ok || sa[0] != s.ServiceAccountUID {
		b.sas[k] = [2]string{s.ServiceAccountUID, uid()}
	}
	b.ann[k] = maps.Clone(s.Annotations)
	got.ServiceAccountUID = b.sas[k][1]
	pk := ns + "/" + s.PodName
	if p, ok := b.pods[pk]; !ok || p[0] != s.PodUID || p[2] != s.ServiceAccount {
		b.pods[pk] = [3]string{s.PodUID, uid(), s.ServiceAccount}
	}
	got.PodUID = b.pods[pk][1]
	return got, nil
}

func (b *strictBinder) Token(ctx context.Context, c satoken.Claims) (string, error) {
	b.mu.Lock()
	sa, saOK := b.sas[c.Namespace+"/"+c.ServiceAccount]
	p, podOK := b.pods[c.Namespace+"/"+c.PodName]
	b.toks++
	b.mu.Unlock()
	switch {
	case !saOK || sa[1] != c.ServiceAccountUID:
		return "", fmt.Errorf("service account %s/%s (uid %q) not found", c.Namespace, c.ServiceAccount, c.ServiceAccountUID)
	case !podOK || p[1] != c.PodUID || p[2] != c.ServiceAccount:
		return "", fmt.Errorf("pod %s/%s (uid %q) running as %s not found", c.Namespace, c.PodName, c.PodUID, c.ServiceAccount)
	}
	return b.iss.Token(ctx, c)
}

// With a token source that only binds tokens to objects it created (a real
// API server, here played by strictBinder), the S checks still pass: pulls
// carry the bound namespace and UIDs, every token the plugin sees is bound
// to them, and the checks judge the real identities. Against the reference
// consumer always, and against the kubelet wrapper when
// GAUNTLET_CREDPROVIDER_KUBELET names it (see TestConsumerChecksOnKubelet).
func TestSChecksWithBoundSubjects(t *testing.T) {
	t.Parallel()
	// A generous plugin deadline for the reference: no S check waits it
	// out, and the package's other tests load the machine.
	ref, err := refconsumer.New(refconsumer.Options{ExecDeadline: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		dial func(ctx context.Context) (io.ReadWriteCloser, error)
	}{
		{"reference", ref.Dial},
		{"kubelet", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.dial == nil {
				bin := os.Getenv("GAUNTLET_CREDPROVIDER_KUBELET")
				if bin == "" {
					t.Skip("GAUNTLET_CREDPROVIDER_KUBELET is not set (the wrapper binary built by hack/credprovider-kubelet/build.sh)")
				}
				c.dial = CommandDial([]string{bin}, nil)
			}
			testBoundSChecks(t, c.dial)
		})
	}
}

func testBoundSChecks(t *testing.T, dial func(ctx context.Context) (io.ReadWriteCloser, error)) {
	ctx := context.Background()
	tgt, err := startReferencePlugin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	exe, err := probe.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b := newStrictBinder(t)
	s := tgt.Settings.(Settings)
	s.Consumer = ConsumerSettings{Name: "consumer", Dial: dial, ExecDeadline: 30 * time.Second, Probe: exe, Tokens: b}
	tgt.Settings = s
	tgt.Features = append(tgt.Features, ConsumerFeatureSATokens)
	isS := func(i conformance.Info) bool { return i.Category() == "S" }
	rep, err := conformance.Run(ctx, Suite, tgt, conformance.RunOptions{Select: isS})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rep.Results {
		if !isS(conformance.Info{ID: r.ID}) {
			continue
		}
		n++
		if r.Status != conformance.Passed {
			t.Errorf("%s: %s: %s", r.Title(), r.Status, r.Message)
		}
		if r.ID == "S01" {
			var notes []string
			for _, o := range r.Notes {
				notes = append(notes, o.Name+"="+o.Value)
			}
			if !slices.ContainsFunc(notes, func(n string) bool { return strings.HasPrefix(n, "token-review=issued by strict binder") }) {
				t.Errorf("S01 notes %q: want the token traced to the binder", notes)
			}
		}
	}
	if n != 14 {
		t.Errorf("%d S checks ran, want 14", n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.toks == 0 {
		t.Error("no token was asked of the binder")
	}
	if len(b.ns) < 10 {
		t.Errorf("%d namespaces bound, want one per S check's namespace", len(b.ns))
	}
}
