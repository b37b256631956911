package meshpolicy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// Protocol is what a request speaks to the server.
type Protocol string

// Protocols of the echo workloads.
const (
	HTTP Protocol = "HTTP"
	TCP  Protocol = "TCP"
	GRPC Protocol = "GRPC"
)

// Port is a workload port: the container port policies name, and the
// Service port clients may reach it through.
type Port struct {
	Name        string   `json:"name"`
	Protocol    Protocol `json:"protocol"`
	Port        int      `json:"port"`
	ServicePort int      `json:"servicePort,omitempty"`
}

// Standard echo ports: every fixture workload serves these. The Service
// ports differ from the container ports so that MA14 can tell them apart.
const (
	HTTPPort        = 8080
	HTTPServicePort = 80
	TCPPort         = 9090
	TCPServicePort  = 90
	GRPCPort        = 7070
	GRPCServicePort = 70
)

// StandardPorts are the echo server's ports.
func StandardPorts() []Port {
	return []Port{
		{Name: "http", Protocol: HTTP, Port: HTTPPort, ServicePort: HTTPServicePort},
		{Name: "tcp", Protocol: TCP, Port: TCPPort, ServicePort: TCPServicePort},
		{Name: "grpc", Protocol: GRPC, Port: GRPCPort, ServicePort: GRPCServicePort},
	}
}

// ServicePortFor returns the standard Service port of a protocol.
func ServicePortFor(p Protocol) int {
	switch p {
	case TCP:
		return TCPServicePort
	case GRPC:
		return GRPCServicePort
	}
	return HTTPServicePort
}

// AllProtocols are the protocols of the echo workloads, in the order the
// suite prefers them for checks that need "a request" (HTTP, then gRPC,
// then TCP).
var AllProtocols = []Protocol{HTTP, GRPC, TCP}

// ProtocolLister is implemented by a Driver whose target serves only some
// protocols (e.g. a proxyless-gRPC mesh serves GRPC only). A Driver without
// it serves HTTP, TCP and GRPC.
type ProtocolLister interface {
	Protocols() []Protocol
}

// Served returns the protocols d serves, in AllProtocols order.
func Served(d Driver) []Protocol {
	pl, ok := d.(ProtocolLister)
	if !ok {
		return append([]Protocol(nil), AllProtocols...)
	}
	has := map[Protocol]bool{}
	for _, p := range pl.Protocols() {
		has[p] = true
	}
	var out []Protocol
	for _, p := range AllProtocols {
		if has[p] {
			out = append(out, p)
		}
	}
	return out
}

// ParseProtocol parses a protocol name (HTTP, TCP, GRPC; any case).
func ParseProtocol(s string) (Protocol, bool) {
	for _, p := range AllProtocols {
		if strings.EqualFold(s, string(p)) {
			return p, true
		}
	}
	return "", false
}

// ClassError is an error whose ErrorClass is already known, e.g. one
// carried across a process boundary by an out-of-process driver
// (internal/meshpolicy/meshexec): Classify returns its Class.
type ClassError struct {
	Class ErrorClass
	Msg   string
}

func (e *ClassError) Error() string { return e.Msg }

// PortFor returns the standard container port of a protocol.
func PortFor(p Protocol) int {
	switch p {
	case TCP:
		return TCPPort
	case GRPC:
		return GRPCPort
	}
	return HTTPPort
}

// Workload is an echo server in the mesh: a pod with its own service
// account, labels and a Service. The echo servers record every request that
// reaches them (by nonce), so a driver can say whether the server saw it.
type Workload struct {
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	ServiceAccount string            `json:"serviceAccount"`
	Labels         map[string]string `json:"labels"`
	Ports          []Port            `json:"ports"`
}

// Ref names the workload.
func (w Workload) Ref() WorkloadRef { return WorkloadRef{Namespace: w.Namespace, Name: w.Name} }

// WorkloadRef names a workload.
type WorkloadRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (r WorkloadRef) String() string { return r.Namespace + "/" + r.Name }

// Identity is a client's mesh identity: a pod running as service account
// Namespace/ServiceAccount. The zero Identity is a client outside the mesh
// (no sidecar, no certificate: plaintext).
type Identity struct {
	Namespace      string `json:"namespace,omitempty"`
	ServiceAccount string `json:"serviceAccount,omitempty"`
}

// None reports whether this is the no-identity client.
func (i Identity) None() bool { return i.Namespace == "" && i.ServiceAccount == "" }

// SPIFFEID is the identity's SPIFFE ID in trust domain td.
func (i Identity) SPIFFEID(td string) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", td, i.Namespace, i.ServiceAccount)
}

func (i Identity) String() string {
	if i.None() {
		return "no-identity"
	}
	return i.Namespace + "/" + i.ServiceAccount
}

// Request is one client request.
type Request struct {
	From     Identity    `json:"from"`
	To       WorkloadRef `json:"to"`
	Protocol Protocol    `json:"protocol"`
	// Port is the container port, or the Service port when ViaService.
	Port       int  `json:"port"`
	ViaService bool `json:"viaService,omitempty"`
	// Nonce identifies the request at the server (unique per request).
	Nonce string `json:"nonce"`
	// Timeout bounds the request (a drop shows up as ErrTimeout).
	Timeout time.Duration `json:"timeout"`
}

func (r Request) String() string {
	via := ""
	if r.ViaService {
		via = " via Service"
	}
	return fmt.Sprintf("%s %s -> %s:%d%s", r.Protocol, r.From, r.To, r.Port, via)
}

// ErrorClass is how a request failed at the connection level.
type ErrorClass string

// Error classes. A denial may look like any of the first four (GEP-3779
// allows refusing, resetting, closing or dropping).
const (
	ErrNone    ErrorClass = ""
	ErrRefused ErrorClass = "refused"
	ErrReset   ErrorClass = "reset"
	ErrEOF     ErrorClass = "eof"
	ErrTimeout ErrorClass = "timeout"
	ErrTLS     ErrorClass = "tls"
	ErrOther   ErrorClass = "other"
)

// Outcome is what a driver observed for one request.
type Outcome struct {
	// HTTPStatus and Body: an HTTP response (0 when none arrived).
	HTTPStatus int    `json:"httpStatus,omitempty"`
	Body       string `json:"body,omitempty"`
	// GRPCCode is the status code name ("OK", "PermissionDenied", …) of a
	// gRPC call that completed with a status; empty otherwise.
	GRPCCode    string `json:"grpcCode,omitempty"`
	GRPCMessage string `json:"grpcMessage,omitempty"`
	// Data is what a TCP client received.
	Data string `json:"data,omitempty"`
	// Err classifies a connection-level failure; Detail is its text.
	Err    ErrorClass `json:"err,omitempty"`
	Detail string     `json:"detail,omitempty"`
	// ServerSaw reports whether the echo server recorded the nonce.
	ServerSaw bool          `json:"serverSaw"`
	Elapsed   time.Duration `json:"elapsed"`
}

func (o Outcome) String() string {
	var parts []string
	if o.HTTPStatus != 0 {
		parts = append(parts, fmt.Sprintf("HTTP %d %q", o.HTTPStatus, clip(o.Body, 60)))
	}
	if o.GRPCCode != "" {
		parts = append(parts, fmt.Sprintf("gRPC %s %q", o.GRPCCode, clip(o.GRPCMessage, 60)))
	}
	if o.Data != "" {
		parts = append(parts, fmt.Sprintf("data %q", clip(o.Data, 60)))
	}
	if o.Err != ErrNone {
		parts = append(parts, fmt.Sprintf("%s (%s)", o.Err, clip(o.Detail, 80)))
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing")
	}
	saw := "server did not see it"
	if o.ServerSaw {
		saw = "server saw it"
	}
	return strings.Join(parts, ", ") + "; " + saw
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// PolicyRef names a policy.
type PolicyRef struct {
	Scope     Scope  `json:"scope,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// Ref names the policy.
func (p Policy) Ref() PolicyRef {
	return PolicyRef{Scope: p.Scope, Namespace: p.Namespace, Name: p.Name}
}

// PolicyStatus is a policy's reported status (feature Status).
type PolicyStatus struct {
	// Reported: the implementation wrote a status at all.
	Reported bool `json:"reported"`
	// Accepted is the Accepted condition (meaningful when Reported).
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
}

// RejectedError is the mesh's policy API refusing a policy (feature API):
// Apply returns it, and only it, for an invalid policy. Drivers must not
// validate policies themselves; the check is about the target's API.
type RejectedError struct{ Reason string }

func (e *RejectedError) Error() string { return "policy rejected: " + e.Reason }

// IsRejected reports whether err is an API rejection.
func IsRejected(err error) (*RejectedError, bool) {
	var r *RejectedError
	return r, errors.As(err, &r)
}

// Conn is an open TCP connection from a client to a workload (MX26).
type Conn interface {
	// Echo sends one line and waits for its echo; the error is classified
	// with Classify.
	Echo(ctx context.Context, line string) (string, error)
	Close() error
}

// Driver is what the checks drive a mesh through. Every method honours its
// context's deadline. Denials are outcomes, never errors: an error means the
// driver or its fixtures failed (a setup error for the check).
type Driver interface {
	// Name describes the mesh ("reference mesh", "istio 1.29 via kubeconfig …").
	Name() string
	// TrustDomain is the SPIFFE trust domain of workload identities.
	TrustDomain() string
	// ConvergenceBound is how long the mesh may take to enforce a policy
	// change (the checks wait at most this long for 3 consistent answers).
	ConvergenceBound() time.Duration
	// Deploy creates an echo workload (idempotent).
	Deploy(ctx context.Context, w Workload) error
	// DeployClient makes a client with identity id available to Do and
	// Open (a pod running as that service account; idempotent). The zero
	// Identity is a client outside the mesh.
	DeployClient(ctx context.Context, id Identity) error
	// Relabel replaces a workload's labels.
	Relabel(ctx context.Context, w WorkloadRef, labels map[string]string) error
	// Apply creates or replaces a policy; an API rejection is a *RejectedError.
	Apply(ctx context.Context, p Policy) error
	// Delete removes a policy (absent: no error).
	Delete(ctx context.Context, p PolicyRef) error
	// Status reads a policy's status.
	Status(ctx context.Context, p PolicyRef) (PolicyStatus, error)
	// Do makes one request and reports what happened.
	Do(ctx context.Context, r Request) (Outcome, error)
	// Probe makes the kubelet's HTTP health probe (GET /healthz on the HTTP
	// container port) against a workload, the way the mesh expects the
	// kubelet to reach it.
	Probe(ctx context.Context, w WorkloadRef) (Outcome, error)
	// Open opens a TCP connection r.From -> r.To:r.Port.
	Open(ctx context.Context, r Request) (Conn, error)
	// Cleanup removes every workload and policy the driver created.
	Cleanup(ctx context.Context) error
}

// Classify maps a client-side error to an ErrorClass.
func Classify(err error) ErrorClass {
	if err == nil {
		return ErrNone
	}
	var ce *ClassError
	if errors.As(err, &ce) {
		return ce.Class
	}
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return ErrReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ErrEOF
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ErrTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return ErrTimeout
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "connection refused"):
		return ErrRefused
	case strings.Contains(s, "connection reset"), strings.Contains(s, "broken pipe"):
		return ErrReset
	case strings.Contains(s, "EOF"), strings.Contains(s, "server closed"), strings.Contains(s, "closed network connection"):
		return ErrEOF
	case strings.Contains(s, "tls:"), strings.Contains(s, "x509"):
		return ErrTLS
	case strings.Contains(s, "timeout"), strings.Contains(s, "deadline"):
		return ErrTimeout
	}
	return ErrOther
}
