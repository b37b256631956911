// Package wsframe is the channel framing of the channel.k8s.io WebSocket
// family: one channel frame per WebSocket message, the channel number in the
// first byte (an ASCII digit for the base64 variants, whose payload is
// StdEncoding base64 in a text message). v5 adds the close signal [255, ch].
// Port-forward over WebSocket starts each channel with the port as a
// little-endian uint16.
package wsframe

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/gorilla/websocket"
)

// Channels.
const (
	Stdin  byte = 0
	Stdout byte = 1
	Stderr byte = 2
	Error  byte = 3
	Resize byte = 4
	Close  byte = 255 // v5 close signal
)

// WebSocket message types (gorilla's values).
const (
	TextMessage   = websocket.TextMessage
	BinaryMessage = websocket.BinaryMessage
)

// DefaultMaxMessage mirrors the server-side limit of k8s.io/streaming.
const DefaultMaxMessage = 32 << 20

// Sentinel errors.
var (
	ErrEmptyMessage      = errors.New("wsframe: empty message")
	ErrBadChannelDigit   = errors.New("wsframe: base64 frame channel is not an ASCII digit")
	ErrBadBase64         = errors.New("wsframe: invalid base64 payload")
	ErrFrameTooLarge     = errors.New("wsframe: message exceeds the size limit")
	ErrBadClose          = errors.New("wsframe: close signal must be exactly [255, channel]")
	ErrCloseNotSupported = errors.New("wsframe: close signal needs v5.channel.k8s.io")
	ErrShortPortPrefix   = errors.New("wsframe: port prefix needs 2 bytes")
	ErrWrongMessageType  = errors.New("wsframe: wrong WebSocket message type for the protocol")
)

// Protocol is a negotiated subprotocol's framing.
type Protocol struct {
	Name   string
	Base64 bool
	V5     bool // close signal allowed
}

// ParseProtocol maps a subprotocol name ("" = none, which is binary) to its framing.
func ParseProtocol(name string) (Protocol, bool) {
	switch name {
	case "", "channel.k8s.io", "v4.channel.k8s.io", "portforward.k8s.io":
		return Protocol{Name: name}, true
	case "base64.channel.k8s.io", "v4.base64.channel.k8s.io", "base64.binary.k8s.io", "v4.base64.portforward.k8s.io":
		return Protocol{Name: name, Base64: true}, true
	case "v5.channel.k8s.io":
		return Protocol{Name: name, V5: true}, true
	}
	return Protocol{Name: name}, false
}

// Frame is one channel frame.
type Frame struct {
	Channel byte
	Payload []byte
}

// IsClose reports whether f is a v5 close signal (payload = closed channel).
func (f Frame) IsClose() bool { return f.Channel == Close }

// Decode decodes one message. A v5 close signal decodes to Channel 255 with a
// one-byte payload naming the closed channel.
func Decode(msgType int, msg []byte, p Protocol) (Frame, error) {
	if len(msg) == 0 {
		return Frame{}, ErrEmptyMessage
	}
	if p.V5 && msg[0] == Close {
		if msgType != BinaryMessage {
			return Frame{}, ErrWrongMessageType
		}
		if len(msg) != 2 {
			return Frame{}, ErrBadClose
		}
		return Frame{Channel: Close, Payload: msg[1:2]}, nil
	}
	if p.Base64 {
		if msgType != TextMessage {
			return Frame{}, ErrWrongMessageType
		}
		if msg[0] < '0' || msg[0] > '9' {
			return Frame{}, ErrBadChannelDigit
		}
		dec := make([]byte, base64.StdEncoding.DecodedLen(len(msg)-1))
		n, err := base64.StdEncoding.Decode(dec, msg[1:])
		if err != nil {
			return Frame{}, errors.Join(ErrBadBase64, err)
		}
		return Frame{Channel: msg[0] - '0', Payload: dec[:n]}, nil
	}
	if msgType != BinaryMessage {
		return Frame{}, ErrWrongMessageType
	}
	return Frame{Channel: msg[0], Payload: msg[1:]}, nil
}

// Encode encodes one frame for p.
func Encode(f Frame, p Protocol) (int, []byte, error) {
	if f.Channel == Close {
		if !p.V5 {
			return 0, nil, ErrCloseNotSupported
		}
		if len(f.Payload) != 1 {
			return 0, nil, ErrBadClose
		}
		return BinaryMessage, []byte{Close, f.Payload[0]}, nil
	}
	if p.Base64 {
		if f.Channel > 9 {
			return 0, nil, ErrBadChannelDigit
		}
		out := make([]byte, 1+base64.StdEncoding.EncodedLen(len(f.Payload)))
		out[0] = '0' + f.Channel
		base64.StdEncoding.Encode(out[1:], f.Payload)
		return TextMessage, out, nil
	}
	out := make([]byte, 1+len(f.Payload))
	out[0] = f.Channel
	copy(out[1:], f.Payload)
	return BinaryMessage, out, nil
}

// CloseSignal is the v5 close message for channel ch.
func CloseSignal(ch byte) []byte { return []byte{Close, ch} }

// DecodePortPrefix reads the little-endian port that starts a port-forward channel.
func DecodePortPrefix(payload []byte) (uint16, []byte, error) {
	if len(payload) < 2 {
		return 0, nil, ErrShortPortPrefix
	}
	return binary.LittleEndian.Uint16(payload), payload[2:], nil
}

// AppendPortPrefix appends port as little-endian uint16.
func AppendPortPrefix(dst []byte, port uint16) []byte {
	return binary.LittleEndian.AppendUint16(dst, port)
}

// Framer reads and writes channel frames on a WebSocket connection with a
// size limit and a deadline per call, so no call can block forever.
type Framer struct {
	conn    *websocket.Conn
	proto   Protocol
	Timeout time.Duration
}

// NewFramer wraps conn; limit <= 0 means DefaultMaxMessage.
func NewFramer(conn *websocket.Conn, p Protocol, limit int64, timeout time.Duration) *Framer {
	if limit <= 0 {
		limit = DefaultMaxMessage
	}
	conn.SetReadLimit(limit)
	return &Framer{conn: conn, proto: p, Timeout: timeout}
}

// ReadFrame reads one frame.
func (fr *Framer) ReadFrame() (Frame, error) {
	if fr.Timeout > 0 {
		fr.conn.SetReadDeadline(time.Now().Add(fr.Timeout))
	}
	typ, msg, err := fr.conn.ReadMessage()
	if err != nil {
		if errors.Is(err, websocket.ErrReadLimit) {
			return Frame{}, ErrFrameTooLarge
		}
		return Frame{}, err
	}
	return Decode(typ, msg, fr.proto)
}

// WriteFrame writes one frame.
func (fr *Framer) WriteFrame(ch byte, payload []byte) error {
	typ, msg, err := Encode(Frame{Channel: ch, Payload: payload}, fr.proto)
	if err != nil {
		return err
	}
	if fr.Timeout > 0 {
		fr.conn.SetWriteDeadline(time.Now().Add(fr.Timeout))
	}
	return fr.conn.WriteMessage(typ, msg)
}

// WriteClose sends the v5 close signal for ch.
func (fr *Framer) WriteClose(ch byte) error { return fr.WriteFrame(Close, []byte{ch}) }
