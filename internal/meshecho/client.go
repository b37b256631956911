package meshecho

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// DialFunc dials a TCP address; nil means a net.Dialer. Tests replace it to
// map cluster DNS names to loopback servers.
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

func (d DialFunc) dial(ctx context.Context, addr string) (net.Conn, error) {
	if d != nil {
		return d(ctx, addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", addr)
}

// Request is one client request, made from inside the client pod (where the
// mesh's sidecar or node proxy gives it the pod's identity).
type Request struct {
	Protocol mp.Protocol
	// Addr is host:port (a Service or headless-Service DNS name).
	Addr    string
	Nonce   string
	Timeout time.Duration
}

// Do makes the request and reports what the client saw. ServerSaw is left
// false: only the server's records answer that.
func Do(ctx context.Context, r Request, dial DialFunc) mp.Outcome {
	if r.Timeout <= 0 {
		r.Timeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	start := time.Now()
	var out mp.Outcome
	switch r.Protocol {
	case mp.HTTP:
		out = doHTTP(ctx, r, dial)
	case mp.TCP:
		out = doTCP(ctx, r, dial)
	case mp.GRPC:
		out = doGRPC(ctx, r, dial)
	default:
		out = mp.Outcome{Err: mp.ErrOther, Detail: fmt.Sprintf("unknown protocol %q", r.Protocol)}
	}
	out.Elapsed = time.Since(start)
	return out
}

func failed(out *mp.Outcome, err error) {
	out.Err, out.Detail = mp.Classify(err), err.Error()
}

func doHTTP(ctx context.Context, r Request, dial DialFunc) mp.Outcome {
	var out mp.Outcome
	tr := &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dial.dial(ctx, addr) }}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Addr+"/", nil)
	if err != nil {
		failed(&out, err)
		return out
	}
	req.Header.Set(NonceHeader, r.Nonce)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		failed(&out, err)
		return out
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	out.HTTPStatus, out.Body = resp.StatusCode, string(b)
	if err != nil {
		failed(&out, err)
	}
	return out
}

func doTCP(ctx context.Context, r Request, dial DialFunc) mp.Outcome {
	var out mp.Outcome
	c, err := dial.dial(ctx, r.Addr)
	if err != nil {
		failed(&out, err)
		return out
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, r.Nonce+"\n"); err != nil {
		failed(&out, err)
		return out
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	out.Data = line
	if err != nil {
		failed(&out, err)
	}
	return out
}

func doGRPC(ctx context.Context, r Request, dial DialFunc) mp.Outcome {
	out, err := GRPCCall(ctx, "passthrough:///"+r.Addr, r.Nonce, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return dial.dial(ctx, addr) }))
	if err != nil {
		failed(&out, err)
	}
	return out
}

// GRPCCall is the echo contract's gRPC request, shared by every mesh
// target's clients: a health Check carrying the nonce as metadata, its
// status reported as GRPCCode/GRPCMessage (a connection failure is a status
// too, UNAVAILABLE, as gRPC reports it). The error is only for a target or
// options grpc.NewClient refuses.
func GRPCCall(ctx context.Context, target, nonce string, opts ...grpc.DialOption) (mp.Outcome, error) {
	var out mp.Outcome
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return out, err
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, NonceMetadata, nonce)
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	st := status.Convert(err)
	out.GRPCCode, out.GRPCMessage = st.Code().String(), st.Message()
	if err != nil {
		out.Detail = st.Message()
	}
	return out, nil
}

// Open-stream protocol (stdout of `mesh-echo open`, one line each):
//
//	OK                   connected
//	E <line>             the server's reply to one stdin line
//	X <class> <detail>   the connection failed (class: meshpolicy.ErrorClass); the process exits
const (
	openOK   = "OK"
	openEcho = "E "
	openFail = "X "
)

// Open connects to addr, then for each line read from in writes it to the
// connection and reports the reply line on out, until in ends or the
// connection fails. The dial is bounded by timeout; replies are not (the
// driver bounds each Echo itself).
func Open(ctx context.Context, addr string, timeout time.Duration, dial DialFunc, in io.Reader, out io.Writer) error {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	c, err := dial.dial(dctx, addr)
	cancel()
	if err != nil {
		fmt.Fprintf(out, "%s%s %s\n", openFail, mp.Classify(err), oneLine(err.Error()))
		return nil
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	fmt.Fprintln(out, openOK)
	lines := bufio.NewScanner(in)
	replies := bufio.NewReader(c)
	for lines.Scan() {
		if _, err := io.WriteString(c, lines.Text()+"\n"); err != nil {
			fmt.Fprintf(out, "%s%s %s\n", openFail, mp.Classify(err), oneLine(err.Error()))
			return nil
		}
		got, err := replies.ReadString('\n')
		if err != nil {
			if got != "" {
				// A partial line then a close: report the data, then the close.
				fmt.Fprintf(out, "%s%s\n", openEcho, oneLine(got))
			}
			fmt.Fprintf(out, "%s%s %s\n", openFail, mp.Classify(err), oneLine(err.Error()))
			return nil
		}
		fmt.Fprintf(out, "%s%s\n", openEcho, strings.TrimSuffix(got, "\n"))
	}
	return lines.Err()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// OpenReply is one parsed line of the open-stream protocol.
type OpenReply struct {
	OK   bool
	Line string // an echo
	// Err is the connection's failure, rebuilt so that meshpolicy.Classify
	// gives the class the pod saw.
	Err error
}

// ParseOpenReply parses a line of `mesh-echo open`'s output.
func ParseOpenReply(line string) (OpenReply, error) {
	switch {
	case line == openOK:
		return OpenReply{OK: true}, nil
	case strings.HasPrefix(line, openEcho):
		return OpenReply{Line: strings.TrimPrefix(line, openEcho)}, nil
	case strings.HasPrefix(line, openFail):
		class, detail, _ := strings.Cut(strings.TrimPrefix(line, openFail), " ")
		return OpenReply{Err: ClassError(mp.ErrorClass(class), detail)}, nil
	}
	return OpenReply{}, fmt.Errorf("unexpected line from mesh-echo open: %q", line)
}

// ClassError rebuilds an error of the given class (as the pod classified
// it) so that meshpolicy.Classify on this side agrees.
func ClassError(class mp.ErrorClass, detail string) error {
	var base error
	switch class {
	case mp.ErrRefused:
		base = syscall.ECONNREFUSED
	case mp.ErrReset:
		base = syscall.ECONNRESET
	case mp.ErrEOF:
		base = io.EOF
	case mp.ErrTimeout:
		base = os.ErrDeadlineExceeded
	case mp.ErrTLS:
		return errors.New("tls: " + detail)
	default:
		return errors.New(detail)
	}
	return fmt.Errorf("in the client pod: %s: %w", detail, base)
}

// EncodeOutcome is how `mesh-echo request` reports: one JSON line.
func EncodeOutcome(w io.Writer, o mp.Outcome) error { return json.NewEncoder(w).Encode(o) }

// DecodeOutcome parses `mesh-echo request` output.
func DecodeOutcome(b []byte) (mp.Outcome, error) {
	var o mp.Outcome
	if err := json.Unmarshal(b, &o); err != nil {
		return o, fmt.Errorf("mesh-echo request printed %q: %w", clip(string(b), 200), err)
	}
	return o, nil
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
