package fuzz

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/gauntlet-conformance/gauntlet/internal/termsize"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

func init() {
	seedSets["FuzzResize"] = []seed{
		{"canonical", []any{[]byte(`{"Width":80,"Height":24}`), uint16(80), uint16(24)}},
		{"lowercase", []any{[]byte(`{"width":100,"height":30}`), uint16(100), uint16(30)}},
		{"max", []any{[]byte(`{"Width":65535,"Height":65535}`), uint16(65535), uint16(65535)}},
		{"spaces", []any{[]byte(" {\"Height\" : 24 ,\n\"Width\":80 }\r\n"), uint16(1), uint16(1)}},
		{"escaped-key", []any{[]byte(`{"W\u0069dth":7}`), uint16(7), uint16(0)}},
		{"dotless-i", []any{[]byte(`{"wıdth":7}`), uint16(0), uint16(0)}},
		{"unknown-keys", []any{[]byte(`{"Width":5,"x":{"a":[1,2.5e3,true,null,"s\u00e9"]},"Height":6}`), uint16(5), uint16(6)}},
		{"duplicate-null", []any{[]byte(`{"Width":1,"Width":null}`), uint16(1), uint16(0)}},
		{"empty-object", []any{[]byte(`{}`), uint16(0), uint16(0)}},
		{"null", []any{[]byte(`null`), uint16(0), uint16(0)}},
		{"two-objects", []any{[]byte(`{"Width":1}{"Width":2}`), uint16(0), uint16(0)}},
		{"truncated", []any{[]byte(`{"Width":}`), uint16(0), uint16(0)}},
		{"overflow", []any{[]byte(`{"Width":65536}`), uint16(0), uint16(0)}},
		{"negative-zero", []any{[]byte(`{"Width":-0}`), uint16(0), uint16(0)}},
		{"float", []any{[]byte(`{"Width":80.0}`), uint16(0), uint16(0)}},
		{"exponent", []any{[]byte(`{"Width":8e1}`), uint16(0), uint16(0)}},
		{"string", []any{[]byte(`{"Width":"80"}`), uint16(0), uint16(0)}},
		{"array", []any{[]byte(`[80,24]`), uint16(0), uint16(0)}},
		{"bom", []any{[]byte("\ufeff{}"), uint16(0), uint16(0)}},
		{"empty", []any{[]byte{}, uint16(0), uint16(0)}},
	}
}

// upstreamResize is the server's first Decode of a resize stream holding
// just msg (handleResizeEvents in cri-streaming remotecommand). rest reports
// whether non-space bytes follow the first value.
func upstreamResize(msg []byte) (s remotecommand.TerminalSize, rest bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	err = dec.Decode(&s)
	tail := bytes.TrimLeft(msg[dec.InputOffset():], " \t\r\n")
	return s, len(tail) > 0, err
}

// FuzzResize is differential: our hand-written decoder against
// encoding/json decoding into the upstream TerminalSize the way the server
// does. Accepting must mean the server accepts the same size; rejecting
// what the server accepts is allowed only for the two documented cases
// (top-level null, data after the object). Encode's output always decodes.
func FuzzResize(f *testing.F) {
	addSeeds(f, "FuzzResize")
	f.Fuzz(func(t *testing.T, msg []byte, w, h uint16) {
		enc := termsize.Encode(w, h)
		if got, err := termsize.Decode(enc); err != nil || got != (termsize.Size{Width: w, Height: h}) {
			t.Fatalf("Decode(Encode(%d, %d)) = %v, %v", w, h, got, err)
		}
		if up, _, err := upstreamResize(enc); err != nil || up.Width != w || up.Height != h {
			t.Fatalf("upstream decodes Encode(%d, %d) = %s as %v, %v", w, h, enc, up, err)
		}

		got, err := termsize.Decode(msg)
		up, rest, uerr := upstreamResize(msg)
		switch {
		case err == nil && uerr != nil:
			t.Fatalf("Decode(%q) = %v but the server rejects it: %v", msg, got, uerr)
		case err == nil && (got.Width != up.Width || got.Height != up.Height):
			t.Fatalf("Decode(%q) = %v, server %v", msg, got, up)
		case err != nil && uerr == nil:
			switch {
			case errors.Is(err, termsize.ErrNotObject) && bytes.HasPrefix(bytes.TrimLeft(msg, " \t\r\n"), []byte("null")):
				// Documented: the server turns a top-level null into a 0x0 resize.
			case errors.Is(err, termsize.ErrTrailingData) && rest:
				// Documented: one object per message; the server reads on.
			default:
				t.Fatalf("Decode(%q) rejects with %v but the server accepts %v", msg, err, up)
			}
		}
		if err != nil && !isOneOf(err, []error{termsize.ErrEmpty, termsize.ErrSyntax, termsize.ErrNotObject, termsize.ErrFieldType, termsize.ErrOutOfRange, termsize.ErrTrailingData}) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
