package fuzz

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/gauntlet-conformance/gauntlet/internal/wsframe"
)

func proto(name string, channels int) wsframe.Protocol {
	p, ok := wsframe.ParseProtocol(name)
	if !ok {
		panic(name)
	}
	p.Channels = channels
	return p
}

// binaryProtos and base64Protos are what the proto argument of the frame
// targets selects from (modulo their length).
var (
	binaryProtos = []wsframe.Protocol{
		proto("", 0), proto("channel.k8s.io", 0), proto("v4.channel.k8s.io", 0), proto("v5.channel.k8s.io", 0),
		proto("v4.channel.k8s.io", 5), proto("v5.channel.k8s.io", 5), proto("v4.channel.k8s.io", 4), proto("v5.channel.k8s.io", 2),
	}
	base64Protos = []wsframe.Protocol{
		proto("base64.channel.k8s.io", 0), proto("v4.base64.channel.k8s.io", 0),
		proto("v4.base64.channel.k8s.io", 5), proto("v4.base64.channel.k8s.io", 12), proto("v4.base64.channel.k8s.io", 200),
	}
)

func msgType(text bool) int {
	if text {
		return wsframe.TextMessage
	}
	return wsframe.BinaryMessage
}

func b64(ch byte, payload string) []byte {
	_, msg, err := wsframe.Encode(wsframe.Frame{Channel: ch, Payload: []byte(payload)}, proto("base64.channel.k8s.io", 0))
	if err != nil {
		panic(err)
	}
	return msg
}

func init() {
	seedSets["FuzzWSFrameBinary"] = []seed{
		{"ready-stdout", []any{[]byte{1}, false, byte(2)}},
		{"ready-stderr", []any{[]byte{2}, false, byte(4)}},
		{"stdout-hello", []any{[]byte("\x01hello\n"), false, byte(2)}},
		{"stdin-v1", []any{[]byte("\x00foo\n"), false, byte(1)}},
		{"status-success", []any{[]byte("\x03" + `{"metadata":{},"status":"Success"}`), false, byte(4)}},
		{"resize", []any{[]byte("\x04" + `{"Width":80,"Height":24}`), false, byte(5)}},
		{"close-stdin-v5", []any{[]byte{255, 0}, false, byte(3)}},
		{"close-resize-v5-5ch", []any{[]byte{255, 4}, false, byte(5)}},
		{"close-on-v4", []any{[]byte{255, 0}, false, byte(2)}},
		{"close-short", []any{[]byte{255}, false, byte(3)}},
		{"close-long", []any{[]byte{255, 0, 0}, false, byte(3)}},
		{"close-255", []any{[]byte{255, 255}, false, byte(3)}},
		{"close-beyond", []any{[]byte{255, 9}, false, byte(5)}},
		{"unknown-channel", []any{[]byte("\x09x"), false, byte(4)}},
		{"text-on-binary", []any{[]byte("\x01x"), true, byte(2)}},
		{"empty", []any{[]byte{}, false, byte(2)}},
		{"portforward-prefix", []any{[]byte{0, 0x90, 0x1f}, false, byte(2)}},
	}
	seedSets["FuzzWSFrameBase64"] = []seed{
		{"ready-stdout", []any{[]byte("1"), false, byte(0)}},
		{"stdout-hello", []any{b64(1, "hello\n"), false, byte(1)}},
		{"upstream-doc-example", []any{[]byte("0Zm9vCgo="), false, byte(0)}},
		{"status", []any{b64(3, `{"status":"Success"}`), false, byte(2)}},
		{"portforward-prefix", []any{b64(0, "\x90\x1f"), false, byte(3)}},
		{"channel-10", []any{[]byte(":AAE="), false, byte(3)}},
		{"newlines", []any{[]byte("1aGVs\r\nbG8="), false, byte(0)}},
		{"nonzero-trailing-bits", []any{[]byte("1QR=="), false, byte(0)}},
		{"bad-base64", []any{[]byte("1a*=="), false, byte(0)}},
		{"no-padding", []any{[]byte("1aGVsbG8"), false, byte(0)}},
		{"letter-channel", []any{[]byte("xAA=="), false, byte(0)}},
		{"binary-type", []any{[]byte("1eA=="), true, byte(1)}},
		{"close-shape", []any{[]byte{255, 0}, false, byte(1)}},
		{"empty", []any{[]byte{}, false, byte(0)}},
	}
	seedSets["FuzzWSClose"] = []seed{
		{"stdin", []any{[]byte{255, 0}, byte(5)}},
		{"resize", []any{[]byte{255, 4}, byte(5)}},
		{"beyond", []any{[]byte{255, 5}, byte(5)}},
		{"unknown-count", []any{[]byte{255, 9}, byte(0)}},
		{"255", []any{[]byte{255, 255}, byte(0)}},
		{"short", []any{[]byte{255}, byte(5)}},
		{"long", []any{[]byte{255, 0, 0}, byte(5)}},
		{"empty", []any{[]byte{}, byte(5)}},
		{"not-close", []any{[]byte{0, 0}, byte(5)}},
	}
	seedSets["FuzzPortPrefix"] = []seed{
		{"8080", []any{[]byte{0x90, 0x1f}}},
		{"80", []any{[]byte{0x50, 0x00}}},
		{"65535", []any{[]byte{0xff, 0xff}}},
		{"with-data", []any{[]byte("\x90\x1fGET / HTTP/1.1\r\n")}},
		{"short", []any{[]byte{0x90}}},
		{"empty", []any{[]byte{}}},
	}
}

var binaryErrs = []error{wsframe.ErrEmptyMessage, wsframe.ErrWrongMessageType, wsframe.ErrCloseNotSupported, wsframe.ErrBadClose, wsframe.ErrBadCloseChannel}

func isOneOf(err error, errs []error) bool {
	for _, e := range errs {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// FuzzWSFrameBinary: Decode never panics, fails only with the binary
// sentinels, agrees with the wire rules, and every decodable message
// re-encodes to exactly itself.
func FuzzWSFrameBinary(f *testing.F) {
	addSeeds(f, "FuzzWSFrameBinary")
	f.Fuzz(func(t *testing.T, msg []byte, text bool, pi byte) {
		p := binaryProtos[int(pi)%len(binaryProtos)]
		typ := msgType(text)
		fr, err := wsframe.Decode(typ, msg, p)

		// The wire rules, stated independently of the decoder.
		var want error
		switch {
		case len(msg) == 0:
			want = wsframe.ErrEmptyMessage
		case text:
			want = wsframe.ErrWrongMessageType
		case msg[0] == 255 && !p.V5:
			want = wsframe.ErrCloseNotSupported
		case msg[0] == 255 && len(msg) != 2:
			want = wsframe.ErrBadClose
		case msg[0] == 255 && (msg[1] == 255 || (p.Channels > 0 && int(msg[1]) >= p.Channels)):
			want = wsframe.ErrBadCloseChannel
		case msg[0] != 255 && p.Channels > 0 && int(msg[0]) >= p.Channels:
			want = wsframe.ErrUnknownChannel
		}
		if !errors.Is(err, want) || (err != nil && want == nil) {
			t.Fatalf("%s: Decode(%q) error %v, want %v", p.Name, msg, err, want)
		}
		if err != nil && !errors.Is(err, wsframe.ErrUnknownChannel) {
			if !isOneOf(err, binaryErrs) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if fr.IsClose() != (msg[0] == 255) {
			t.Fatalf("IsClose = %v for %q", fr.IsClose(), msg)
		}
		typ2, out, err := wsframe.Encode(fr, p)
		if err != nil || typ2 != typ || !bytes.Equal(out, msg) {
			t.Fatalf("Encode(Decode(%q)) = %d %q, %v", msg, typ2, out, err)
		}
	})
}

// FuzzWSFrameBase64: Decode never panics; a decoded payload equals the
// standard library's decoding; Encode(Decode(x)) decodes to the same frame,
// and is x itself when x is canonical base64.
func FuzzWSFrameBase64(f *testing.F) {
	addSeeds(f, "FuzzWSFrameBase64")
	f.Fuzz(func(t *testing.T, msg []byte, binary bool, pi byte) {
		p := base64Protos[int(pi)%len(base64Protos)]
		typ := msgType(!binary)
		fr, err := wsframe.Decode(typ, msg, p)
		switch {
		case len(msg) == 0:
			if !errors.Is(err, wsframe.ErrEmptyMessage) {
				t.Fatalf("empty: %v", err)
			}
			return
		case binary:
			if !errors.Is(err, wsframe.ErrWrongMessageType) {
				t.Fatalf("binary message: %v", err)
			}
			return
		}
		limit := max(10, min(p.Channels, 80))
		if msg[0] < '0' || int(msg[0]-'0') >= limit {
			if !errors.Is(err, wsframe.ErrBadChannelDigit) {
				t.Fatalf("channel byte %q: %v", msg[0], err)
			}
			return
		}
		ref, refErr := base64.StdEncoding.DecodeString(string(msg[1:]))
		if refErr != nil {
			if !errors.Is(err, wsframe.ErrBadBase64) {
				t.Fatalf("stdlib rejects %q (%v), Decode: %v", msg[1:], refErr, err)
			}
			return
		}
		if p.Channels > 0 && int(msg[0]-'0') >= p.Channels {
			if !errors.Is(err, wsframe.ErrUnknownChannel) {
				t.Fatalf("channel %d of %d: %v", msg[0]-'0', p.Channels, err)
			}
		} else if err != nil {
			t.Fatalf("Decode(%q): %v", msg, err)
		}
		if fr.Channel != msg[0]-'0' || !bytes.Equal(fr.Payload, ref) {
			t.Fatalf("Decode(%q) = %d %q, want %d %q", msg, fr.Channel, fr.Payload, msg[0]-'0', ref)
		}
		typ2, out, err := wsframe.Encode(fr, p)
		if err != nil || typ2 != wsframe.TextMessage {
			t.Fatalf("Encode: %d, %v", typ2, err)
		}
		back, err := wsframe.Decode(typ2, out, p)
		if (err != nil && !errors.Is(err, wsframe.ErrUnknownChannel)) || back.Channel != fr.Channel || !bytes.Equal(back.Payload, fr.Payload) {
			t.Fatalf("Decode(Encode(Decode(%q))) = %d %q, %v", msg, back.Channel, back.Payload, err)
		}
		_, strictErr := base64.StdEncoding.Strict().DecodeString(string(msg[1:]))
		canonical := strictErr == nil && !bytes.ContainsAny(msg, "\r\n")
		if canonical && !bytes.Equal(out, msg) {
			t.Fatalf("canonical %q re-encoded as %q", msg, out)
		}
	})
}

// FuzzWSClose: strict v5 close validation, consistent between
// CloseChannel, Decode and AppendClose.
func FuzzWSClose(f *testing.F) {
	addSeeds(f, "FuzzWSClose")
	f.Fuzz(func(t *testing.T, msg []byte, channels byte) {
		ch, err := wsframe.CloseChannel(msg, int(channels))
		valid := len(msg) == 2 && msg[0] == 255 && msg[1] != 255 && (channels == 0 || msg[1] < channels)
		if valid != (err == nil) {
			t.Fatalf("CloseChannel(%q, %d) = %d, %v; valid %v", msg, channels, ch, err, valid)
		}
		if err != nil {
			if !isOneOf(err, []error{wsframe.ErrBadClose, wsframe.ErrBadCloseChannel}) {
				t.Fatalf("unexpected error %v", err)
			}
			if len(msg) == 2 && msg[0] == 255 && !errors.Is(err, wsframe.ErrBadCloseChannel) {
				t.Fatalf("right shape, wrong channel must be ErrBadCloseChannel: %v", err)
			}
		} else if ch != msg[1] || !bytes.Equal(wsframe.AppendClose(nil, ch), msg) || !bytes.Equal(wsframe.CloseSignal(ch), msg) {
			t.Fatalf("close of %d does not re-encode to %q", ch, msg)
		}
		if !wsframe.IsClose(msg) {
			return
		}
		p := proto("v5.channel.k8s.io", int(channels))
		fr, derr := wsframe.Decode(wsframe.BinaryMessage, msg, p)
		if (derr == nil) != (err == nil) || (derr == nil && (!fr.IsClose() || fr.Payload[0] != ch)) {
			t.Fatalf("Decode(%q) = %+v, %v; CloseChannel %d, %v", msg, fr, derr, ch, err)
		}
	})
}

// FuzzPortPrefix: the port prefix decodes as little-endian, re-encodes to
// the same bytes, and survives a trip through both frame encodings.
func FuzzPortPrefix(f *testing.F) {
	addSeeds(f, "FuzzPortPrefix")
	f.Fuzz(func(t *testing.T, payload []byte) {
		port, rest, err := wsframe.DecodePortPrefix(payload)
		if len(payload) < 2 {
			if !errors.Is(err, wsframe.ErrShortPortPrefix) {
				t.Fatalf("short prefix %q: %v", payload, err)
			}
			return
		}
		if err != nil || port != uint16(payload[0])|uint16(payload[1])<<8 || !bytes.Equal(rest, payload[2:]) {
			t.Fatalf("DecodePortPrefix(%q) = %d %q, %v", payload, port, rest, err)
		}
		if got := append(wsframe.AppendPortPrefix(nil, port), rest...); !bytes.Equal(got, payload) {
			t.Fatalf("AppendPortPrefix round trip: %q", got)
		}
		for _, p := range []wsframe.Protocol{proto("v4.channel.k8s.io", 2), proto("v4.base64.channel.k8s.io", 2)} {
			data, _ := wsframe.PortChannels(0)
			typ, msg, err := wsframe.Encode(wsframe.Frame{Channel: data, Payload: payload[:2]}, p)
			if err != nil {
				t.Fatal(err)
			}
			fr, err := wsframe.Decode(typ, msg, p)
			if err != nil {
				t.Fatal(err)
			}
			if got, _, err := wsframe.DecodePortPrefix(fr.Payload); err != nil || got != port {
				t.Fatalf("%s: port %d came back as %d, %v", p.Name, port, got, err)
			}
		}
	})
}
