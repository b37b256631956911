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
	"testing"
)

func TestSelectorMatches(t *testing.T) {
	t.Parallel()
	labels := map[string]string{"app": "s", "tier": "web"}
	tests := []struct {
		name string
		sel  *Selector
		want bool
	}{
		{"nil selects everything", nil, true},
		{"empty selects everything", &Selector{}, true},
		{"subset", &Selector{MatchLabels: map[string]string{"app": "s"}}, true},
		{"other value", &Selector{MatchLabels: map[string]string{"app": "t"}}, false},
		{"missing key", &Selector{MatchLabels: map[string]string{"zone": "a"}}, false},
	}
	for _, tc := range tests {
		if got := tc.sel.Matches(labels); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	opErr := func(e error) error { return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", e)} }
	tests := []struct {
		err  error
		want ErrorClass
	}{
		{nil, ErrNone},
		{opErr(syscall.ECONNREFUSED), ErrRefused},
		{opErr(syscall.ECONNRESET), ErrReset},
		{fmt.Errorf("wrapped: %w", io.EOF), ErrEOF},
		{io.ErrUnexpectedEOF, ErrEOF},
		{context.DeadlineExceeded, ErrTimeout},
		{os.ErrDeadlineExceeded, ErrTimeout},
		{errors.New("remote error: tls: bad certificate"), ErrTLS},
		{errors.New("rpc error: connection reset by peer"), ErrReset},
		{errors.New("something else"), ErrOther},
	}
	for _, tc := range tests {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestPolicyString(t *testing.T) {
	t.Parallel()
	p := Policy{Name: "p", Namespace: "ns", Action: Allow, TargetRefs: []TargetRef{PodSelector(map[string]string{"app": "s"})},
		Rules: []Rule{{Sources: []Source{SA("cli", "a"), SPIFFE("spiffe://td/ns/x/sa/y")}, Ports: []int{8080}}, {Sources: []Source{}}, {}}}
	got := p.String()
	for _, want := range []string{"ns/p ALLOW", "target=Pod{app=s}", "sa:cli/a", "spiffe://td/ns/x/sa/y", "ports=[8080]", "sources=[]", "sources=any"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}

type lister struct {
	Driver
	ps []Protocol
}

func (l lister) Protocols() []Protocol { return l.ps }

func TestServed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		d    Driver
		want string
	}{
		{"no lister serves all", struct{ Driver }{}, "[HTTP GRPC TCP]"},
		{"preference order", lister{ps: []Protocol{TCP, GRPC}}, "[GRPC TCP]"},
		{"unknown and duplicates dropped", lister{ps: []Protocol{"SCTP", GRPC, GRPC}}, "[GRPC]"},
	}
	for _, tc := range tests {
		if got := fmt.Sprint(Served(tc.d)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	for in, want := range map[string]Protocol{"grpc": GRPC, "HTTP": HTTP, "Tcp": TCP, "sctp": ""} {
		if got, ok := ParseProtocol(in); got != want || ok != (want != "") {
			t.Errorf("ParseProtocol(%q) = %q, %v", in, got, ok)
		}
	}
	if got := ServicePortFor(GRPC); got != GRPCServicePort {
		t.Errorf("ServicePortFor(GRPC) = %d", got)
	}
}

// A class carried across a process boundary survives wrapping.
func TestClassifyClassError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("echo: %w", &ClassError{Class: ErrEOF, Msg: "read: connection closed"})
	if got := Classify(err); got != ErrEOF {
		t.Errorf("Classify = %q, want eof", got)
	}
}
