package meshkube

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gauntlet-conformance/gauntlet/internal/meshecho"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/internal/meshtranslate"
)

// fakeCluster plays the kubelet and the controllers for a fake clientset:
// a Deployment gets one running, ready pod whose echo server is a real
// meshecho.Server on loopback; a client pod becomes running and ready. Its
// Exec runs `gauntlet mesh-echo` in-process, client pods dialling through a
// toy mesh that can refuse an identity, cut connections or block the
// kubelet's probes.
type fakeCluster struct {
	t  *testing.T
	cs *fake.Clientset

	mu      sync.Mutex
	servers map[string]*fakeServer // "ns/pod"
	byHost  map[string]string      // "host:port" -> loopback address
	denied  map[string]bool        // client "ns/pod" whose connections are refused
	conns   []net.Conn
	noProbe bool
	base    string // the servers' record dirs; removed after they stop
	stop    chan struct{}
	wg      sync.WaitGroup
}

type fakeServer struct {
	dir    string
	addrs  map[mp.Protocol]string
	cancel context.CancelFunc
	done   chan error
}

func newFakeCluster(t *testing.T, playKubelet bool) *fakeCluster {
	f := &fakeCluster{t: t, cs: fake.NewClientset(), base: t.TempDir(), servers: map[string]*fakeServer{}, byHost: map[string]string{},
		denied: map[string]bool{}, stop: make(chan struct{})}
	if playKubelet {
		f.wg.Add(1)
		go f.kubelet()
	}
	t.Cleanup(func() {
		close(f.stop)
		f.wg.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, s := range f.servers {
			s.cancel()
			<-s.done
		}
	})
	return f
}

func (f *fakeCluster) driver(t *testing.T, o Options) *Driver {
	t.Helper()
	mapper := meta.NewDefaultRESTMapper(nil)
	for _, k := range []schema.GroupVersionKind{
		{Group: meshtranslate.GEPGroup, Version: meshtranslate.GEPVersion, Kind: meshtranslate.GEPKind},
	} {
		mapper.Add(k, meta.RESTScopeNamespace)
	}
	if o.PollInterval == 0 {
		o.PollInterval = 10 * time.Millisecond
	}
	if o.ReadyBound == 0 {
		o.ReadyBound = 5 * time.Second
	}
	d, err := NewForClients(context.Background(), Clients{Kube: f.cs, Mapper: mapper, Exec: f, Host: "https://fake"}, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// kubelet makes Deployments' pods and marks pods running and ready.
func (f *fakeCluster) kubelet() {
	defer f.wg.Done()
	ctx := context.Background()
	for {
		select {
		case <-f.stop:
			return
		case <-time.After(10 * time.Millisecond):
		}
		deps, _ := f.cs.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
		for _, dep := range deps.Items {
			name := dep.Name + "-0"
			if _, err := f.cs.CoreV1().Pods(dep.Namespace).Get(ctx, name, metav1.GetOptions{}); err == nil {
				continue
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: dep.Namespace, Labels: dep.Spec.Template.Labels},
				Spec: dep.Spec.Template.Spec}
			if _, err := f.cs.CoreV1().Pods(dep.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				f.t.Errorf("kubelet: %v", err)
				continue
			}
			f.startServer(dep.Namespace, name, dep.Name)
			dep.Status = appsStatus(dep.Generation)
			if _, err := f.cs.AppsV1().Deployments(dep.Namespace).UpdateStatus(ctx, &dep, metav1.UpdateOptions{}); err != nil {
				f.t.Errorf("kubelet: %v", err)
			}
		}
		pods, _ := f.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				continue
			}
			p.Spec.NodeName = "node"
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			if _, err := f.cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, &p, metav1.UpdateOptions{}); err != nil {
				f.t.Errorf("kubelet: %v", err)
			}
		}
	}
}

func (f *fakeCluster) startServer(ns, pod, workload string) {
	ready := make(chan [3]net.Addr, 1)
	dir, err := os.MkdirTemp(f.base, "records-")
	if err != nil {
		f.t.Error(err)
		return
	}
	s := &fakeServer{dir: dir, done: make(chan error, 1)}
	srv := &meshecho.Server{Name: ns + "/" + workload, Dir: s.dir, HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Ready: func(h, tc, g net.Addr) { ready <- [3]net.Addr{h, tc, g} }}
	var ctx context.Context
	ctx, s.cancel = context.WithCancel(context.Background())
	go func() { s.done <- srv.Run(ctx) }()
	a := <-ready
	s.addrs = map[mp.Protocol]string{mp.HTTP: a[0].String(), mp.TCP: a[1].String(), mp.GRPC: a[2].String()}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servers[ns+"/"+pod] = s
	for _, p := range mp.StandardPorts() {
		f.byHost[fmt.Sprintf("%s%s.%s.svc:%d", workload, headlessSuffix, ns, p.Port)] = s.addrs[p.Protocol]
		f.byHost[fmt.Sprintf("%s.%s.svc:%d", workload, ns, p.ServicePort)] = s.addrs[p.Protocol]
	}
	// The kubelet's readiness probe, every 50 ms, unless blocked.
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			select {
			case <-f.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			f.mu.Lock()
			blocked := f.noProbe
			f.mu.Unlock()
			if blocked {
				continue
			}
			req, _ := http.NewRequest(http.MethodGet, "http://"+s.addrs[mp.HTTP]+"/healthz", nil)
			req.Header.Set("User-Agent", "kube-probe/1.37")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
}

// Exec implements Executor: `gauntlet mesh-echo ...` in-process.
func (f *fakeCluster) Exec(ctx context.Context, r ExecRequest) error {
	if len(r.Command) < 2 || r.Command[0] != EchoBinary || r.Command[1] != "mesh-echo" {
		return fmt.Errorf("unexpected command %q", r.Command)
	}
	args := append([]string(nil), r.Command[2:]...)
	key := r.Namespace + "/" + r.Pod
	var dial meshecho.DialFunc
	switch r.Container {
	case echoContainer:
		f.mu.Lock()
		s, ok := f.servers[key]
		f.mu.Unlock()
		if !ok {
			return fmt.Errorf("pods %q not found", r.Pod)
		}
		for i := range args {
			if args[i] == meshecho.DefaultDir {
				args[i] = s.dir
			}
		}
	case clientContainer:
		dial = func(ctx context.Context, addr string) (net.Conn, error) {
			f.mu.Lock()
			real, ok := f.byHost[addr]
			deny := f.denied[key]
			f.mu.Unlock()
			if !ok {
				return nil, fmt.Errorf("dial tcp: lookup %s: no such host", addr)
			}
			if deny {
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
			}
			var nd net.Dialer
			c, err := nd.DialContext(ctx, "tcp", real)
			if err == nil {
				f.mu.Lock()
				f.conns = append(f.conns, c)
				f.mu.Unlock()
			}
			return c, err
		}
	default:
		return fmt.Errorf("container %q not found", r.Container)
	}
	stderr := r.Stderr
	if stderr == nil {
		stderr = &strings.Builder{}
	}
	if code := meshecho.Main(ctx, args, r.Stdin, r.Stdout, stderr, dial); code != 0 {
		return fmt.Errorf("command terminated with exit code %d", code)
	}
	return nil
}

func (f *fakeCluster) deny(ns, pod string, on bool) {
	f.mu.Lock()
	f.denied[ns+"/"+pod] = on
	f.mu.Unlock()
}

// cut closes every connection the toy mesh made (a policy change that
// cuts open connections).
func (f *fakeCluster) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	f.conns = nil
}
