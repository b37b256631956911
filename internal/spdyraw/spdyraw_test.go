package spdyraw

import (
	"bytes"
	"net/http"
	"reflect"
	"testing"

	"github.com/moby/spdystream/spdy"
)

// The builders must produce what spdystream's framer reads back when the
// frame is honest; the dishonest variants are the callers' business.
func TestFramerReadsBuiltFrames(t *testing.T) {
	d := NewDeflater()
	tests := []struct {
		name  string
		bytes []byte
		check func(spdy.Frame) bool
	}{
		{"ping", Ping(7), func(f spdy.Frame) bool { p, ok := f.(*spdy.PingFrame); return ok && p.Id == 7 }},
		{"data", Data(3, byte(spdy.DataFlagFin), []byte("hi"), -1), func(f spdy.Frame) bool {
			d, ok := f.(*spdy.DataFrame)
			return ok && d.StreamId == 3 && d.Flags == spdy.DataFlagFin && string(d.Data) == "hi"
		}},
		{"syn stream, fresh stream", SynStream(1, Deflate(Pairs("streamtype", "error")), -1), func(f spdy.Frame) bool {
			s, ok := f.(*spdy.SynStreamFrame)
			return ok && s.StreamId == 1 && reflect.DeepEqual(s.Headers, http.Header{"Streamtype": {"error"}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr, err := spdy.NewFramer(nil, bytes.NewReader(tt.bytes))
			if err != nil {
				t.Fatal(err)
			}
			got, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if !tt.check(got) {
				t.Fatalf("read back %#v", got)
			}
		})
	}

	// Blocks of one Deflater share a compression stream: the framer reads
	// them in order from one connection.
	stream := append(SynStream(1, d.Block(Pairs("port", "80")), -1), SynStream(3, d.Block(Pairs("port", "81")), -1)...)
	fr, err := spdy.NewFramer(nil, bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []string{"80", "81"} {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("ReadFrame: %v", err)
		}
		if got := f.(*spdy.SynStreamFrame).Headers.Get("port"); got != port {
			t.Fatalf("port %q, want %q", got, port)
		}
	}
}

func TestLie(t *testing.T) {
	b := Control(spdy.TypeSettings, 0, []byte{0xff, 0xff, 0xff, 0xff}, 1<<24|5)
	if got := []byte{b[5], b[6], b[7]}; !bytes.Equal(got, []byte{0, 0, 5}) {
		t.Fatalf("length field %x, want the lie truncated to 24 bits (000005)", got)
	}
	if len(b) != 12 {
		t.Fatalf("frame is %d bytes, want header + the real payload (12)", len(b))
	}
}
