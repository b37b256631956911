package wsframe

import (
	"bytes"
	"errors"
	"testing"
)

var (
	v1    = mustProto("channel.k8s.io")
	v4    = mustProto("v4.channel.k8s.io")
	v5    = mustProto("v5.channel.k8s.io")
	b64   = mustProto("base64.channel.k8s.io")
	v4b64 = mustProto("v4.base64.channel.k8s.io")
)

func mustProto(name string) Protocol {
	p, ok := ParseProtocol(name)
	if !ok {
		panic(name)
	}
	return p
}

func with(p Protocol, channels int) Protocol { p.Channels = channels; return p }

func TestParseProtocol(t *testing.T) {
	tests := []struct {
		name string
		want Protocol
		ok   bool
	}{
		{"", Protocol{Name: "", Version: 1}, true},
		{"channel.k8s.io", Protocol{Name: "channel.k8s.io", Version: 1}, true},
		{"v2.channel.k8s.io", Protocol{Name: "v2.channel.k8s.io", Version: 2}, true},
		{"v3.channel.k8s.io", Protocol{Name: "v3.channel.k8s.io", Version: 3}, true},
		{"v4.channel.k8s.io", Protocol{Name: "v4.channel.k8s.io", Version: 4}, true},
		{"v5.channel.k8s.io", Protocol{Name: "v5.channel.k8s.io", Version: 5, V5: true}, true},
		{"base64.channel.k8s.io", Protocol{Name: "base64.channel.k8s.io", Version: 1, Base64: true}, true},
		{"v4.base64.channel.k8s.io", Protocol{Name: "v4.base64.channel.k8s.io", Version: 4, Base64: true}, true},
		// Reader (log) protocols have no channel byte; SPDY names are not WebSocket framings.
		{"base64.binary.k8s.io", Protocol{Name: "base64.binary.k8s.io"}, false},
		{"binary.k8s.io", Protocol{Name: "binary.k8s.io"}, false},
		{"portforward.k8s.io", Protocol{Name: "portforward.k8s.io"}, false},
		{"SPDY/3.1+portforward.k8s.io", Protocol{Name: "SPDY/3.1+portforward.k8s.io"}, false},
		{"V4.channel.k8s.io", Protocol{Name: "V4.channel.k8s.io"}, false},
		{"v5.base64.channel.k8s.io", Protocol{Name: "v5.base64.channel.k8s.io"}, false},
	}
	for _, tt := range tests {
		got, ok := ParseProtocol(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseProtocol(%q) = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		typ     int
		msg     string
		p       Protocol
		want    Frame
		wantErr error
	}{
		{"ready frame stdout", BinaryMessage, "\x01", v4, Frame{Channel: 1, Payload: []byte{}}, nil},
		{"stdout payload", BinaryMessage, "\x01hello\n", v4, Frame{Channel: 1, Payload: []byte("hello\n")}, nil},
		{"stdin v1", BinaryMessage, "\x00foo\n", v1, Frame{Channel: 0, Payload: []byte("foo\n")}, nil},
		{"status channel", BinaryMessage, "\x03{\"status\":\"Success\"}", v4, Frame{Channel: 3, Payload: []byte(`{"status":"Success"}`)}, nil},
		{"unknown channel is reported with frame", BinaryMessage, "\x07x", with(v4, 5), Frame{Channel: 7, Payload: []byte("x")}, ErrUnknownChannel},
		{"unknown channel unchecked without count", BinaryMessage, "\x07x", v4, Frame{Channel: 7, Payload: []byte("x")}, nil},
		{"v5 data", BinaryMessage, "\x00abc", v5, Frame{Channel: 0, Payload: []byte("abc")}, nil},
		{"v5 close stdin", BinaryMessage, "\xff\x00", v5, Frame{Channel: Close, Payload: []byte{0}}, nil},
		{"v5 close resize", BinaryMessage, "\xff\x04", with(v5, 5), Frame{Channel: Close, Payload: []byte{4}}, nil},
		{"base64 stdout", TextMessage, "1aGVsbG8=", b64, Frame{Channel: 1, Payload: []byte("hello")}, nil},
		{"base64 ready frame", TextMessage, "1", v4b64, Frame{Channel: 1, Payload: []byte{}}, nil},
		{"base64 upstream doc example", TextMessage, "0Zm9vCgo=", b64, Frame{Channel: 0, Payload: []byte("foo\n\n")}, nil},
		{"base64 ignores newlines like upstream", TextMessage, "1aGVs\r\nbG8=", b64, Frame{Channel: 1, Payload: []byte("hello")}, nil},
		{"base64 channel 10 with 12 channels", TextMessage, ":AAE=", with(v4b64, 12), Frame{Channel: 10, Payload: []byte{0, 1}}, nil},
		{"base64 digit beyond count", TextMessage, "7", with(v4b64, 5), Frame{Channel: 7, Payload: []byte{}}, ErrUnknownChannel},

		{"empty binary", BinaryMessage, "", v4, Frame{}, ErrEmptyMessage},
		{"empty text", TextMessage, "", b64, Frame{}, ErrEmptyMessage},
		{"text on binary protocol", TextMessage, "\x01x", v4, Frame{}, ErrWrongMessageType},
		{"binary on base64 protocol", BinaryMessage, "1eA==", b64, Frame{}, ErrWrongMessageType},
		{"close as text", TextMessage, "\xff\x00", v5, Frame{}, ErrWrongMessageType},
		{"base64 letter channel", TextMessage, "xAA==", b64, Frame{}, ErrBadChannelDigit},
		{"base64 colon without count", TextMessage, ":", b64, Frame{}, ErrBadChannelDigit},
		{"base64 below digit", TextMessage, "/", b64, Frame{}, ErrBadChannelDigit},
		{"base64 invalid alphabet", TextMessage, "1a*==", b64, Frame{}, ErrBadBase64},
		{"base64 missing padding", TextMessage, "1aGVsbG8", b64, Frame{}, ErrBadBase64},
		{"base64 url alphabet", TextMessage, "1-_8=", b64, Frame{}, ErrBadBase64},
		{"close on v4", BinaryMessage, "\xff\x00", v4, Frame{}, ErrCloseNotSupported},
		{"close on v1", BinaryMessage, "\xff", v1, Frame{}, ErrCloseNotSupported},
		{"close too short", BinaryMessage, "\xff", v5, Frame{}, ErrBadClose},
		{"close too long", BinaryMessage, "\xff\x00\x00", v5, Frame{}, ErrBadClose},
		{"close of 255", BinaryMessage, "\xff\xff", v5, Frame{}, ErrBadCloseChannel},
		{"close beyond count", BinaryMessage, "\xff\x05", with(v5, 5), Frame{}, ErrBadCloseChannel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.typ, []byte(tt.msg), tt.p)
			if !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got.Channel != tt.want.Channel || !bytes.Equal(got.Payload, tt.want.Payload) {
				t.Fatalf("frame = %d %q, want %d %q", got.Channel, got.Payload, tt.want.Channel, tt.want.Payload)
			}
			if tt.want.Payload != nil && got.Payload == nil {
				t.Fatal("payload must be empty, not nil, for a valid frame")
			}
		})
	}
}

func TestDecodeAliasesBinaryPayload(t *testing.T) {
	msg := []byte("\x01abc")
	f, err := Decode(BinaryMessage, msg, v4)
	if err != nil || &f.Payload[0] != &msg[1] {
		t.Fatalf("binary payload should alias msg (err %v)", err)
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name    string
		f       Frame
		p       Protocol
		typ     int
		want    string
		wantErr error
	}{
		{"binary", Frame{1, []byte("hi")}, v4, BinaryMessage, "\x01hi", nil},
		{"binary empty", Frame{2, nil}, v4, BinaryMessage, "\x02", nil},
		{"binary unknown channel allowed", Frame{9, []byte("x")}, with(v4, 5), BinaryMessage, "\x09x", nil},
		{"base64", Frame{0, []byte("foo\n")}, b64, TextMessage, "0Zm9vCg==", nil},
		{"base64 empty", Frame{1, nil}, v4b64, TextMessage, "1", nil},
		{"base64 channel 11", Frame{11, []byte{1}}, with(v4b64, 12), TextMessage, ";AQ==", nil},
		{"close", Frame{Close, []byte{0}}, v5, BinaryMessage, "\xff\x00", nil},

		{"base64 channel 10", Frame{10, nil}, b64, 0, "", ErrBadChannelDigit},
		{"base64 channel 208 wraps", Frame{208, nil}, with(v4b64, 255), 0, "", ErrBadChannelDigit},
		{"base64 channel 80 not ASCII", Frame{80, nil}, with(v4b64, 200), 0, "", ErrBadChannelDigit},
		{"close on v4", Frame{Close, []byte{0}}, v4, 0, "", ErrCloseNotSupported},
		{"close on base64", Frame{Close, []byte{0}}, Protocol{Base64: true, V5: true}, 0, "", ErrCloseNotSupported},
		{"close without channel", Frame{Close, nil}, v5, 0, "", ErrBadClose},
		{"close with two channels", Frame{Close, []byte{0, 1}}, v5, 0, "", ErrBadClose},
		{"close of 255", Frame{Close, []byte{255}}, v5, 0, "", ErrBadCloseChannel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, msg, err := Encode(tt.f, tt.p)
			if !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if typ != tt.typ || string(msg) != tt.want {
				t.Fatalf("Encode = %d %q, want %d %q", typ, msg, tt.typ, tt.want)
			}
			if err != nil {
				return
			}
			back, err := Decode(typ, msg, tt.p)
			if errors.Is(err, ErrUnknownChannel) {
				err = nil // Encode may address channels Decode reports as unknown
			}
			if err != nil || back.Channel != tt.f.Channel || !bytes.Equal(back.Payload, tt.f.Payload) {
				t.Fatalf("Decode(Encode) = %d %q, %v", back.Channel, back.Payload, err)
			}
		})
	}
}

func TestAppendEncodeKeepsPrefix(t *testing.T) {
	dst := []byte("keep")
	for _, p := range []Protocol{v4, b64, v5} {
		_, out, err := AppendEncode(dst, Frame{1, []byte("xyz")}, p)
		if err != nil || string(out[:4]) != "keep" {
			t.Fatalf("%s: %q, %v", p.Name, out, err)
		}
		f, err := Decode(map[bool]int{true: TextMessage, false: BinaryMessage}[p.Base64], out[4:], p)
		if err != nil || string(f.Payload) != "xyz" {
			t.Fatalf("%s: %q, %v", p.Name, f.Payload, err)
		}
	}
}

func TestCloseChannel(t *testing.T) {
	tests := []struct {
		msg      string
		channels int
		want     byte
		wantErr  error
	}{
		{"\xff\x00", 5, 0, nil},
		{"\xff\x04", 5, 4, nil},
		{"\xff\x09", 0, 9, nil},
		{"\xff\xfe", 0, 254, nil},
		{"\xff\x05", 5, 0, ErrBadCloseChannel},
		{"\xff\xff", 0, 0, ErrBadCloseChannel},
		{"", 5, 0, ErrBadClose},
		{"\xff", 5, 0, ErrBadClose},
		{"\xff\x00\x00", 5, 0, ErrBadClose},
		{"\x00\x00", 5, 0, ErrBadClose},
	}
	for _, tt := range tests {
		got, err := CloseChannel([]byte(tt.msg), tt.channels)
		if got != tt.want || !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
			t.Errorf("CloseChannel(%q, %d) = %d, %v; want %d, %v", tt.msg, tt.channels, got, err, tt.want, tt.wantErr)
		}
	}
	if !IsClose(CloseSignal(3)) || IsClose([]byte{3}) || IsClose(nil) {
		t.Error("IsClose misclassifies")
	}
	if got := AppendClose([]byte{1}, 2); !bytes.Equal(got, []byte{1, 255, 2}) {
		t.Errorf("AppendClose = %v", got)
	}
	if (Frame{Close, []byte{1}}).IsClose() != true || (Frame{Close, nil}).IsClose() || (Frame{1, []byte{1}}).IsClose() {
		t.Error("Frame.IsClose misclassifies")
	}
}

func TestPortPrefix(t *testing.T) {
	tests := []struct {
		in      string
		port    uint16
		rest    string
		wantErr error
	}{
		{"\x90\x1f", 8080, "", nil},
		{"\x50\x00", 80, "", nil},
		{"\xff\xff", 65535, "", nil},
		{"\x90\x1fdata", 8080, "data", nil},
		{"", 0, "", ErrShortPortPrefix},
		{"\x90", 0, "", ErrShortPortPrefix},
	}
	for _, tt := range tests {
		port, rest, err := DecodePortPrefix([]byte(tt.in))
		if port != tt.port || string(rest) != tt.rest || !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
			t.Errorf("DecodePortPrefix(%q) = %d, %q, %v", tt.in, port, rest, err)
		}
		if err == nil && string(AppendPortPrefix(nil, port)) != tt.in[:2] {
			t.Errorf("AppendPortPrefix(%d) mismatch", port)
		}
	}
	for i, want := range [][2]byte{{0, 1}, {2, 3}, {4, 5}} {
		if d, e := PortChannels(i); d != want[0] || e != want[1] {
			t.Errorf("PortChannels(%d) = %d, %d", i, d, e)
		}
	}
}
