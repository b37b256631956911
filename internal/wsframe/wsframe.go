// Package wsframe is the channel framing of the channel.k8s.io WebSocket
// family as served by k8s.io/streaming's wsstream (exec, attach and
// port-forward of the CRI streaming server).
//
// One WebSocket message carries one channel frame:
//
//	binary protocols: binary message, byte 0 = channel, rest = payload
//	base64 protocols: text message, byte 0 = '0'+channel, rest = StdEncoding base64 of the payload
//	v5 close signal:  binary message [255, ch]: the peer half-closes channel ch
//
// Port-forward over WebSocket opens two channels per requested port (data 2i,
// error 2i+1) and the server starts each with the port as a little-endian
// uint16 in a frame of its own.
//
// Decode and Encode are pure functions so that fuzzers and tests can drive
// them without a connection; Framer adds a gorilla connection, a message size
// limit and per-call deadlines.
package wsframe

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
)

// Channel numbers of remotecommand (exec/attach). They match the POSIX file
// descriptors for 0-2, then the error/status and resize channels.
const (
	Stdin  byte = 0
	Stdout byte = 1
	Stderr byte = 2
	Error  byte = 3
	Resize byte = 4
	// Close is the first byte of a v5 close signal. wsstream reserves 255 in
	// every version, but only v5.channel.k8s.io gives it a meaning.
	Close byte = 255
)

// RemoteCommandChannels is how many channels an exec/attach connection has.
const RemoteCommandChannels = 5

// WebSocket message types: the RFC 6455 opcodes, which are also gorilla's
// TextMessage and BinaryMessage values.
const (
	TextMessage   = 1
	BinaryMessage = 2
)

// DefaultMaxMessage is the largest message a Framer accepts by default. It is
// the limit the upstream server enforces: wsstream reads with
// golang.org/x/net/websocket, whose DefaultMaxPayloadBytes is 32 MiB.
const DefaultMaxMessage = 32 << 20

// maxBase64Channels bounds channel numbers in base64 protocols: upstream
// writes the prefix as string('0'+ch), which stays one byte only while
// '0'+ch < 0x80, i.e. ch < 80.
const maxBase64Channels = 0x80 - '0'

// Sentinel errors. Decode, Encode and Framer wrap them with detail where it
// helps, so compare with errors.Is.
var (
	ErrEmptyMessage      = errors.New("wsframe: empty message")
	ErrWrongMessageType  = errors.New("wsframe: wrong WebSocket message type for the protocol")
	ErrBadChannelDigit   = errors.New("wsframe: base64 frame does not start with a channel digit")
	ErrUnknownChannel    = errors.New("wsframe: channel not in the negotiated range")
	ErrBadBase64         = errors.New("wsframe: invalid base64 payload")
	ErrFrameTooLarge     = errors.New("wsframe: message exceeds the size limit")
	ErrBadClose          = errors.New("wsframe: close signal must be exactly [255, channel]")
	ErrBadCloseChannel   = errors.New("wsframe: close signal names an invalid channel")
	ErrCloseNotSupported = errors.New("wsframe: close signal needs v5.channel.k8s.io")
	ErrShortPortPrefix   = errors.New("wsframe: port prefix needs 2 bytes")
)

// Protocol is the framing of one negotiated subprotocol.
type Protocol struct {
	// Name is the negotiated Sec-WebSocket-Protocol ("" when none was).
	Name string
	// Version is the remotecommand version the name implies: 1 for
	// the unversioned names, else the vN prefix.
	Version int
	// Base64 selects text messages with a channel digit and a base64
	// payload instead of binary messages.
	Base64 bool
	// V5 allows the close signal [255, ch].
	V5 bool
	// Channels is how many channels the connection has (5 for exec and
	// attach, 2 per port for port-forward); 0 means unknown, which leaves
	// channel numbers unchecked and base64 channels at '0'..'9'. The
	// subprotocol name does not say, so ParseProtocol leaves it 0.
	Channels int
}

// ParseProtocol maps a negotiated subprotocol name to its framing. The empty
// name (no subprotocol) is binary, as upstream treats it. Unknown names
// return the binary framing and false, so callers that ignore ok still get a
// usable Protocol.
//
// binary.k8s.io and base64.binary.k8s.io are not accepted: upstream uses them
// only for wsstream.Reader (log streaming), whose messages carry no channel
// byte. portforward.k8s.io is the SPDY name; port-forward over WebSocket
// negotiates "", v4.channel.k8s.io or v4.base64.channel.k8s.io.
func ParseProtocol(name string) (Protocol, bool) {
	p := Protocol{Name: name, Version: 1}
	switch name {
	case "", "channel.k8s.io":
	case "v2.channel.k8s.io":
		p.Version = 2
	case "v3.channel.k8s.io":
		p.Version = 3
	case "v4.channel.k8s.io":
		p.Version = 4
	case "v5.channel.k8s.io":
		p.Version, p.V5 = 5, true
	case "base64.channel.k8s.io":
		p.Base64 = true
	case "v4.base64.channel.k8s.io":
		p.Version, p.Base64 = 4, true
	default:
		return Protocol{Name: name}, false
	}
	return p, true
}

// Frame is one channel frame. A v5 close signal is Channel == Close with the
// closed channel as its one-byte Payload.
type Frame struct {
	Channel byte
	Payload []byte
}

// IsClose reports whether f is a v5 close signal.
func (f Frame) IsClose() bool { return f.Channel == Close && len(f.Payload) == 1 }

// Decode decodes one WebSocket message. For binary protocols the Payload
// aliases msg; base64 payloads are decoded into a new slice. Empty payloads
// are valid: the server's first frame on a readable channel is empty.
//
// With ErrUnknownChannel the decoded frame is returned too: upstream drops
// such frames silently, and a harness may want to see them.
func Decode(messageType int, msg []byte, p Protocol) (Frame, error) {
	f, _, err := decode(nil, messageType, msg, p)
	return f, err
}

// decode is Decode with a caller-owned buffer for base64 payloads; it
// returns the (possibly grown) buffer so a Framer can reuse it.
func decode(buf []byte, messageType int, msg []byte, p Protocol) (Frame, []byte, error) {
	if len(msg) == 0 {
		return Frame{}, buf, ErrEmptyMessage
	}
	if p.Base64 {
		if messageType != TextMessage {
			return Frame{}, buf, ErrWrongMessageType
		}
		ch, err := base64Channel(msg[0], p.Channels)
		if err != nil {
			return Frame{}, buf, err
		}
		src := msg[1:]
		n := base64.StdEncoding.DecodedLen(len(src))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		// StdEncoding ignores '\r' and '\n' and tolerates non-zero
		// trailing bits, exactly like the upstream decoder.
		n, err = base64.StdEncoding.Decode(buf[:n], src)
		if err != nil {
			return Frame{}, buf, errors.Join(ErrBadBase64, err)
		}
		f := Frame{Channel: ch, Payload: buf[:n:n]}
		if n == 0 {
			f.Payload = msg[1:1] // empty, never nil, like binary payloads
		}
		return f, buf, checkChannel(ch, p.Channels)
	}
	if messageType != BinaryMessage {
		return Frame{}, buf, ErrWrongMessageType
	}
	if msg[0] == Close {
		if !p.V5 {
			return Frame{}, buf, ErrCloseNotSupported
		}
		if _, err := CloseChannel(msg, p.Channels); err != nil {
			return Frame{}, buf, err
		}
		return Frame{Channel: Close, Payload: msg[1:2:2]}, buf, nil
	}
	f := Frame{Channel: msg[0], Payload: msg[1:]}
	return f, buf, checkChannel(msg[0], p.Channels)
}

// base64Channel maps the channel character of a base64 frame to its number.
// Upstream computes data[0]-'0'; we accept only what its writer can produce.
func base64Channel(c byte, channels int) (byte, error) {
	limit := 10
	if channels > limit {
		limit = min(channels, maxBase64Channels)
	}
	if c < '0' || int(c-'0') >= limit {
		return 0, ErrBadChannelDigit
	}
	return c - '0', nil
}

func checkChannel(ch byte, channels int) error {
	if channels > 0 && int(ch) >= channels {
		return ErrUnknownChannel
	}
	return nil
}

// Encode encodes f for p. It is AppendEncode into a new slice.
func Encode(f Frame, p Protocol) (messageType int, msg []byte, err error) {
	return AppendEncode(nil, f, p)
}

// AppendEncode appends the message for f to dst and returns its WebSocket
// message type. It rejects only frames that p cannot represent (a close
// signal outside v5, a base64 channel without a digit); channel numbers
// beyond p.Channels are allowed so that a harness can send them.
func AppendEncode(dst []byte, f Frame, p Protocol) (messageType int, msg []byte, err error) {
	if f.Channel == Close {
		if !p.V5 || p.Base64 {
			return 0, dst, ErrCloseNotSupported
		}
		if len(f.Payload) != 1 {
			return 0, dst, ErrBadClose
		}
		if f.Payload[0] == Close {
			return 0, dst, ErrBadCloseChannel
		}
		return BinaryMessage, append(dst, Close, f.Payload[0]), nil
	}
	if p.Base64 {
		// '0'+ch wraps for ch >= 208, which base64Channel then rejects.
		if _, err := base64Channel('0'+f.Channel, p.Channels); err != nil {
			return 0, dst, err
		}
		n, m := len(dst), base64.StdEncoding.EncodedLen(len(f.Payload))
		dst = slices.Grow(dst, 1+m)[:n+1+m]
		dst[n] = '0' + f.Channel
		base64.StdEncoding.Encode(dst[n+1:], f.Payload)
		return TextMessage, dst, nil
	}
	dst = append(dst, f.Channel)
	return BinaryMessage, append(dst, f.Payload...), nil
}

// IsClose reports whether a binary message has the shape of a v5 close
// signal (first byte 255), valid or not. Use CloseChannel to validate it.
func IsClose(msg []byte) bool { return len(msg) > 0 && msg[0] == Close }

// CloseChannel validates a v5 close signal strictly and returns the channel
// it closes: exactly two bytes, 255 then a channel below channels (any
// channel but 255 when channels <= 0). Upstream tears the whole connection
// down on a close signal of another length or for a channel it does not
// have, so both are errors here, not ignorable frames.
func CloseChannel(msg []byte, channels int) (byte, error) {
	if len(msg) != 2 || msg[0] != Close {
		return 0, ErrBadClose
	}
	ch := msg[1]
	if ch == Close || (channels > 0 && int(ch) >= channels) {
		return 0, ErrBadCloseChannel
	}
	return ch, nil
}

// AppendClose appends the v5 close signal for ch to dst.
func AppendClose(dst []byte, ch byte) []byte { return append(dst, Close, ch) }

// CloseSignal returns the v5 close signal for ch.
func CloseSignal(ch byte) []byte { return []byte{Close, ch} }

// PortChannels returns the data and error channel of the i-th requested port
// in a port-forward connection.
func PortChannels(i int) (data, errCh byte) { return byte(2 * i), byte(2*i + 1) }

// DecodePortPrefix reads the little-endian port that starts each
// port-forward channel. Upstream sends the two bytes as a frame of their
// own, so rest is normally empty; it is returned rather than rejected so
// that a caller can check framing itself.
func DecodePortPrefix(payload []byte) (port uint16, rest []byte, err error) {
	if len(payload) < 2 {
		return 0, nil, ErrShortPortPrefix
	}
	return binary.LittleEndian.Uint16(payload), payload[2:], nil
}

// AppendPortPrefix appends port as a little-endian uint16 to dst.
func AppendPortPrefix(dst []byte, port uint16) []byte {
	return binary.LittleEndian.AppendUint16(dst, port)
}
