package termsize

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

var benchMsgs = []struct{ name, in string }{
	{"canonical", `{"Width":80,"Height":24}`},
	{"lowercase", `{"width":100,"height":30}`},
	{"extra-keys", `{"Width":200,"Height":50,"x":{"y":[1,2,3]},"z":"abcdef"}`},
}

func BenchmarkDecode(b *testing.B) {
	for _, m := range benchMsgs {
		in := []byte(m.in)
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := Decode(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUpstreamUnmarshal is json.Unmarshal into the upstream
// TerminalSize: the per-message cost with encoding/json.
func BenchmarkUpstreamUnmarshal(b *testing.B) {
	for _, m := range benchMsgs {
		in := []byte(m.in)
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				var s remotecommand.TerminalSize
				if err := json.Unmarshal(in, &s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// repeatReader replays msg forever, standing in for the resize stream.
type repeatReader struct {
	msg []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.msg[r.off:])
		n += c
		r.off = (r.off + c) % len(r.msg)
	}
	return n, nil
}

var _ io.Reader = (*repeatReader)(nil)

// BenchmarkUpstreamStream is the server's actual path: one json.Decoder
// over the resize stream, one Decode per message.
func BenchmarkUpstreamStream(b *testing.B) {
	for _, m := range benchMsgs {
		in := []byte(m.in)
		b.Run(m.name, func(b *testing.B) {
			dec := json.NewDecoder(&repeatReader{msg: in})
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				var s remotecommand.TerminalSize
				if err := dec.Decode(&s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendEncode(b *testing.B) {
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEncode(buf[:0], 80, 24)
	}
	if !bytes.Equal(buf, []byte(`{"Width":80,"Height":24}`)) {
		b.Fatal(string(buf))
	}
}

func BenchmarkUpstreamMarshal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(remotecommand.TerminalSize{Width: 80, Height: 24}); err != nil {
			b.Fatal(err)
		}
	}
}
