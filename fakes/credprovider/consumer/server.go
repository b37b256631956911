package consumer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/gauntlet-conformance/gauntlet/internal/credwire"
)

// The consumer line protocol (internal/credwire; semantics in
// suites/credprovider/consumer.go): JSON lines; requests {id, op} from the
// suite, one answer per request; the consumer's token callbacks
// {callback: "token", cid, ...} answered by {cid, token|error}.

type conn struct {
	outMu sync.Mutex
	enc   *json.Encoder

	mu      sync.Mutex
	cid     int64
	waiting map[int64]chan credwire.Request
	closed  bool
}

func (c *conn) send(v any) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	_ = c.enc.Encode(v)
}

func (c *conn) token(ctx context.Context, tr TokenRequest) (string, error) {
	ch := make(chan credwire.Request, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", errors.New("the suite closed the connection")
	}
	c.cid++
	id := c.cid
	c.waiting[id] = ch
	c.mu.Unlock()
	c.send(credwire.TokenCallback{Callback: "token", CID: id, Namespace: tr.Namespace, ServiceAccount: tr.ServiceAccount,
		ServiceAccountUID: tr.ServiceAccountUID, Audiences: tr.Audiences, BoundKind: tr.BoundKind, BoundName: tr.BoundName, BoundUID: tr.BoundUID})
	select {
	case r, ok := <-ch:
		if !ok {
			return "", errors.New("the suite closed the connection")
		}
		if r.Error != "" {
			return "", errors.New(r.Error)
		}
		return r.Token, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Serve speaks the consumer line protocol on rw for one scenario until rw
// reaches EOF.
func Serve(rw io.ReadWriter, ref *Reference) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &conn{enc: json.NewEncoder(rw), waiting: map[int64]chan credwire.Request{}}
	var s *scenario
	ops := make(chan credwire.Request)
	go func() {
		defer close(ops)
		in := bufio.NewReader(rw)
		for {
			line, err := in.ReadBytes('\n')
			if len(line) > 1 {
				var r credwire.Request
				if jerr := json.Unmarshal(line, &r); jerr != nil {
					c.send(credwire.Answer{Error: fmt.Sprintf("bad request line: %v", jerr)})
				} else if r.IsTokenReply() {
					c.mu.Lock()
					ch := c.waiting[r.CID]
					delete(c.waiting, r.CID)
					c.mu.Unlock()
					if ch != nil {
						ch <- r
					}
				} else {
					select {
					case ops <- r:
					case <-ctx.Done():
						return
					}
				}
			}
			if err != nil {
				c.mu.Lock()
				c.closed = true
				for id, ch := range c.waiting {
					close(ch)
					delete(c.waiting, id)
				}
				c.mu.Unlock()
				cancel() // kills plugins still running for this scenario
				return
			}
		}
	}()
	for r := range ops {
		done := make(chan credwire.Answer, 1)
		go func() {
			switch {
			case r.Op == "configure" && s == nil:
				env := append(os.Environ(), r.Env...)
				sc := &scenario{ref: ref, ctx: ctx, binDir: r.BinDir, environ: env, token: c.token, sas: map[string]*ServiceAccount{}}
				a := credwire.Answer{ID: r.ID, Name: ref.Name()}
				if err := sc.load(r.Config); err != nil {
					a.Error = err.Error()
				} else {
					s = sc
				}
				done <- a
			case r.Op == "configure":
				done <- credwire.Answer{ID: r.ID, Error: "one scenario per connection: configure was already called"}
			case r.Op == "pull" && s != nil:
				done <- s.pull(r)
			case r.Op == "pull":
				done <- credwire.Answer{ID: r.ID, Error: "pull before a successful configure"}
			default:
				done <- credwire.Answer{ID: r.ID, Error: fmt.Sprintf("unknown op %q", r.Op)}
			}
		}()
		select {
		case a := <-done:
			c.send(a)
		case <-ctx.Done():
			return
		}
	}
}

func (s *scenario) pull(r credwire.Request) credwire.Answer {
	s.saMu.Lock()
	for _, p := range r.Pulls {
		if p.ServiceAccount != nil {
			s.sas[p.Namespace+"/"+p.ServiceAccount.Name] = p.ServiceAccount
		}
	}
	s.saMu.Unlock()
	res := make([]credwire.Result, len(r.Pulls))
	if r.Concurrent {
		var wg sync.WaitGroup
		for i, p := range r.Pulls {
			wg.Add(1)
			go func() { defer wg.Done(); res[i] = credwire.Result{Credentials: s.lookup(p)} }()
		}
		wg.Wait()
	} else {
		for i, p := range r.Pulls {
			res[i] = credwire.Result{Credentials: s.lookup(p)}
		}
	}
	return credwire.Answer{ID: r.ID, Results: res, Log: s.takeLog()}
}
