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
)

// The consumer line protocol (documented in suites/credprovider/consumer.go):
// JSON lines; requests {id, op} from the suite, one answer per request; the
// consumer's token callbacks {callback: "token", cid, ...} answered by
// {cid, token|error}.

type request struct {
	ID         int64    `json:"id"`
	Op         string   `json:"op"`
	Config     string   `json:"config,omitempty"`
	BinDir     string   `json:"binDir,omitempty"`
	Env        []string `json:"env,omitempty"`
	Pulls      []Pull   `json:"pulls,omitempty"`
	Concurrent bool     `json:"concurrent,omitempty"`
	CID        int64    `json:"cid,omitempty"`
	Token      string   `json:"token,omitempty"`
	Error      string   `json:"error,omitempty"`
}

type result struct {
	Credentials []Credential `json:"credentials"`
}

type answer struct {
	ID      int64    `json:"id"`
	Name    string   `json:"name,omitempty"`
	Error   string   `json:"error,omitempty"`
	Results []result `json:"results,omitempty"`
	Log     []string `json:"log,omitempty"`
}

type tokenCallback struct {
	Callback          string   `json:"callback"`
	CID               int64    `json:"cid"`
	Namespace         string   `json:"namespace"`
	ServiceAccount    string   `json:"serviceAccount"`
	ServiceAccountUID string   `json:"serviceAccountUID"`
	Audiences         []string `json:"audiences"`
	BoundKind         string   `json:"boundKind,omitempty"`
	BoundName         string   `json:"boundName,omitempty"`
	BoundUID          string   `json:"boundUID,omitempty"`
}

type conn struct {
	outMu sync.Mutex
	enc   *json.Encoder

	mu      sync.Mutex
	cid     int64
	waiting map[int64]chan request
	closed  bool
}

func (c *conn) send(v any) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	_ = c.enc.Encode(v)
}

func (c *conn) token(ctx context.Context, tr TokenRequest) (string, error) {
	ch := make(chan request, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", errors.New("the suite closed the connection")
	}
	c.cid++
	id := c.cid
	c.waiting[id] = ch
	c.mu.Unlock()
	c.send(tokenCallback{Callback: "token", CID: id, Namespace: tr.Namespace, ServiceAccount: tr.ServiceAccount,
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
	c := &conn{enc: json.NewEncoder(rw), waiting: map[int64]chan request{}}
	var s *scenario
	ops := make(chan request)
	go func() {
		defer close(ops)
		in := bufio.NewReader(rw)
		for {
			line, err := in.ReadBytes('\n')
			if len(line) > 1 {
				var r request
				if jerr := json.Unmarshal(line, &r); jerr != nil {
					c.send(answer{Error: fmt.Sprintf("bad request line: %v", jerr)})
				} else if r.Op == "" && r.CID != 0 {
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
		done := make(chan answer, 1)
		go func() {
			switch {
			case r.Op == "configure" && s == nil:
				env := append(os.Environ(), r.Env...)
				sc := &scenario{ref: ref, ctx: ctx, binDir: r.BinDir, environ: env, token: c.token, sas: map[string]*ServiceAccount{}}
				a := answer{ID: r.ID, Name: ref.Name()}
				if err := sc.load(r.Config); err != nil {
					a.Error = err.Error()
				} else {
					s = sc
				}
				done <- a
			case r.Op == "configure":
				done <- answer{ID: r.ID, Error: "one scenario per connection: configure was already called"}
			case r.Op == "pull" && s != nil:
				done <- s.pull(r)
			case r.Op == "pull":
				done <- answer{ID: r.ID, Error: "pull before a successful configure"}
			default:
				done <- answer{ID: r.ID, Error: fmt.Sprintf("unknown op %q", r.Op)}
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

func (s *scenario) pull(r request) answer {
	s.saMu.Lock()
	for _, p := range r.Pulls {
		if p.ServiceAccount != nil {
			s.sas[p.Namespace+"/"+p.ServiceAccount.Name] = p.ServiceAccount
		}
	}
	s.saMu.Unlock()
	res := make([]result, len(r.Pulls))
	if r.Concurrent {
		var wg sync.WaitGroup
		for i, p := range r.Pulls {
			wg.Add(1)
			go func() { defer wg.Done(); res[i] = result{Credentials: s.lookup(p)} }()
		}
		wg.Wait()
	} else {
		for i, p := range r.Pulls {
			res[i] = result{Credentials: s.lookup(p)}
		}
	}
	return answer{ID: r.ID, Results: res, Log: s.takeLog()}
}
