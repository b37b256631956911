// Package meshexec runs a meshpolicy.Driver in another process: a mesh
// driver is any executable that serves the Driver over its stdin and stdout
// (Serve), and the meshauthz suite drives it through Start, which returns a
// meshpolicy.Driver. `gauntlet mesh-driver` serves the embedded reference
// mesh this way; hack/istio-grpc serves Istio's authorization policy
// translation enforced by grpc-go's RBAC.
//
// # Wire protocol (version 1)
//
// Both directions carry JSON objects, one per line (at most MaxLine bytes;
// a driver logs to stderr, never to stdout). The client sends requests with
// an increasing "id"; a driver serves them concurrently and may answer in
// any order. "timeout" is how long the caller waits for the answer, in
// nanoseconds (as every duration of meshpolicy's types): a driver bounds
// the call's work by it. The client opens with hello:
//
//	-> {"id":1,"method":"hello","params":{"version":1}}
//	<- {"id":1,"result":{"version":1,"name":"istio 1.29 (proxyless gRPC)","trustDomain":"cluster.local",
//	     "convergenceBound":30000000000,"protocols":["GRPC"],"features":["AuthorizationPolicyDeny"]}}
//
// "protocols" are those the target serves (absent: HTTP, TCP and GRPC);
// "features" are the suite features the driver declares (optional; the
// user's --features win). Then the Driver's methods, params and results
// being meshpolicy's JSON types:
//
//	-> {"id":2,"method":"deploy","timeout":179000000000,"params":{Workload}}          <- {"id":2}
//	-> {"id":3,"method":"deployClient","timeout":…,"params":{Identity}}              <- {"id":3}
//	-> {"id":4,"method":"relabel","timeout":…,"params":{"workload":{WorkloadRef},"labels":{…}}}
//	-> {"id":5,"method":"apply","timeout":…,"params":{Policy}}
//	<- {"id":5,"error":{"message":"policy rejected: two Pod targetRefs","rejected":"two Pod targetRefs"}}
//	-> {"id":6,"method":"delete","timeout":…,"params":{PolicyRef}}
//	-> {"id":7,"method":"status","timeout":…,"params":{PolicyRef}}                   <- {"id":7,"result":{PolicyStatus}}
//	-> {"id":8,"method":"do","timeout":…,"params":{Request}}                          <- {"id":8,"result":{Outcome}}
//	-> {"id":9,"method":"probe","timeout":…,"params":{WorkloadRef}}                   <- {"id":9,"result":{Outcome}}
//	-> {"id":10,"method":"open","timeout":…,"params":{Request}}                       <- {"id":10,"result":{"conn":1}}
//	-> {"id":11,"method":"echo","timeout":…,"params":{"conn":1,"line":"n"}}           <- {"id":11,"result":{"line":"echo n"}}
//	<- {"id":11,"error":{"message":"read: connection reset by peer","class":"reset"}}
//	-> {"id":12,"method":"close","timeout":…,"params":{"conn":1}}                     <- {"id":12}
//	-> {"id":13,"method":"cleanup","timeout":…}                                       <- {"id":13}
//	-> {"id":14,"method":"arm","timeout":…,"params":{"faults":["mesh-rules-anded"]}} (reference targets only)
//	-> {"method":"cancel","params":{"id":8}}      (no answer: the caller gave up on call 8)
//
// An error answer's "rejected" (the reason) marks a *meshpolicy.RejectedError,
// "class" a connection-level failure (meshpolicy.ErrorClass) of echo. A
// driver exits when its stdin closes; the client then waits a few seconds
// and kills the driver's process group.
//
// A driver must keep stdout for the protocol: one stray line (a library
// logging to stdout) ends the run with a protocol error. A driver linking
// chatty libraries can dup its stdout aside for Serve and point fd 1 at
// stderr (hack/istio-grpc does).
package meshexec

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// Version is the protocol version hello negotiates.
const Version = 1

// MaxLine is the default limit on one line (either direction).
const MaxLine = 1 << 20

// Sentinel errors of the codec and the client.
var (
	// ErrLineTooLong: a line exceeds the limit.
	ErrLineTooLong = errors.New("meshexec: line too long")
	// ErrMalformed: a line is not a protocol message.
	ErrMalformed = errors.New("meshexec: malformed line")
	// ErrDriverExited: the driver process exited or closed its stdout.
	ErrDriverExited = errors.New("mesh driver exited")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("mesh driver client closed")
)

// Methods.
const (
	MethodHello        = "hello"
	MethodDeploy       = "deploy"
	MethodDeployClient = "deployClient"
	MethodRelabel      = "relabel"
	MethodApply        = "apply"
	MethodDelete       = "delete"
	MethodStatus       = "status"
	MethodDo           = "do"
	MethodProbe        = "probe"
	MethodOpen         = "open"
	MethodEcho         = "echo"
	MethodClose        = "close"
	MethodCleanup      = "cleanup"
	MethodArm          = "arm"
	MethodCancel       = "cancel"
)

// Frame is one line: a request (Method set; ID 0 for the cancel
// notification) or an answer (Method empty, ID of the request).
type Frame struct {
	ID      uint64          `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Timeout time.Duration   `json:"timeout,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *WireError      `json:"error,omitempty"`
}

// WireError is an error answer.
type WireError struct {
	Message string `json:"message"`
	// Rejected is the reason of a policy API rejection
	// (*meshpolicy.RejectedError).
	Rejected *string `json:"rejected,omitempty"`
	// Class is a connection-level failure's meshpolicy.ErrorClass.
	Class string `json:"class,omitempty"`
}

// IsRequest reports whether f is a request or notification.
func (f Frame) IsRequest() bool { return f.Method != "" }

// validate checks the shape every peer may rely on.
func (f Frame) validate() error {
	switch {
	case f.Method != "":
		if f.Result != nil || f.Error != nil {
			return errors.New("a request carries a result or an error")
		}
		if f.ID == 0 && f.Method != MethodCancel {
			return fmt.Errorf("request %q has no id", f.Method)
		}
		if f.Timeout < 0 {
			return fmt.Errorf("request %d has a negative timeout", f.ID)
		}
	case f.ID == 0:
		return errors.New("an answer without id")
	case f.Result != nil && f.Error != nil:
		return fmt.Errorf("answer %d carries both a result and an error", f.ID)
	case f.Params != nil || f.Timeout != 0:
		return fmt.Errorf("answer %d carries request fields", f.ID)
	}
	return nil
}

// Decoder reads frames, one per line, with a size limit.
type Decoder struct {
	r   *bufio.Reader
	max int
}

// NewDecoder reads from r; max <= 0 means MaxLine.
func NewDecoder(r io.Reader, max int) *Decoder {
	if max <= 0 {
		max = MaxLine
	}
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Decode returns the next frame. Blank lines are skipped; the last line
// may lack its newline. At the end of input it returns io.EOF; a line over
// the limit is ErrLineTooLong, anything else that is not a valid frame
// ErrMalformed (both wrapped with what was wrong). After an error the
// stream is not resynchronised: the caller gives up on the peer.
func (d *Decoder) Decode() (Frame, error) {
	for {
		line, err := d.readLine()
		if err != nil {
			return Frame{}, err
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if line[0] != '{' {
			return Frame{}, fmt.Errorf("%w: not a JSON object: %q", ErrMalformed, clip(line))
		}
		var f Frame
		if err := json.Unmarshal(line, &f); err != nil {
			return Frame{}, fmt.Errorf("%w: %v: %q", ErrMalformed, err, clip(line))
		}
		if err := f.validate(); err != nil {
			return Frame{}, fmt.Errorf("%w: %v: %q", ErrMalformed, err, clip(line))
		}
		return f, nil
	}
}

// readLine reads one line without its newline, never buffering more than
// the limit.
func (d *Decoder) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := d.r.ReadSlice('\n')
		if len(line)+len(chunk) > d.max+1 { // +1: the newline itself
			return nil, fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, d.max)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > d.max:
			return nil, fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, d.max)
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}

// Encode renders f as one line (with its newline), enforcing max (<= 0:
// MaxLine).
func Encode(f Frame, max int) ([]byte, error) {
	if max <= 0 {
		max = MaxLine
	}
	if err := f.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("%w: %s of %d bytes (limit %d)", ErrLineTooLong, describe(f), len(b), max)
	}
	return append(b, '\n'), nil
}

func describe(f Frame) string {
	if f.Method != "" {
		return fmt.Sprintf("request %d (%s)", f.ID, f.Method)
	}
	return fmt.Sprintf("answer %d", f.ID)
}

func clip(b []byte) string {
	const n = 120
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// Wire params and results beyond meshpolicy's own types.
type (
	helloParams struct {
		Version int `json:"version"`
	}
	// Hello is what a driver says about itself.
	Hello struct {
		Version          int           `json:"version"`
		Name             string        `json:"name"`
		TrustDomain      string        `json:"trustDomain"`
		ConvergenceBound time.Duration `json:"convergenceBound"`
		Protocols        []string      `json:"protocols,omitempty"`
		Features         []string      `json:"features,omitempty"`
	}
	relabelParams struct {
		Workload mp.WorkloadRef    `json:"workload"`
		Labels   map[string]string `json:"labels"`
	}
	connParams struct {
		Conn uint64 `json:"conn"`
		Line string `json:"line,omitempty"`
	}
	openResult struct {
		Conn uint64 `json:"conn"`
	}
	echoResult struct {
		Line string `json:"line"`
	}
	armParams struct {
		Faults []string `json:"faults"`
	}
	cancelParams struct {
		ID uint64 `json:"id"`
	}
)
