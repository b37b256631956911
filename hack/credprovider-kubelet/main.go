// Command credprovider-kubelet runs the kubelet's own credential provider
// code (k8s.io/kubernetes/pkg/credentialprovider/plugin: config decoding and
// validation, matchImages, exec, strict decoding, cache, singleflight,
// service-account tokens) as a Gauntlet credprovider consumer target. It
// speaks the consumer line protocol of suites/credprovider (the messages are
// internal/credwire's, the semantics in suites/credprovider/consumer.go): JSON
// lines, requests on stdin, answers and token callbacks on stdout, klog on
// stderr. The plugin package registers providers
// into a process-global list that nothing unregisters, so one process serves
// exactly one scenario (one configure).
//
// The pull path mirrors the kubelet's image manager
// (pkg/kubelet/images/image_manager.go): parsers.ParseImageName, then
// NewExternalCredentialProviderDockerKeyring(ns, pod, podUID, sa).Lookup(repo).
// Service accounts come from each pull (the harness plays the API server);
// tokens are asked of the harness with the TokenRequest the kubelet built.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/credentialprovider/plugin"
	"k8s.io/kubernetes/pkg/util/parsers"

	"github.com/gauntlet-conformance/gauntlet/internal/credwire"
)

// name is what the target calls itself in reports.
const name = "kubelet v1.37.2 (k8s.io/kubernetes/pkg/credentialprovider/plugin)"

type server struct {
	outMu sync.Mutex
	out   *json.Encoder

	mu       sync.Mutex
	sas      map[string]*credwire.ServiceAccount // namespace/name -> the pull's service account
	cid      int64
	waiting  map[int64]chan credwire.Request
	logMu    sync.Mutex
	log      []string
	configed bool
}

func (s *server) send(v any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	_ = s.out.Encode(v)
}

// Write collects klog output: the kubelet reports plugin failures only
// there (provideWithCoordinates logs and returns no credentials).
func (s *server) Write(p []byte) (int, error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if l != "" {
			s.log = append(s.log, l)
		}
	}
	os.Stderr.Write(p)
	return len(p), nil
}

func (s *server) takeLog() []string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	l := s.log
	s.log = nil
	return l
}

func (s *server) getServiceAccount(namespace, name string) (*v1.ServiceAccount, error) {
	s.mu.Lock()
	sa := s.sas[namespace+"/"+name]
	s.mu.Unlock()
	if sa == nil {
		return nil, apierrors.NewNotFound(v1.Resource("serviceaccounts"), name)
	}
	return &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
		UID: types.UID(sa.UID), Annotations: sa.Annotations}}, nil
}

func (s *server) getToken(namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	cb := credwire.TokenCallback{Callback: "token", Namespace: namespace, ServiceAccount: name,
		ServiceAccountUID: string(tr.UID), Audiences: tr.Spec.Audiences}
	if r := tr.Spec.BoundObjectRef; r != nil {
		cb.BoundKind, cb.BoundName, cb.BoundUID = r.Kind, r.Name, string(r.UID)
	}
	if tr.Spec.ExpirationSeconds != nil {
		cb.ExpirationSeconds = *tr.Spec.ExpirationSeconds
	}
	ch := make(chan credwire.Request, 1)
	s.mu.Lock()
	s.cid++
	cb.CID = s.cid
	s.waiting[cb.CID] = ch
	s.mu.Unlock()
	s.send(cb)
	rep, ok := <-ch
	if !ok {
		return nil, errors.New("the harness closed the connection")
	}
	if rep.Error != "" {
		return nil, errors.New(rep.Error)
	}
	out := tr.DeepCopy()
	out.Status.Token = rep.Token
	return out, nil
}

func (s *server) configure(r credwire.Request) credwire.Answer {
	if s.configed {
		return credwire.Answer{ID: r.ID, Error: "one scenario per process: configure was already called"}
	}
	s.configed = true
	// The host environment the kubelet's plugins inherit (it reads
	// os.Environ at each exec).
	for _, kv := range r.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			os.Setenv(k, v)
		}
	}
	err := plugin.RegisterCredentialProviderPlugins(r.Config, r.BinDir, s.getToken, s.getServiceAccount)
	resp := credwire.Answer{ID: r.ID, Name: name, Log: s.takeLog()}
	if err != nil {
		resp.Error = err.Error()
	}
	return resp
}

func (s *server) lookup(p credwire.Pull) credwire.Result {
	// As the kubelet's image manager: the keyring is asked for the
	// repository (normalized, no tag or digest).
	repo, _, _, err := parsers.ParseImageName(p.Image)
	if err != nil {
		klog.ErrorS(err, "Failed to parse image name", "image", p.Image)
		return credwire.Result{Credentials: []credwire.Credential{}}
	}
	saName := ""
	if p.ServiceAccount != nil {
		saName = p.ServiceAccount.Name
	}
	kr := plugin.NewExternalCredentialProviderDockerKeyring(p.Namespace, p.PodName, p.PodUID, saName)
	creds, _ := kr.Lookup(repo)
	out := credwire.Result{Credentials: []credwire.Credential{}}
	for _, c := range creds {
		out.Credentials = append(out.Credentials, credwire.Credential{Username: c.Username, Password: c.Password})
	}
	return out
}

func (s *server) pull(r credwire.Request) credwire.Answer {
	s.mu.Lock()
	for _, p := range r.Pulls {
		if p.ServiceAccount != nil {
			s.sas[p.Namespace+"/"+p.ServiceAccount.Name] = p.ServiceAccount
		}
	}
	s.mu.Unlock()
	results := make([]credwire.Result, len(r.Pulls))
	if r.Concurrent {
		var wg sync.WaitGroup
		for i, p := range r.Pulls {
			wg.Add(1)
			go func() { defer wg.Done(); results[i] = s.lookup(p) }()
		}
		wg.Wait()
	} else {
		for i, p := range r.Pulls {
			results[i] = s.lookup(p)
		}
	}
	return credwire.Answer{ID: r.ID, Results: results, Log: s.takeLog()}
}

func main() {
	fs := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	_ = fs.Set("skip_headers", "true")
	_ = fs.Set("v", os.Getenv("GAUNTLET_KLOG_V"))
	s := &server{out: json.NewEncoder(os.Stdout), sas: map[string]*credwire.ServiceAccount{}, waiting: map[int64]chan credwire.Request{}}
	// klog writes an error to the INFO, WARNING and ERROR outputs alike:
	// collect it once.
	klog.SetOutputBySeverity("INFO", s)
	for _, sev := range []string{"WARNING", "ERROR", "FATAL"} {
		klog.SetOutputBySeverity(sev, io.Discard)
	}

	in := bufio.NewReader(os.Stdin)
	ops := make(chan credwire.Request)
	go func() {
		defer close(ops)
		for {
			line, err := in.ReadBytes('\n')
			if len(strings.TrimSpace(string(line))) > 0 {
				var r credwire.Request
				if jerr := json.Unmarshal(line, &r); jerr != nil {
					fmt.Fprintf(os.Stderr, "credprovider-kubelet: bad request line: %v\n", jerr)
				} else if r.IsTokenReply() {
					s.mu.Lock()
					ch := s.waiting[r.CID]
					delete(s.waiting, r.CID)
					s.mu.Unlock()
					if ch != nil {
						ch <- r
					}
				} else {
					ops <- r
				}
			}
			if err != nil {
				if err != io.EOF {
					fmt.Fprintf(os.Stderr, "credprovider-kubelet: stdin: %v\n", err)
				}
				s.mu.Lock()
				for id, ch := range s.waiting {
					close(ch)
					delete(s.waiting, id)
				}
				s.mu.Unlock()
				return
			}
		}
	}()
	// Ops run one at a time, but off the reader, so that token callbacks
	// can be answered while a pull is in flight.
	for r := range ops {
		done := make(chan credwire.Answer, 1)
		go func() {
			switch r.Op {
			case "configure":
				done <- s.configure(r)
			case "pull":
				done <- s.pull(r)
			default:
				done <- credwire.Answer{ID: r.ID, Error: fmt.Sprintf("unknown op %q", r.Op)}
			}
		}()
		s.send(<-done)
	}
}
