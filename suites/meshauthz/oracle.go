package meshauthz

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gauntlet-conformance/gauntlet/conformance"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// want is an expected verdict.
type want int

const (
	allowed want = iota
	denied
	neither // the observation is neither a clean allow nor a clean denial
)

func (w want) String() string {
	switch w {
	case allowed:
		return "allowed"
	case denied:
		return "denied"
	}
	return "neither allowed nor denied"
}

// connDenial are the connection-level failures GEP-3779 accepts as a denial
// (Linkerd refuses, Istio closes with EOF or resets, Cilium drops).
var connDenial = map[mp.ErrorClass]bool{mp.ErrRefused: true, mp.ErrReset: true, mp.ErrEOF: true, mp.ErrTimeout: true}

// judge is the oracle. Allowed: the right server answered this request
// (its echo carries the nonce) and recorded it. Denied: a 403,
// PERMISSION_DENIED or a connection-level refusal/reset/EOF/timeout, AND
// the server never saw the request, AND (TCP) no byte of data arrived.
func judge(r mp.Request, o mp.Outcome) (want, string) {
	switch r.Protocol {
	case mp.HTTP:
		if o.HTTPStatus == 200 && strings.Contains(o.Body, r.Nonce) && o.ServerSaw {
			return allowed, ""
		}
	case mp.TCP:
		if strings.TrimSpace(o.Data) == "echo "+r.Nonce && o.ServerSaw {
			return allowed, ""
		}
	case mp.GRPC:
		if o.GRPCCode == "OK" && o.ServerSaw {
			return allowed, ""
		}
	}
	if o.ServerSaw {
		return neither, "the server saw the request"
	}
	switch r.Protocol {
	case mp.HTTP:
		if o.HTTPStatus == 403 {
			return denied, ""
		}
		if o.HTTPStatus == 0 && connDenial[o.Err] {
			return denied, ""
		}
		if o.HTTPStatus != 0 {
			return neither, fmt.Sprintf("HTTP %d is neither the echo nor a denial", o.HTTPStatus)
		}
	case mp.TCP:
		if o.Data != "" {
			return neither, fmt.Sprintf("a denied TCP connection must not carry data, got %q", o.Data)
		}
		if connDenial[o.Err] {
			return denied, ""
		}
	case mp.GRPC:
		switch o.GRPCCode {
		case "PermissionDenied", "Unavailable", "DeadlineExceeded":
			return denied, ""
		}
		return neither, fmt.Sprintf("gRPC status %s is neither OK nor a denial", o.GRPCCode)
	}
	return neither, fmt.Sprintf("connection error %q is not a denial form", o.Err)
}

// expectation is one (client, server, protocol, port) -> verdict pair.
type expectation struct {
	from  mp.Identity
	to    mp.WorkloadRef
	proto mp.Protocol
	port  int
	via   bool
	want  want
}

func (x expectation) String() string {
	via := ""
	if x.via {
		via = " via Service"
	}
	return fmt.Sprintf("%s %s -> %s:%d%s", x.proto, x.from, x.to, x.port, via)
}

// x is an expectation on the protocol's standard container port.
func (e *Env) x(from mp.Identity, to mp.WorkloadRef, proto mp.Protocol, w want) expectation {
	return expectation{from: from, to: to, proto: proto, port: mp.PortFor(proto), want: w}
}

// one is an expectation over the target's primary protocol (checks that
// need "a request").
func (e *Env) one(from mp.Identity, to mp.WorkloadRef, w want) expectation {
	return e.x(from, to, e.Primary, w)
}

// all is the same expectation over every protocol the target serves.
func (e *Env) all(from mp.Identity, to mp.WorkloadRef, w want) []expectation {
	xs := make([]expectation, 0, len(e.Protocols))
	for _, p := range e.Protocols {
		xs = append(xs, e.x(from, to, p, w))
	}
	return xs
}

func (e *Env) request(x expectation) mp.Request {
	return mp.Request{From: x.from, To: x.to, Protocol: x.proto, Port: x.port, ViaService: x.via,
		Nonce: e.nonce(), Timeout: e.S.RequestTimeout}
}

// do makes one request; a driver error is a setup error.
func (e *Env) do(ctx context.Context, x expectation) (mp.Request, mp.Outcome, error) {
	r := e.request(x)
	// The request exercises its protocol whether or not the check requires
	// it (core checks use the target's primary protocol): reports say so.
	conformance.Exercise(ctx, ProtocolFeature(r.Protocol))
	o, err := e.D.Do(ctx, r)
	if err != nil {
		if ctx.Err() != nil {
			return r, o, context.Cause(ctx)
		}
		return r, o, conformance.Setupf("%s: the driver failed: %v", x, err)
	}
	return r, o, nil
}

// observe waits for the expectation to hold for 3 consecutive observations,
// giving the mesh the target's convergence bound to get there. It returns
// the last (agreeing) outcome, and a Failure naming what was seen instead.
func (e *Env) observe(ctx context.Context, x expectation) (mp.Outcome, error) {
	return e.observeN(ctx, x, 3)
}

// observeN is observe with n consecutive agreeing observations.
func (e *Env) observeN(ctx context.Context, x expectation, n int) (mp.Outcome, error) {
	start := time.Now()
	deadline := start.Add(e.Bound)
	streak, seen := 0, 0
	var bad []string
	var last mp.Outcome
	for {
		r, o, err := e.do(ctx, x)
		if err != nil {
			return o, err
		}
		seen++
		got, why := judge(r, o)
		last = o
		if got == x.want {
			streak++
			if streak == n {
				return o, nil
			}
			continue
		}
		streak = 0
		desc := fmt.Sprintf("%s: %s", got, o)
		if why != "" {
			desc += " (" + why + ")"
		}
		bad = append(bad, desc)
		if time.Now().After(deadline) {
			return last, conformance.Failf("%s: want %s; within %s (the target's convergence bound) %d observations never gave %d consecutive %s answers; last: %s",
				x, x.want, e.Bound, seen, n, x.want, bad[len(bad)-1])
		}
		pause := e.Bound / 20
		if pause > 200*time.Millisecond {
			pause = 200 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return last, context.Cause(ctx)
		case <-time.After(pause):
		}
	}
}

// check observes the expectations in order. The first one that does not
// converge within the bound fails the check; the rest are then observed
// once each (the bound has passed) and their mismatches listed, so a broken
// check costs one convergence bound, not one per expectation.
func (e *Env) check(ctx context.Context, xs ...expectation) error {
	for i, x := range xs {
		_, err := e.observe(ctx, x)
		if err == nil {
			continue
		}
		if !conformance.IsFailure(err) {
			return err
		}
		fails := []string{err.Error()}
		for _, y := range xs[i+1:] {
			r, o, err := e.do(ctx, y)
			if err != nil {
				return err
			}
			if got, why := judge(r, o); got != y.want {
				fails = append(fails, fmt.Sprintf("%s: want %s, got %s: %s %s", y, y.want, got, o, why))
			}
		}
		return conformance.Failf("%s", strings.Join(fails, "\n"))
	}
	return nil
}

// policy builds a namespace policy with enforcementLevel Network.
func (e *Env) policy(ns, name string, action mp.Action, target mp.TargetRef, rules ...mp.Rule) mp.Policy {
	return mp.Policy{Name: name, Namespace: e.ns(ns), TargetRefs: []mp.TargetRef{target}, Action: action,
		Rules: rules, EnforcementLevel: mp.Network}
}

// app targets the pods labelled app=<name>.
func app(name string) mp.TargetRef { return mp.PodSelector(map[string]string{"app": name}) }

// from is a rule with these sources (none given: sources omitted).
func from(srcs ...mp.Source) mp.Rule {
	if len(srcs) == 0 {
		return mp.Rule{}
	}
	return mp.Rule{Sources: srcs}
}

// sa is a service-account source in a fixture namespace ("" keeps the
// namespace empty: the policy's namespace).
func (e *Env) sa(ns, name string) mp.Source {
	if ns == "" {
		return mp.SA("", name)
	}
	return mp.SA(e.ns(ns), name)
}

// policies tracks what a check applied so that it is deleted afterwards,
// also when the check is cancelled.
type policies struct {
	e    *Env
	refs []mp.PolicyRef
}

func (e *Env) policies() *policies { return &policies{e: e} }

// apply applies a fixture policy: a rejection is a setup error here (MX29
// calls the driver itself).
func (p *policies) apply(ctx context.Context, pol mp.Policy) error {
	p.refs = append(p.refs, pol.Ref())
	if err := p.e.D.Apply(ctx, pol); err != nil {
		return conformance.Setupf("apply %s: %v", pol, err)
	}
	return nil
}

func (p *policies) remove(ctx context.Context, ref mp.PolicyRef) error {
	if err := p.e.D.Delete(ctx, ref); err != nil {
		return conformance.Setupf("delete policy %s/%s: %v", ref.Namespace, ref.Name, err)
	}
	return nil
}

// cleanup deletes every applied policy with its own deadline.
func (p *policies) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, r := range p.refs {
		errs = append(errs, p.e.D.Delete(ctx, r))
	}
	return errors.Join(errs...)
}

// pollStatus waits up to the convergence bound for cond on a policy's status.
func (e *Env) pollStatus(ctx context.Context, ref mp.PolicyRef, cond func(mp.PolicyStatus) bool) (mp.PolicyStatus, bool, error) {
	deadline := time.Now().Add(e.Bound)
	for {
		st, err := e.D.Status(ctx, ref)
		if err != nil {
			return st, false, conformance.Setupf("read status of %s/%s: %v", ref.Namespace, ref.Name, err)
		}
		if cond(st) {
			return st, true, nil
		}
		if time.Now().After(deadline) {
			return st, false, nil
		}
		select {
		case <-ctx.Done():
			return st, false, context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
