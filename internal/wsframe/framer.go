package wsframe

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gorilla/websocket"
)

// DefaultTimeout bounds every Framer read and write unless SetTimeout
// chooses another bound. There is deliberately no way to disable it: a
// conformance harness must never hang on a silent peer.
const DefaultTimeout = 30 * time.Second

// keepBuffer is the largest buffer a Framer keeps between calls, so one huge
// message does not pin its memory for the connection's lifetime.
const keepBuffer = 1 << 20

// Framer reads and writes channel frames on a gorilla WebSocket connection.
//
// Like gorilla's Conn, a Framer supports one concurrent reader (ReadFrame)
// and one concurrent writer (WriteFrame, WriteClose); they use separate
// buffers.
type Framer struct {
	conn       *websocket.Conn
	proto      Protocol
	maxMessage int64
	timeout    time.Duration

	rbuf []byte // raw message being read
	dbuf []byte // decoded base64 payload
	wbuf []byte // encoded message being written
}

// NewFramer wraps conn for protocol p with DefaultMaxMessage and
// DefaultTimeout.
func NewFramer(conn *websocket.Conn, p Protocol) *Framer {
	fr := &Framer{conn: conn, proto: p, timeout: DefaultTimeout}
	fr.SetMaxMessage(DefaultMaxMessage)
	return fr
}

// Protocol returns the framing the Framer uses.
func (fr *Framer) Protocol() Protocol { return fr.proto }

// SetMaxMessage sets the largest message ReadFrame accepts (n <= 0 restores
// DefaultMaxMessage). gorilla enforces it from the frame headers, before
// buffering, and closes the connection with 1009 when it is exceeded.
func (fr *Framer) SetMaxMessage(n int64) {
	if n <= 0 {
		n = DefaultMaxMessage
	}
	fr.maxMessage = n
	fr.conn.SetReadLimit(n)
}

// SetTimeout sets the deadline applied to each ReadFrame and write
// (d <= 0 restores DefaultTimeout).
func (fr *Framer) SetTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultTimeout
	}
	fr.timeout = d
}

// ReadFrame reads the next message and decodes it. The returned Payload is
// only valid until the next ReadFrame call: it aliases the Framer's buffers.
// Decoding errors (see Decode) leave the connection usable; read errors,
// including ErrFrameTooLarge, do not.
func (fr *Framer) ReadFrame() (Frame, error) {
	if err := fr.conn.SetReadDeadline(time.Now().Add(fr.timeout)); err != nil {
		return Frame{}, err
	}
	typ, r, err := fr.conn.NextReader()
	if err != nil {
		return Frame{}, fr.readErr(err)
	}
	msg, err := readAll(fr.rbuf[:0], r)
	if cap(msg) <= keepBuffer {
		fr.rbuf = msg
	}
	if err != nil {
		return Frame{}, fr.readErr(err)
	}
	f, dbuf, err := decode(fr.dbuf, typ, msg, fr.proto)
	if cap(dbuf) <= keepBuffer {
		fr.dbuf = dbuf
	}
	return f, err
}

func (fr *Framer) readErr(err error) error {
	if errors.Is(err, websocket.ErrReadLimit) {
		return fmt.Errorf("%w (limit %d bytes): %w", ErrFrameTooLarge, fr.maxMessage, err)
	}
	return err
}

// readAll is io.ReadAll into a reused buffer.
func readAll(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// WriteFrame encodes payload for channel ch and writes it as one message.
func (fr *Framer) WriteFrame(ch byte, payload []byte) error {
	return fr.write(Frame{Channel: ch, Payload: payload})
}

// WriteClose writes the v5 close signal for ch.
func (fr *Framer) WriteClose(ch byte) error {
	return fr.write(Frame{Channel: Close, Payload: []byte{ch}})
}

func (fr *Framer) write(f Frame) error {
	typ, msg, err := AppendEncode(fr.wbuf[:0], f, fr.proto)
	if err != nil {
		return err
	}
	if cap(msg) <= keepBuffer {
		fr.wbuf = msg
	}
	if err := fr.conn.SetWriteDeadline(time.Now().Add(fr.timeout)); err != nil {
		return err
	}
	return fr.conn.WriteMessage(typ, msg)
}
