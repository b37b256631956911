package meshkube

import (
	"context"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// ExecRequest is a command to run in a pod's container.
type ExecRequest struct {
	Namespace, Pod, Container string
	Command                   []string
	// Stdin is nil for a command without input.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Executor runs commands in pods: the one seam between the driver and the
// kubelet, so that unit tests run Do, Open and Probe without pods. Exec
// returns when the command exits (an error for a non-zero exit, a failed
// stream, or ctx ending).
type Executor interface {
	Exec(ctx context.Context, r ExecRequest) error
}

// PodExecutor execs through the API server's pods/exec: WebSocket
// (RemoteCommand v5) first, SPDY when the server cannot upgrade to it —
// kubectl exec's choice.
type PodExecutor struct {
	cfg *rest.Config
	cs  kubernetes.Interface
}

// NewPodExecutor returns an Executor for the cluster cfg names.
func NewPodExecutor(cfg *rest.Config, cs kubernetes.Interface) *PodExecutor {
	return &PodExecutor{cfg: cfg, cs: cs}
}

// Exec implements Executor.
func (p *PodExecutor) Exec(ctx context.Context, r ExecRequest) error {
	req := p.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(r.Namespace).Name(r.Pod).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: r.Container, Command: r.Command,
		Stdin: r.Stdin != nil, Stdout: r.Stdout != nil, Stderr: r.Stderr != nil,
	}, scheme.ParameterCodec)
	spdy, err := remotecommand.NewSPDYExecutor(p.cfg, "POST", req.URL())
	if err != nil {
		return err
	}
	ws, err := remotecommand.NewWebSocketExecutor(p.cfg, "GET", req.URL().String())
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr})
}
