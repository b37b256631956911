package meshauthz

import (
	"testing"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

func TestJudge(t *testing.T) {
	t.Parallel()
	req := func(p mp.Protocol) mp.Request { return mp.Request{Protocol: p, Nonce: "n1"} }
	tests := []struct {
		name string
		r    mp.Request
		o    mp.Outcome
		want want
	}{
		{"http echo", req(mp.HTTP), mp.Outcome{HTTPStatus: 200, Body: "echo a/b n1", ServerSaw: true}, allowed},
		{"http echo of another request", req(mp.HTTP), mp.Outcome{HTTPStatus: 200, Body: "echo a/b n0", ServerSaw: true}, neither},
		{"http 200 not recorded", req(mp.HTTP), mp.Outcome{HTTPStatus: 200, Body: "echo a/b n1"}, neither},
		{"http 403", req(mp.HTTP), mp.Outcome{HTTPStatus: 403}, denied},
		{"http 403 after forwarding", req(mp.HTTP), mp.Outcome{HTTPStatus: 403, ServerSaw: true}, neither},
		{"http 503", req(mp.HTTP), mp.Outcome{HTTPStatus: 503}, neither},
		{"http reset", req(mp.HTTP), mp.Outcome{Err: mp.ErrReset}, denied},
		{"http refused", req(mp.HTTP), mp.Outcome{Err: mp.ErrRefused}, denied},
		{"http timeout", req(mp.HTTP), mp.Outcome{Err: mp.ErrTimeout}, denied},
		{"http tls error", req(mp.HTTP), mp.Outcome{Err: mp.ErrTLS}, neither},
		{"tcp echo", req(mp.TCP), mp.Outcome{Data: "echo n1\n", ServerSaw: true}, allowed},
		{"tcp eof", req(mp.TCP), mp.Outcome{Err: mp.ErrEOF}, denied},
		{"tcp data then eof", req(mp.TCP), mp.Outcome{Data: "denied\n", Err: mp.ErrEOF}, neither},
		{"grpc ok", req(mp.GRPC), mp.Outcome{GRPCCode: "OK", ServerSaw: true}, allowed},
		{"grpc permission denied", req(mp.GRPC), mp.Outcome{GRPCCode: "PermissionDenied"}, denied},
		{"grpc unavailable", req(mp.GRPC), mp.Outcome{GRPCCode: "Unavailable"}, denied},
		{"grpc unauthenticated", req(mp.GRPC), mp.Outcome{GRPCCode: "Unauthenticated"}, neither},
		{"grpc denied but seen", req(mp.GRPC), mp.Outcome{GRPCCode: "PermissionDenied", ServerSaw: true}, neither},
	}
	for _, tc := range tests {
		if got, why := judge(tc.r, tc.o); got != tc.want {
			t.Errorf("%s: judged %s (%s), want %s", tc.name, got, why, tc.want)
		}
	}
}
