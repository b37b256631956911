package termsize

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// upstreamFirst is what the server's resize loop gets from its first
// Decode call on a stream holding just b.
func upstreamFirst(b []byte) (remotecommand.TerminalSize, error) {
	var s remotecommand.TerminalSize
	err := json.NewDecoder(bytes.NewReader(b)).Decode(&s)
	return s, err
}

func TestDecode(t *testing.T) {
	deep := func(n int) string { return `{"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}` }
	tests := []struct {
		in      string
		want    Size
		wantErr error
		// upstreamOK marks a documented difference: the server's decoder
		// accepts this (as its first value) while Decode rejects it.
		upstreamOK bool
	}{
		{in: `{"Width":80,"Height":24}`, want: Size{80, 24}},
		{in: `{"width":100,"height":30}`, want: Size{100, 30}},
		{in: `{"WIDTH":1,"hEiGhT":2}`, want: Size{1, 2}},
		{in: " {\"Height\" : 24 ,\n\"Width\":80 }\r\n", want: Size{80, 24}},
		{in: `{"Width":65535,"Height":0}`, want: Size{65535, 0}},
		{in: `{}`, want: Size{}},
		{in: `{"Width":80}`, want: Size{80, 0}},
		{in: `{"Width":1,"Width":2}`, want: Size{2, 0}},
		{in: `{"Width":1,"width":null}`, want: Size{1, 0}},
		{in: `{"W\u0069dth":7,"\u0048EIGHT":8}`, want: Size{7, 8}},
		{in: `{"Width":5,"extra":{"a":[1,2.5e3,true,false,null,"s\"\\\/\b\f\n\r\t\u00e9"]},"Height":6}`, want: Size{5, 6}},
		{in: `{"Width":1,"Widt":9,"Widths":9,"wıdth":9,"\u0000":9}`, want: Size{1, 0}},
		{in: "{\"\xff\":1,\"Width\":2}", want: Size{2, 0}},
		{in: `{"Width":000}`, wantErr: ErrSyntax},
		{in: deep(maxDepth - 1), want: Size{}},

		{in: ``, wantErr: ErrEmpty},
		{in: " \n\t\r", wantErr: ErrEmpty},
		{in: `{"Width":80`, wantErr: ErrSyntax},
		{in: `{"Width":}`, wantErr: ErrSyntax},
		{in: `{Width:80}`, wantErr: ErrSyntax},
		{in: `{"Width":80,}`, wantErr: ErrSyntax},
		{in: `{"Width":-}`, wantErr: ErrSyntax},
		{in: `{"Width":1.}`, wantErr: ErrSyntax},
		{in: `{"Width":1e}`, wantErr: ErrSyntax},
		{in: `{"Width":nul}`, wantErr: ErrSyntax},
		{in: `{"x":"\q"}`, wantErr: ErrSyntax},
		{in: `{"x":"\u12G4"}`, wantErr: ErrSyntax},
		{in: "{\"x\":\"a\x01\"}", wantErr: ErrSyntax},
		{in: `{"Width":"80","x":tru}`, wantErr: ErrSyntax}, // syntax wins over type, as in encoding/json
		{in: "\ufeff{}", wantErr: ErrSyntax},
		{in: deep(maxDepth), wantErr: ErrSyntax},
		{in: `null`, wantErr: ErrNotObject, upstreamOK: true},
		{in: `[80,24]`, wantErr: ErrNotObject},
		{in: `"80x24"`, wantErr: ErrNotObject},
		{in: `80`, wantErr: ErrNotObject},
		{in: `{"Width":"80"}`, wantErr: ErrFieldType},
		{in: `{"Width":true}`, wantErr: ErrFieldType},
		{in: `{"Height":[24]}`, wantErr: ErrFieldType},
		{in: `{"Height":{}}`, wantErr: ErrFieldType},
		{in: `{"Width":65536}`, wantErr: ErrOutOfRange},
		{in: `{"Width":99999999999999999999999}`, wantErr: ErrOutOfRange},
		{in: `{"Width":-1}`, wantErr: ErrOutOfRange},
		{in: `{"Width":-0}`, wantErr: ErrOutOfRange},
		{in: `{"Width":80.0}`, wantErr: ErrOutOfRange},
		{in: `{"Width":8e1}`, wantErr: ErrOutOfRange},
		{in: `{"Width":"x","Width":5}`, wantErr: ErrFieldType},
		{in: `{"Width":80,"Height":24}{"Width":1}`, wantErr: ErrTrailingData, upstreamOK: true},
		{in: `{"Width":80,"Height":24} x`, wantErr: ErrTrailingData, upstreamOK: true},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			up, uerr := upstreamFirst([]byte(tt.in))
			switch {
			case err == nil && (uerr != nil || up.Width != got.Width || up.Height != got.Height):
				t.Fatalf("upstream disagrees: %+v, %v", up, uerr)
			case err != nil && uerr == nil && !tt.upstreamOK:
				t.Fatalf("upstream accepts as %+v", up)
			case err != nil && uerr != nil && tt.upstreamOK:
				t.Fatalf("documented difference no longer holds: upstream rejects with %v", uerr)
			}
		})
	}
}

// key() relies on no non-ASCII rune folding (encoding/json uses
// unicode.SimpleFold orbits) onto a letter of "width" or "height".
func TestNoUnicodeFoldOntoKeyLetters(t *testing.T) {
	for _, c := range "widtheg" {
		for _, r := range []rune{c, unicode.ToUpper(c)} {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				if f >= 0x80 {
					t.Errorf("rune %U folds onto %q", f, c)
				}
			}
		}
	}
}

func TestEncode(t *testing.T) {
	for _, s := range []Size{{0, 0}, {80, 24}, {65535, 65535}} {
		b := Encode(s.Width, s.Height)
		got, err := Decode(b)
		if err != nil || got != s {
			t.Errorf("Decode(Encode(%v)) = %v, %v", s, got, err)
		}
		var up remotecommand.TerminalSize
		if err := json.Unmarshal(b, &up); err != nil || up.Width != s.Width || up.Height != s.Height {
			t.Errorf("upstream Unmarshal(%s) = %v, %v", b, up, err)
		}
	}
	if got := string(AppendEncode([]byte("x"), 80, 24)); got != `x{"Width":80,"Height":24}` {
		t.Errorf("AppendEncode = %s", got)
	}
}
