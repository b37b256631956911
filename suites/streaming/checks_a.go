package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"github.com/gauntlet-conformance/gauntlet/internal/spdyconn"
)

var _ = register(
	Check{ID: "A1", Name: "Exec/Attach/PortForward return an absolute URL ending /<kind>/<token>", Labels: []string{"cri"},
		Faults: []faults.Fault{faults.RelativeURL}, Run: checkA1},
	Check{ID: "A2", Serial: true, Name: "tokens are URL-safe with at least 48 bits of entropy, 1000 without duplicates", Labels: []string{"cri"},
		Faults: []faults.Fault{faults.ShortToken}, Timeout: 90 * time.Second, Run: checkA2},
	Check{ID: "A3", Name: "a used token is rejected with 404", Labels: []string{"spdy"},
		Faults: []faults.Fault{faults.TokenReuse, faults.HandshakeAs500}, Run: checkA3},
	Check{ID: "A4", Name: "20 concurrent upgrades with one token: exactly one succeeds", Labels: []string{"spdy"},
		Faults: []faults.Fault{faults.TokenReuse}, Run: checkA4},
	Check{ID: "A5", Name: "an unknown token is answered 404 without upgrade", Labels: []string{"spdy"},
		Faults: []faults.Fault{faults.HandshakeAs500}, Run: checkA5},
	Check{ID: "A6", Name: "a token older than the cache TTL is answered 404", Labels: []string{"spdy"}, Slow: true,
		Faults: []faults.Fault{faults.NoTTL}, Timeout: 3 * time.Minute, Run: checkA6},
	Check{ID: "A7", Name: "an exec token presented on /attach/ is 404 and burnt", Labels: []string{"spdy"},
		Faults: []faults.Fault{faults.TokenCrossEndpoint}, Run: checkA7},
	Check{ID: "A8", Name: "a failed handshake burns the token", Labels: []string{"spdy"},
		Faults: []faults.Fault{faults.FailedHandshakeKeepsToken}, Run: checkA8},
	Check{ID: "A9", Serial: true, Name: "more unconsumed URLs than the in-flight limit: ResourceExhausted, then recovery", Labels: []string{"cri"},
		Faults: []faults.Fault{faults.NoInflightLimit}, Timeout: 90 * time.Second, Run: checkA9},
	Check{ID: "A10", Name: "invalid Exec/Attach requests are refused with InvalidArgument", Labels: []string{"cri"},
		Faults: []faults.Fault{faults.NoValidation}, Cases: a10Cases, Run: checkA10},
	Check{ID: "A11", Name: "Exec/Attach on an unknown or stopped container fail without a URL", Labels: []string{"cri"},
		Faults: []faults.Fault{faults.ExecStopped}, Run: checkA11},
	Check{ID: "A12", Name: "PUT and DELETE on a stream URL are answered 405", Labels: []string{"http"},
		Faults: []faults.Fault{faults.HandshakeAs500}, Run: checkA12},
)

var tokenPath = regexp.MustCompile(`/(exec|attach|portforward)/([^/]+)$`)

func checkURL(kind, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return Failf("%s URL %q does not parse: %v", kind, raw, err)
	}
	if !u.IsAbs() || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Failf("%s URL %q is not an absolute http(s) URL with a host", kind, raw)
	}
	m := tokenPath.FindStringSubmatch(u.Path)
	if m == nil || m[1] != kind {
		return Failf("%s URL %q: path does not end /%s/<token>", kind, raw, kind)
	}
	return nil
}

func checkA1(ctx context.Context, e *Env) error {
	fx, err := e.Fixture(ctx)
	if err != nil {
		return err
	}
	eu, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	au, err := e.AttachURL(ctx, &runtimeapi.AttachRequest{ContainerId: fx.ContainerID, Stdout: true})
	if err != nil {
		return err
	}
	pu, err := e.PortForwardURL(ctx, fx.SandboxID, EchoPort)
	if err != nil {
		return err
	}
	defer burn(ctx, eu, au, pu)
	return errors.Join(checkURL("exec", eu), checkURL("attach", au), checkURL("portforward", pu))
}

// spareExecURL is an exec URL (of `true`) for a check that only inspects it
// or drives the connection by hand; release burns its token.
func spareExecURL(ctx context.Context, e *Env) (u *url.URL, release func(), err error) {
	raw, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return nil, nil, err
	}
	release = func() { burn(ctx, raw) }
	if u, err = url.Parse(raw); err != nil {
		release()
		return nil, nil, fmt.Errorf("stream URL %q does not parse: %w", raw, err)
	}
	return u, release, nil
}

// burn consumes tokens with a plain GET (no upgrade): the server burns the
// token and refuses the handshake, so nothing runs.
func burn(ctx context.Context, urls ...string) {
	for _, u := range urls {
		if !strings.HasPrefix(u, "http") {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		req, err := http.NewRequestWithContext(cctx, http.MethodGet, u, nil)
		if err == nil {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) //nolint:errcheck
				resp.Body.Close()
			}
		}
		cancel()
	}
}

func tokenOf(raw string) string { return path.Base(raw) }

func checkA2(ctx context.Context, e *Env) error {
	seen := map[string]bool{}
	minLen, hexOnly, urlSafe := 1<<30, true, true
	const batch, total = 200, 1000
	for done := 0; done < total; done += batch {
		urls := make([]string, 0, batch)
		for i := 0; i < batch; i++ {
			u, err := e.ExecURL(ctx, Out("true"))
			if err != nil {
				burn(ctx, urls...)
				return err
			}
			urls = append(urls, u)
			tok := tokenOf(u)
			if seen[tok] {
				burn(ctx, urls...)
				return Failf("duplicate token %q after %d tokens", tok, len(seen))
			}
			seen[tok] = true
			if len(tok) < minLen {
				minLen = len(tok)
			}
			for _, r := range tok {
				isHex := (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f')
				isB64 := isHex || (r >= 'A' && r <= 'Z') || (r >= 'g' && r <= 'z') || r == '-' || r == '_'
				hexOnly = hexOnly && isHex
				urlSafe = urlSafe && isB64
			}
		}
		burn(ctx, urls...)
	}
	bitsPerChar := 6
	alphabet := "base64url"
	if hexOnly {
		bitsPerChar, alphabet = 4, "hex"
	}
	note(ctx, "A2 tokens", fmt.Sprintf("%d tokens, min length %d, alphabet %s (~%d bits)", len(seen), minLen, alphabet, minLen*bitsPerChar))
	if !urlSafe {
		return Failf("tokens use characters outside the URL-safe alphabet")
	}
	if minLen*bitsPerChar < 48 {
		return Failf("shortest token has %d %s characters = %d bits of entropy, want >= 48", minLen, alphabet, minLen*bitsPerChar)
	}
	return nil
}

// expectStatus dials SPDY and wants a handshake error with the given status.
func expectStatus(ctx context.Context, u string, want int, o spdyconn.Options, protocols ...string) (*spdyconn.HandshakeError, error) {
	if len(protocols) == 0 {
		protocols = []string{ProtoV4}
	}
	c, err := spdyconn.Dial(ctx, u, protocols, o)
	if err == nil {
		c.Close()
		return nil, Failf("%s was upgraded (101), want %d", redact(u), want)
	}
	var he *spdyconn.HandshakeError
	if !errors.As(err, &he) {
		return nil, Failf("%s: %v, want HTTP %d", redact(u), err, want)
	}
	if he.Status != want {
		return he, Failf("%s answered %d (%q), want %d", redact(u), he.Status, strings.TrimSpace(he.Body), want)
	}
	return he, nil
}

// redact keeps tokens out of reports: they are credentials while valid.
func redact(u string) string {
	if m := tokenPath.FindStringSubmatchIndex(u); m != nil {
		return u[:m[4]] + "<token>"
	}
	return u
}

func checkA3(ctx context.Context, e *Env) error {
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	s, err := e.StartSPDY(ctx, u, []string{ProtoV4}, false, true, true, false)
	if err != nil {
		return fmt.Errorf("first use: %w", err)
	}
	if _, err := s.Wait(ctx); err != nil {
		return fmt.Errorf("first use: %w", err)
	}
	_, err = expectStatus(ctx, u, http.StatusNotFound, e.spdyOptions())
	return err
}

func checkA4(ctx context.Context, e *Env) error {
	u, err := e.ExecURL(ctx, Out("sleep", "1"))
	if err != nil {
		return err
	}
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	var conns []*spdyconn.Conn
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := spdyconn.Dial(ctx, u, []string{ProtoV4}, e.spdyOptions())
			mu.Lock()
			defer mu.Unlock()
			var he *spdyconn.HandshakeError
			switch {
			case err == nil:
				codes[101]++
				conns = append(conns, c)
			case errors.As(err, &he):
				codes[he.Status]++
			default:
				codes[-1]++
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	note(ctx, "A4 answers", fmt.Sprint(codes))
	if codes[101] != 1 {
		return Failf("%d of %d concurrent upgrades with one token succeeded, want exactly 1 (answers %v)", codes[101], n, codes)
	}
	if codes[http.StatusNotFound] != n-1 {
		return Failf("the losing upgrades were answered %v, want %d × 404", codes, n-1)
	}
	return nil
}

func withToken(u, token string) string {
	i := strings.LastIndex(u, "/")
	return u[:i+1] + token
}

func checkA5(ctx context.Context, e *Env) error {
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	defer burn(ctx, u)
	_, err = expectStatus(ctx, withToken(u, "gAuNtLeTx0"), http.StatusNotFound, e.spdyOptions())
	return err
}

func checkA6(ctx context.Context, e *Env) error {
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	wait := e.Cfg.TokenTTL + 2*time.Second
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err = expectStatus(ctx, u, http.StatusNotFound, e.spdyOptions())
	return err
}

func checkA7(ctx context.Context, e *Env) error {
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	au := strings.Replace(u, "/exec/", "/attach/", 1)
	if _, err := expectStatus(ctx, au, http.StatusNotFound, e.spdyOptions()); err != nil {
		return fmt.Errorf("exec token on /attach/: %w", err)
	}
	if _, err := expectStatus(ctx, u, http.StatusNotFound, e.spdyOptions()); err != nil {
		return fmt.Errorf("the token was not burnt by the /attach/ attempt: %w", err)
	}
	return nil
}

func checkA8(ctx context.Context, e *Env) error {
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	// A handshake without X-Stream-Protocol-Version fails with 400.
	noProto := spdyconn.Options{NoDefaults: true, Header: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}}}
	if _, err := expectStatus(ctx, u, http.StatusBadRequest, noProto); err != nil {
		return fmt.Errorf("failed handshake: %w", err)
	}
	if _, err := expectStatus(ctx, u, http.StatusNotFound, e.spdyOptions()); err != nil {
		return fmt.Errorf("after a failed handshake the token still works: %w", err)
	}
	note(ctx, "A8", "a failed handshake burns the token; clients must ask for a fresh URL per attempt")
	return nil
}

func checkA9(ctx context.Context, e *Env) error {
	const ceiling = 1100
	var urls []string
	defer func() { burn(ctx, urls...) }()
	exhaustedAt := -1
	for i := 0; i < ceiling; i++ {
		u, err := e.ExecURL(ctx, Out("true"))
		if err != nil {
			if status.Code(errors.Unwrap(err)) == codes.ResourceExhausted || status.Code(err) == codes.ResourceExhausted || strings.Contains(err.Error(), "ResourceExhausted") {
				exhaustedAt = i
				break
			}
			return err
		}
		urls = append(urls, u)
	}
	if exhaustedAt < 0 {
		return Failf("%d unconsumed Exec URLs were issued without ResourceExhausted: no in-flight limit", ceiling)
	}
	note(ctx, "A9 in-flight limit", fmt.Sprintf("ResourceExhausted after %d unconsumed URLs (other tokens may also be in flight)", exhaustedAt))
	burn(ctx, urls...)
	urls = nil
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return fmt.Errorf("no recovery after consuming the tokens: %w", err)
	}
	urls = append(urls, u)
	return nil
}

func grpcCode(err error) codes.Code {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s, ok := status.FromError(e); ok {
			return s.Code()
		}
	}
	return codes.Unknown
}

// a10Cases are A10's invalid requests, each reported on its own (a runtime
// may be known to fail one of them without hiding a regression in another).
var a10Cases = []string{"exec-tty-stderr", "exec-no-streams", "empty-container-id", "attach-tty-stderr"}

func checkA10(ctx context.Context, e *Env) error {
	fx, err := e.Fixture(ctx)
	if err != nil {
		return err
	}
	refuse := func(what string, call func(ctx context.Context) (string, error)) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			cctx, cancel := context.WithTimeout(ctx, streamStep)
			url, err := call(cctx)
			cancel()
			if err == nil {
				burn(ctx, url)
				return Failf("%s returned a URL, want InvalidArgument", what)
			}
			if grpcCode(err) != codes.InvalidArgument {
				return Failf("%s: %v, want code InvalidArgument", what, err)
			}
			return nil
		}
	}
	exec := func(req *runtimeapi.ExecRequest) func(ctx context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			resp, err := e.Client.Runtime.Exec(ctx, req)
			if err != nil {
				return "", err
			}
			return resp.Url, nil
		}
	}
	conformance.Case(ctx, a10Cases[0], refuse("Exec with tty+stderr", exec(&runtimeapi.ExecRequest{ContainerId: fx.ContainerID, Cmd: []string{"true"}, Tty: true, Stdout: true, Stderr: true})))
	conformance.Case(ctx, a10Cases[1], refuse("Exec with no stdin/stdout/stderr", exec(&runtimeapi.ExecRequest{ContainerId: fx.ContainerID, Cmd: []string{"true"}})))
	conformance.Case(ctx, a10Cases[2], refuse("Exec with an empty container id", exec(&runtimeapi.ExecRequest{Cmd: []string{"true"}, Stdout: true})))
	conformance.Case(ctx, a10Cases[3], refuse("Attach with tty+stderr", func(ctx context.Context) (string, error) {
		resp, err := e.Client.Runtime.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: fx.ContainerID, Tty: true, Stdout: true, Stderr: true})
		if err != nil {
			return "", err
		}
		return resp.Url, nil
	}))
	return nil
}

func checkA11(ctx context.Context, e *Env) error {
	var errs []error
	cctx, cancel := context.WithTimeout(ctx, streamStep)
	resp, err := e.Client.Runtime.Exec(cctx, &runtimeapi.ExecRequest{ContainerId: "gauntlet-no-such-container", Cmd: []string{"true"}, Stdout: true})
	cancel()
	if err == nil {
		burn(ctx, resp.Url)
		errs = append(errs, Failf("Exec on an unknown container returned a URL"))
	}
	id, err := e.NewContainer(ctx, ContainerSpec{Name: UniqueName("stopped"), Command: []string{"sleep", "3600"}})
	if err != nil {
		return err
	}
	cctx, cancel = context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := e.Client.Runtime.StopContainer(cctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
		return fmt.Errorf("StopContainer: %w", err)
	}
	resp, err = e.Client.Runtime.Exec(cctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
	if err == nil {
		burn(ctx, resp.Url)
		errs = append(errs, Failf("Exec on a stopped container returned a URL"))
	}
	aresp, err := e.Client.Runtime.Attach(cctx, &runtimeapi.AttachRequest{ContainerId: id, Stdout: true})
	if err == nil {
		burn(ctx, aresp.Url)
		errs = append(errs, Failf("Attach to a stopped container returned a URL"))
	}
	return errors.Join(errs...)
}

func checkA12(ctx context.Context, e *Env) error {
	u, err := e.ExecURL(ctx, Out("true"))
	if err != nil {
		return err
	}
	defer burn(ctx, u)
	var errs []error
	for _, m := range []string{http.MethodPut, http.MethodDelete} {
		cctx, cancel := context.WithTimeout(ctx, streamStep)
		req, _ := http.NewRequestWithContext(cctx, m, u, nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			errs = append(errs, Failf("%s on a stream URL answered %d, want 405", m, resp.StatusCode))
		}
	}
	return errors.Join(errs...)
}
