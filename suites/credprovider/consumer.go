package credprovider

// The consumer side (K and S checks): the suite drives a credential
// provider consumer (the kubelet's plugin manager and cache, or anything
// that execs plugins for pulls) through scenarios. A scenario is one
// CredentialProviderConfig whose providers are all the recording probe
// plugin (fakes/credprovider/probe) under their configured names, with a
// script per provider; the suite asks the consumer for the credentials of
// pulls (image, pod, service account) and judges what the consumer
// returned, in order, against what the probe recorded of each invocation.
//
// Line protocol. A consumer is reached through ConsumerSettings.Dial, one
// connection per scenario (the kubelet package registers providers into a
// process-global list, so a command consumer is one process per scenario).
// Both directions carry JSON objects, one per line; the messages are
// internal/credwire's (Request, Answer, TokenCallback, with examples). The
// suite sends "configure" (the config path, the bin dir, "env") and then
// "pull" requests and waits for the answer of each.
//
// "env" is the host environment the consumer's plugins inherit (the
// provider's configured env must still win). "serviceAccount" is absent for
// a pod without one; the consumer takes service-account objects (UID,
// annotations) from the pulls, as it would from the API server. A pull's
// image is as written in the pod spec; "credentials" are the ones the
// consumer would try, in order; "log" is what the consumer reported while
// serving the request (errors naming the plugin and its stderr).
// "concurrent": true starts all pulls of the request at once. While serving
// a request the consumer asks for service-account tokens with a token
// callback (the TokenRequest it would send the API server),
// and the suite answers from its token source (the in-process issuer, or
// TokenRequest on a real API server), caching one token per (pod, service
// account UID, audience) as the kubelet's token manager does. With a real
// API server (a satoken.Binder) the pods and service accounts the checks
// make up are created there before they are pulled as, and the consumer is
// handed the real namespace and UIDs (sc.bound, sc.ns), so every token is
// one the server issued and bound to an object it knows. Closing the
// connection (stdin EOF for a command) ends the scenario; a consumer must
// then stop its plugins.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	configv1 "k8s.io/kubelet/config/v1"
	"sigs.k8s.io/yaml"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/internal/credwire"
	"github.com/gauntlet-conformance/gauntlet/internal/satoken"
	"github.com/gauntlet-conformance/gauntlet/internal/tailbuf"
)

// Consumer features.
const (
	// ConsumerFeatureSATokens: KEP-4412 service-account tokens for
	// providers (tokenAttributes).
	ConsumerFeatureSATokens conformance.Feature = "consumer-sa-tokens"
	// ConsumerFeatureConfigDir: the config path may be a directory.
	ConsumerFeatureConfigDir conformance.Feature = "consumer-config-dir"
)

var consumerFeatures = []conformance.FeatureInfo{
	{Name: ConsumerFeatureSATokens, Doc: "the consumer sends service-account tokens to providers with tokenAttributes and partitions its cache by service account (KEP-4412)"},
	{Name: ConsumerFeatureConfigDir, Doc: "the consumer reads a directory of CredentialProviderConfig files"},
}

// KubeletExecDeadline is the kubelet's fixed plugin deadline
// (pkg/credentialprovider/plugin, execPlugin).
const KubeletExecDeadline = time.Minute

// ConsumerSettings names the consumer under test.
type ConsumerSettings struct {
	// Name is what reports call the consumer.
	Name string
	// Dial opens one scenario's connection (see the line protocol above).
	// nil: the consumer side is not configured and every K/S check errors.
	Dial func(ctx context.Context) (io.ReadWriteCloser, error)
	// ExecDeadline is the consumer's plugin deadline (the kubelet's is
	// KubeletExecDeadline; 0 means that).
	ExecDeadline time.Duration
	// Probe is the executable that runs the probe plugin when
	// GAUNTLET_CREDPROVIDER_PROBE is set (a binary linking
	// fakes/credprovider/probe: the gauntlet CLI, a test binary).
	Probe string
	// Tokens issues service-account tokens (nil: an in-process issuer).
	Tokens satoken.Source
	// WorkDir holds the scenarios' configs, bin dirs and probe records
	// ("" : the system temp dir).
	WorkDir string
}

// ConsumerEnv is the K/S checks' environment.
type ConsumerEnv struct {
	Settings ConsumerSettings
	tokens   satoken.Source
	binder   satoken.Binder // tokens, when it is a real API server
	dir      string
	seq      atomic.Int64

	boundMu sync.Mutex
	bound   map[string]pod    // a check's pod (ns/name/uid) -> as the consumer was handed it
	nsOf    map[string]string // a check's namespace -> the real one

	mu   sync.Mutex
	live map[*scenario]bool
}

func setupConsumer(ctx context.Context, s ConsumerSettings, e *Env) error {
	if s.Dial == nil {
		return nil // checks report the missing consumer themselves
	}
	if s.ExecDeadline <= 0 {
		s.ExecDeadline = KubeletExecDeadline
	}
	if s.Probe == "" {
		return errors.New("credprovider consumer: no probe plugin executable configured (ConsumerSettings.Probe)")
	}
	if _, err := os.Stat(s.Probe); err != nil {
		return fmt.Errorf("credprovider consumer: probe plugin executable: %w", err)
	}
	c := &ConsumerEnv{Settings: s, tokens: s.Tokens, live: map[*scenario]bool{}, bound: map[string]pod{}, nsOf: map[string]string{}}
	if c.tokens == nil {
		iss, err := satoken.NewIssuer()
		if err != nil {
			return err
		}
		c.tokens = iss
	}
	c.binder, _ = c.tokens.(satoken.Binder)
	dir, err := os.MkdirTemp(s.WorkDir, "gauntlet-credprovider-consumer-")
	if err != nil {
		return fmt.Errorf("credprovider consumer: work dir: %w", err)
	}
	c.dir = dir
	e.Consumer = c
	// One trivial scenario, so that an unreachable or broken consumer is
	// one setup error naming it, not an error per check.
	sc, err := c.open(ctx, scenarioSpec{providers: []configv1.CredentialProvider{provider("smoke", []string{"smoke.gauntlet.test"})}})
	if err != nil {
		err = errors.Join(fmt.Errorf("credprovider consumer %s: %w", s.Name, err), teardownConsumer(ctx, e))
		e.Consumer = nil
		return err
	}
	sc.close()
	return nil
}

func teardownConsumer(ctx context.Context, e *Env) error {
	c := e.Consumer
	if c == nil {
		return nil
	}
	c.mu.Lock()
	open := make([]*scenario, 0, len(c.live))
	for sc := range c.live {
		open = append(open, sc)
	}
	c.mu.Unlock()
	for _, sc := range open {
		sc.close()
	}
	// Removing the records also ends any probe still hanging.
	return os.RemoveAll(c.dir)
}

func (e *Env) consumerTargetName() string {
	if e.Consumer != nil && e.Consumer.Settings.Name != "" {
		return e.Consumer.Settings.Name
	}
	return e.Target.Name
}

// consumer returns the consumer env, or the setup error of a run without one.
func (e *Env) consumer() (*ConsumerEnv, error) {
	if e.Consumer == nil {
		return nil, conformance.Setupf("no credential provider consumer configured (--consumer)")
	}
	return e.Consumer, nil
}

// CommandDial runs argv once per scenario and speaks the line protocol on
// its stdin/stdout; env is added to the command's environment. Its stderr is
// kept (the tail is quoted in errors).
func CommandDial(argv []string, env []string) func(ctx context.Context) (io.ReadWriteCloser, error) {
	return func(ctx context.Context) (io.ReadWriteCloser, error) {
		if len(argv) == 0 {
			return nil, errors.New("empty consumer command")
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), env...)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		tail := tailbuf.New(8 << 10)
		cmd.Stderr = tail
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start consumer %s: %w", argv[0], err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		return &commandConn{Reader: stdout, stdin: stdin, cmd: cmd, exited: exited, stderr: tail}, nil
	}
}

type commandConn struct {
	io.Reader
	stdin  io.WriteCloser
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *tailbuf.Buffer
	once   sync.Once
}

func (c *commandConn) Write(p []byte) (int, error) { return c.stdin.Write(p) }

// Close ends the scenario: stdin EOF, then a kill if the consumer does not
// exit within 3 s.
func (c *commandConn) Close() error {
	c.once.Do(func() {
		_ = c.stdin.Close()
		select {
		case <-c.exited:
		case <-time.After(3 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	})
	return nil
}

// diagnostics is the consumer's stderr tail. A consumer that just closed
// the connection is usually exiting: give it a moment, so its last words
// (Wait returns once stderr is copied) are in the tail.
func (c *commandConn) diagnostics() string {
	select {
	case <-c.exited:
	case <-time.After(time.Second):
	}
	return c.stderr.String()
}

// Short names for the wire formats (internal/credwire) the checks use.
type (
	serviceAccount = credwire.ServiceAccount
	credential     = credwire.Credential
	probeScript    = credwire.ProbeScript
	probeResponse  = credwire.ProbeResponse
	probeRecord    = credwire.ProbeRecord
)

// pod is who pulls: a pod and its service account (nil: none).
type pod struct {
	Namespace, Name, UID string
	SA                   *serviceAccount
}

func newUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newPod makes a pod (a fresh UID) in ns using sa (may be nil).
func newPod(ns, name string, sa *serviceAccount) pod {
	return pod{Namespace: ns, Name: name, UID: newUID(), SA: sa}
}

// newSA makes a service account (a fresh UID) with annotations.
func newSA(name string, annotations map[string]string) *serviceAccount {
	return &serviceAccount{Name: name, UID: newUID(), Annotations: annotations}
}

// scenarioSpec describes one scenario.
type scenarioSpec struct {
	// providers are written as one config file (unless files is set).
	providers []configv1.CredentialProvider
	// files, when set, are the config verbatim: one file is the config
	// path, several (or dir) make the path a directory of them.
	files map[string]string
	dir   bool
	// scripts by provider name; a provider without one answers okResponse.
	scripts map[string]probeScript
	// probes are extra provider names to install the probe as (configs
	// in files name their own).
	probes []string
	// hostEnv is the consumer's own environment for its plugins.
	hostEnv []string
}

// scenario is one open connection with its files.
type scenario struct {
	c      *ConsumerEnv
	dir    string
	binDir string
	state  string
	conn   io.ReadWriteCloser
	enc    *json.Encoder
	name   string

	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan credwire.Answer
	readErr error
	done    chan struct{}
	once    sync.Once

	tokMu    sync.Mutex
	tokens   map[string]string
	tokenReq []credwire.TokenCallback

	// slowScripts: some probe is scripted to sleep or hang, so a plugin
	// deadline in the consumer's log is part of the check.
	slowScripts bool
}

// configError is the consumer's rejection of a scenario's config.
type configError struct{ msg string }

func (e *configError) Error() string { return "the consumer rejected the config: " + e.msg }

// okResponse: credentials for the requested image, cached by image for an hour.
func okResponse() probeResponse {
	return probeResponse{CacheKeyType: "Image", CacheDuration: ptr("1h"),
		Auth: map[string]credential{"{image}": {Username: "{name}", Password: "{name}-{n}"}}}
}

func ptr[T any](v T) *T { return &v }

// provider is a v1 provider with a one-hour default cache duration.
func provider(name string, match []string) configv1.CredentialProvider {
	return configv1.CredentialProvider{Name: name, MatchImages: match, APIVersion: "credentialprovider.kubelet.k8s.io/v1",
		DefaultCacheDuration: ptrDuration(time.Hour)}
}

// open writes a scenario's files, dials the consumer and configures it. A
// config the consumer rejects is a *configError; anything else is a setup
// error.
func (c *ConsumerEnv) open(ctx context.Context, spec scenarioSpec) (*scenario, error) {
	n := c.seq.Add(1)
	dir := filepath.Join(c.dir, fmt.Sprintf("s%03d", n))
	sc := &scenario{c: c, dir: dir, binDir: filepath.Join(dir, "bin"), state: filepath.Join(dir, "probe"),
		waiting: map[int64]chan credwire.Answer{}, done: make(chan struct{}), tokens: map[string]string{}}
	for _, d := range []string{sc.binDir, sc.state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	names := append([]string(nil), spec.probes...)
	for _, p := range spec.providers {
		names = append(names, p.Name)
	}
	for _, name := range names {
		script, ok := spec.scripts[name]
		if !ok {
			script = probeScript{Responses: []probeResponse{okResponse()}}
		}
		if err := sc.installProbe(name, script); err != nil {
			return nil, err
		}
	}
	configPath := filepath.Join(dir, "config.yaml")
	switch {
	case spec.files != nil && (spec.dir || len(spec.files) > 1):
		configPath = filepath.Join(dir, "config.d")
		if err := os.MkdirAll(configPath, 0o755); err != nil {
			return nil, err
		}
		for name, body := range spec.files {
			if err := os.WriteFile(filepath.Join(configPath, name), []byte(body), 0o644); err != nil {
				return nil, err
			}
		}
	case spec.files != nil:
		for name, body := range spec.files {
			configPath = filepath.Join(dir, name)
			if err := os.WriteFile(configPath, []byte(body), 0o644); err != nil {
				return nil, err
			}
		}
	default:
		b, err := configYAML(spec.providers)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(configPath, b, 0o644); err != nil {
			return nil, err
		}
	}
	conn, err := c.Settings.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to the consumer: %w", err)
	}
	sc.conn, sc.enc = conn, json.NewEncoder(conn)
	c.mu.Lock()
	c.live[sc] = true
	c.mu.Unlock()
	go sc.read()
	a, err := sc.call(ctx, credwire.Request{Op: "configure", Config: configPath, BinDir: sc.binDir, Env: spec.hostEnv})
	if err != nil {
		sc.close()
		return nil, err
	}
	if a.Error != "" {
		sc.close()
		return nil, &configError{msg: a.Error}
	}
	sc.name = a.Name
	return sc, nil
}

func ptrDuration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// configYAML renders a kubelet.config.k8s.io/v1 CredentialProviderConfig.
func configYAML(ps []configv1.CredentialProvider) ([]byte, error) {
	c := configv1.CredentialProviderConfig{Providers: ps}
	c.APIVersion, c.Kind = "kubelet.config.k8s.io/v1", "CredentialProviderConfig"
	return yaml.Marshal(c)
}

// installProbe writes the wrapper that runs the probe as name, and its script.
func (sc *scenario) installProbe(name string, script probeScript) error {
	for _, r := range script.Responses {
		if r.Sleep != "" || r.Hang || r.HangChild {
			sc.slowScripts = true
		}
	}
	prefix := filepath.Join(sc.state, filepath.Base(name))
	b, err := json.Marshal(script)
	if err != nil {
		return err
	}
	if err := os.WriteFile(prefix+".script.json", b, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(prefix+".records.jsonl", nil, 0o644); err != nil {
		return err
	}
	path := filepath.Join(sc.binDir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nGAUNTLET_CREDPROVIDER_PROBE=%s exec %s \"$@\"\n", shellQuote(prefix), shellQuote(sc.c.Settings.Probe))
	return os.WriteFile(path, []byte(wrapper), 0o755)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// read dispatches answers to callers and answers token callbacks.
func (sc *scenario) read() {
	in := bufio.NewReader(sc.conn)
	var err error
	for {
		var line []byte
		line, err = in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var a credwire.ConsumerLine
			if jerr := json.Unmarshal(line, &a); jerr != nil {
				err = fmt.Errorf("the consumer wrote a line that is not protocol JSON: %v: %q", jerr, conformance.FirstLine(string(line), 200))
				break
			}
			if a.Callback == "token" {
				go sc.answerToken(a.TokenCallback)
				continue
			}
			sc.mu.Lock()
			ch := sc.waiting[a.ID]
			delete(sc.waiting, a.ID)
			sc.mu.Unlock()
			if ch != nil {
				ch <- a.Answer
			}
		}
		if err != nil {
			break
		}
	}
	if err == io.EOF {
		err = errors.New("the consumer closed the connection")
	}
	sc.mu.Lock()
	sc.readErr = err
	sc.mu.Unlock()
	close(sc.done)
}

func (sc *scenario) send(r credwire.Request) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.enc.Encode(r)
}

// call sends a request and waits for its answer, the context's deadline or
// the connection's end.
func (sc *scenario) call(ctx context.Context, r credwire.Request) (credwire.Answer, error) {
	ch := make(chan credwire.Answer, 1)
	sc.mu.Lock()
	sc.nextID++
	r.ID = sc.nextID
	sc.waiting[r.ID] = ch
	sc.mu.Unlock()
	if err := sc.send(r); err != nil {
		return credwire.Answer{}, fmt.Errorf("write to the consumer: %w%s", err, sc.diagnostics())
	}
	select {
	case a := <-ch:
		return a, nil
	case <-sc.done:
		sc.mu.Lock()
		err := sc.readErr
		sc.mu.Unlock()
		return credwire.Answer{}, fmt.Errorf("%s: %w%s", r.Op, err, sc.diagnostics())
	case <-ctx.Done():
		return credwire.Answer{}, fmt.Errorf("the consumer did not answer %s: %w", r.Op, context.Cause(ctx))
	}
}

func (sc *scenario) diagnostics() string {
	if d, ok := sc.conn.(interface{ diagnostics() string }); ok {
		if s := strings.TrimSpace(d.diagnostics()); s != "" {
			return "; consumer stderr: " + conformance.FirstLine(lastLines(s, 3), 600)
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// answerToken mints (or reuses) the token a consumer asked for.
func (sc *scenario) answerToken(a credwire.TokenCallback) {
	rep := credwire.Request{CID: a.CID}
	key := strings.Join(append([]string{a.Namespace, a.ServiceAccount, a.ServiceAccountUID, a.BoundKind, a.BoundName, a.BoundUID}, a.Audiences...), "\x00")
	sc.tokMu.Lock()
	sc.tokenReq = append(sc.tokenReq, a)
	tok, ok := sc.tokens[key]
	sc.tokMu.Unlock()
	if !ok {
		cl := satoken.Claims{Namespace: a.Namespace, ServiceAccount: a.ServiceAccount, ServiceAccountUID: a.ServiceAccountUID, Audience: a.Audiences}
		if a.BoundKind == "Pod" {
			cl.PodName, cl.PodUID = a.BoundName, a.BoundUID
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		t, err := sc.c.tokens.Token(ctx, cl)
		cancel()
		if err != nil {
			rep.Error = err.Error()
		} else {
			sc.tokMu.Lock()
			if prev, ok := sc.tokens[key]; ok {
				t = prev
			} else {
				sc.tokens[key] = t
			}
			sc.tokMu.Unlock()
			tok = t
		}
	}
	if rep.Error == "" {
		rep.Token = tok
	}
	_ = sc.send(rep)
}

// bind makes p exist where tokens come from (a no-op for the in-process
// issuer) and returns it as the consumer is to see it: the real namespace,
// and for a pod with a service account the real pod and service account
// UIDs. A pod without one is a static pod: its UID stays the check's.
func (c *ConsumerEnv) bind(ctx context.Context, p pod) (pod, error) {
	if c.binder == nil {
		return p, nil
	}
	sub := satoken.Subject{Namespace: p.Namespace, PodName: p.Name, PodUID: p.UID}
	if p.SA != nil {
		sub.ServiceAccount, sub.ServiceAccountUID, sub.Annotations = p.SA.Name, p.SA.UID, p.SA.Annotations
	}
	got, err := c.binder.Bind(ctx, sub)
	if err != nil {
		return pod{}, fmt.Errorf("create pod %s/%s in the API server (%s): %w", p.Namespace, p.Name, c.tokens.Name(), err)
	}
	b := pod{Namespace: got.Namespace, Name: p.Name, UID: p.UID}
	if p.SA != nil {
		b.UID = got.PodUID
		b.SA = &serviceAccount{Name: p.SA.Name, UID: got.ServiceAccountUID, Annotations: p.SA.Annotations}
	}
	c.boundMu.Lock()
	c.bound[p.Namespace+"/"+p.Name+"/"+p.UID] = b
	c.nsOf[p.Namespace] = got.Namespace
	c.boundMu.Unlock()
	return b, nil
}

// bound is p as the consumer was last handed it (p itself before any pull
// or without a real API server).
func (sc *scenario) bound(p pod) pod {
	sc.c.boundMu.Lock()
	defer sc.c.boundMu.Unlock()
	if b, ok := sc.c.bound[p.Namespace+"/"+p.Name+"/"+p.UID]; ok {
		return b
	}
	return p
}

// ns is the namespace a check named as the consumer was handed it (the
// real, generated one with a real API server, once a pull used it).
func (sc *scenario) ns(name string) string {
	sc.c.boundMu.Lock()
	defer sc.c.boundMu.Unlock()
	if n, ok := sc.c.nsOf[name]; ok {
		return n
	}
	return name
}

// noteTokenReview records in the report whether the token a probe
// invocation received is one the suite handed the consumer and, when the
// token source can review tokens (a real API server's TokenReview), its
// verdict for audience: evidence that the run used real tokens.
func (sc *scenario) noteTokenReview(ctx context.Context, r probeRecord, audience string) {
	if !r.HasToken {
		return
	}
	sc.tokMu.Lock()
	var tok string
	for _, t := range sc.tokens {
		if fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(t))) == r.TokenHash {
			tok = t
		}
	}
	sc.tokMu.Unlock()
	if tok == "" {
		conformance.Note(ctx, "token-review", "the plugin received a token the suite never handed the consumer")
		return
	}
	v, ok := sc.c.tokens.(interface {
		Verify(ctx context.Context, token, audience string) error
	})
	if !ok {
		conformance.Note(ctx, "token-review", "issued by "+sc.c.tokens.Name())
		return
	}
	if err := v.Verify(ctx, tok, audience); err != nil {
		conformance.Note(ctx, "token-review", "not authenticated: "+err.Error())
		return
	}
	conformance.Note(ctx, "token-review", "authenticated for "+audience+" by "+sc.c.tokens.Name())
}

// pullResult is what the consumer answered for one pull.
type pullResult struct {
	Credentials []credential
}

// pullBatch is one pull request's answer.
type pullBatch struct {
	Results []pullResult
	Log     []string
}

// pull asks for the credentials of pulls, one after the other (or all at
// once when concurrent).
func (sc *scenario) pull(ctx context.Context, concurrent bool, images []string, pods ...pod) (pullBatch, error) {
	var r credwire.Request
	r.Op, r.Concurrent = "pull", concurrent
	for i, img := range images {
		p, err := sc.c.bind(ctx, pods[min(i, len(pods)-1)])
		if err != nil {
			return pullBatch{}, err
		}
		r.Pulls = append(r.Pulls, credwire.Pull{Image: img, Namespace: p.Namespace, PodName: p.Name, PodUID: p.UID, ServiceAccount: p.SA})
	}
	a, err := sc.call(ctx, r)
	if err != nil {
		return pullBatch{}, err
	}
	if a.Error != "" {
		return pullBatch{}, fmt.Errorf("the consumer refused the pull request: %s", a.Error)
	}
	if len(a.Results) != len(r.Pulls) {
		return pullBatch{}, fmt.Errorf("the consumer answered %d results for %d pulls", len(a.Results), len(r.Pulls))
	}
	if !sc.slowScripts {
		// Every probe answers at once: a plugin that still hit the
		// consumer's deadline was starved by a busy machine, and "no
		// credentials" or "not cached" would then say nothing about the
		// consumer (a proof could pass on it).
		for _, l := range a.Log {
			if strings.Contains(l, "context deadline exceeded") {
				return pullBatch{}, fmt.Errorf("a plugin that answers at once hit the consumer's exec deadline (the machine is too busy to judge this check): %s", l)
			}
		}
	}
	b := pullBatch{Log: a.Log}
	for _, res := range a.Results {
		b.Results = append(b.Results, pullResult{Credentials: res.Credentials})
	}
	return b, nil
}

// pullOne pulls one image as pod and returns the credentials.
func (sc *scenario) pullOne(ctx context.Context, image string, p pod) ([]credential, error) {
	b, err := sc.pull(ctx, false, []string{image}, p)
	if err != nil {
		return nil, err
	}
	return b.Results[0].Credentials, nil
}

// records returns the probe's invocations as provider name, in order.
func (sc *scenario) records(name string) ([]probeRecord, error) {
	b, err := os.ReadFile(filepath.Join(sc.state, filepath.Base(name)+".records.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("probe records: %w", err)
	}
	var out []probeRecord
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var r probeRecord
		if err := json.Unmarshal(l, &r); err != nil {
			return nil, fmt.Errorf("probe records: %w", err)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].N < out[j].N })
	return out, nil
}

// invocations counts the probe's invocations as name.
func (sc *scenario) invocations(name string) (int, error) {
	r, err := sc.records(name)
	return len(r), err
}

// close ends the scenario (the consumer stops its plugins).
func (sc *scenario) close() {
	sc.once.Do(func() {
		if sc.conn != nil {
			_ = sc.conn.Close()
		}
		sc.c.mu.Lock()
		delete(sc.c.live, sc)
		sc.c.mu.Unlock()
	})
}

// withScenario opens a scenario, runs fn and closes it. A config the
// consumer rejects is a setup error here (the checks that judge
// rejections call open themselves).
func (e *Env) withScenario(ctx context.Context, spec scenarioSpec, fn func(sc *scenario) error) error {
	c, err := e.consumer()
	if err != nil {
		return err
	}
	sc, err := c.open(ctx, spec)
	if err != nil {
		return conformance.Setupf("%v", err)
	}
	defer sc.close()
	return fn(sc)
}
