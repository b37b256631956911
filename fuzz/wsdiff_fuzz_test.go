package fuzz

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/internal/wsframe"
	"github.com/gorilla/websocket"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// The differential target drives the real k8s.io/streaming wsstream.Conn
// in-process: an httptest server opens a Conn with the five remotecommand
// channels, all readable so that every delivery is observable, and a
// gorilla client writes the fuzzed message followed by one flush marker per
// channel. wsstream's read loop is sequential and its channel pipes are
// synchronous, so once each channel's reader has seen its marker (or EOF)
// everything the fuzzed message caused has been observed. Connections are
// reused until a message closes a channel or kills the connection.

var diffProtocols = []string{"v4.channel.k8s.io", "v4.base64.channel.k8s.io", "v5.channel.k8s.io", "channel.k8s.io", "base64.channel.k8s.io"}

const (
	diffTimeout = 5 * time.Second
	// maxDiffMessage keeps fuzzed messages within one WebSocket frame:
	// wsstream (x/net/websocket) treats each frame as a message, see
	// TestFindingWSStreamSplitsFragmentedMessages.
	maxDiffMessage = 32 << 10
)

// flushNonce makes flush markers unguessable, so a fuzzed payload cannot
// pass for one.
var flushNonce = func() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "\x00gauntlet-flush-" + hex.EncodeToString(b) + "-"
}()

type chunk struct {
	data []byte
	eof  bool
}

type diffSession struct {
	proto  wsframe.Protocol
	client *websocket.Conn
	conn   *wsstream.Conn
	events [wsframe.RemoteCommandChannels]chan chunk
	eof    [wsframe.RemoteCommandChannels]bool
	seq    int
	done   chan struct{} // closed on drop, releases the reader goroutines
}

type diffServer struct {
	mu       sync.Mutex
	srv      *httptest.Server
	opened   chan *diffSession
	sessions map[string]*diffSession
}

var diff diffServer

func (d *diffServer) start() {
	if d.srv != nil {
		return
	}
	chans := make([]wsstream.ChannelType, wsframe.RemoteCommandChannels)
	for i := range chans {
		chans[i] = wsstream.ReadChannel
	}
	protocols := map[string]wsstream.ChannelProtocolConfig{}
	for _, name := range diffProtocols {
		p, _ := wsframe.ParseProtocol(name)
		protocols[name] = wsstream.ChannelProtocolConfig{Binary: !p.Base64, Channels: chans}
	}
	d.opened = make(chan *diffSession, 1)
	d.sessions = map[string]*diffSession{}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := wsstream.NewConn(protocols)
		_, streams, err := conn.Open(w, r)
		if err != nil {
			d.opened <- nil
			return
		}
		s := &diffSession{conn: conn, done: make(chan struct{})}
		for i, st := range streams {
			ev := make(chan chunk, 16)
			s.events[i] = ev
			go func(r io.Reader) {
				buf := make([]byte, maxDiffMessage+64)
				for {
					n, err := r.Read(buf)
					c := chunk{data: bytes.Clone(buf[:n]), eof: err != nil}
					select {
					case ev <- c:
					case <-s.done:
						return
					}
					if err != nil {
						return
					}
				}
			}(st)
		}
		d.opened <- s
	}))
}

// session returns a live connection for name, dialling if needed.
func (d *diffServer) session(t *testing.T, name string) *diffSession {
	d.start()
	if s := d.sessions[name]; s != nil {
		return s
	}
	dialer := websocket.Dialer{Subprotocols: []string{name}, HandshakeTimeout: diffTimeout, WriteBufferSize: maxDiffMessage + 64}
	client, _, err := dialer.Dial("ws"+strings.TrimPrefix(d.srv.URL, "http"), nil)
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	var s *diffSession
	select {
	case s = <-d.opened:
	case <-time.After(diffTimeout):
	}
	if s == nil {
		client.Close()
		t.Fatalf("wsstream.Conn.Open failed for %s", name)
	}
	s.client = client
	s.proto, _ = wsframe.ParseProtocol(name)
	s.proto.Channels = wsframe.RemoteCommandChannels
	d.sessions[name] = s
	return s
}

func (d *diffServer) drop(name string) {
	if s := d.sessions[name]; s != nil {
		close(s.done)
		s.client.Close()
		s.conn.Close()
		delete(d.sessions, name)
	}
}

// observed is what wsstream did with one message.
type observed struct {
	chunks [wsframe.RemoteCommandChannels][][]byte
	eof    [wsframe.RemoteCommandChannels]bool
}

func (o observed) String() string {
	var b strings.Builder
	for ch := range o.chunks {
		if len(o.chunks[ch]) > 0 || o.eof[ch] {
			fmt.Fprintf(&b, " ch%d:%q eof=%v", ch, o.chunks[ch], o.eof[ch])
		}
	}
	if b.Len() == 0 {
		return " nothing"
	}
	return b.String()
}

func (o observed) died() bool {
	for _, e := range o.eof {
		if !e {
			return false
		}
	}
	return true
}

// send writes msg, then a flush marker on every channel, and collects what
// each channel received before its marker.
func (s *diffSession) send(t *testing.T, typ int, msg []byte) observed {
	s.client.SetWriteDeadline(time.Now().Add(diffTimeout))
	if err := s.client.WriteMessage(typ, msg); err != nil {
		t.Fatalf("write fuzzed message: %v", err)
	}
	s.seq++
	marker := []byte(flushNonce + strconv.Itoa(s.seq))
	for ch := byte(0); ch < wsframe.RemoteCommandChannels; ch++ {
		mtyp, m, err := wsframe.Encode(wsframe.Frame{Channel: ch, Payload: marker}, s.proto)
		if err != nil {
			t.Fatal(err)
		}
		// The connection may already be gone; EOFs report that.
		s.client.WriteMessage(mtyp, m)
	}
	var o observed
	deadline := time.After(diffTimeout)
	for ch := range s.events {
		o.chunks[ch], o.eof[ch] = s.collect(t, ch, marker, deadline, msg)
	}
	return o
}

// collect returns what channel ch received before marker, and whether it
// reached EOF instead.
func (s *diffSession) collect(t *testing.T, ch int, marker []byte, deadline <-chan time.Time, msg []byte) (got [][]byte, eof bool) {
	for !s.eof[ch] {
		select {
		case c := <-s.events[ch]:
			switch {
			case c.eof:
				s.eof[ch] = true
			case bytes.Equal(c.data, marker):
				return got, false
			default:
				got = append(got, c.data)
			}
		case <-deadline:
			t.Fatalf("wsstream did not process %q within %v (channel %d)", msg, diffTimeout, ch)
		}
	}
	return got, true
}

// expect states what wsstream must do with msg given our decoding of it.
// Our decoder is deliberately stricter about the WebSocket message type
// (upstream ignores it); for those messages the expectation is the decoding
// under the protocol's own type, so that is the only difference allowed.
func expect(typ int, msg []byte, p wsframe.Protocol) (o observed, died bool, note string) {
	f, err := wsframe.Decode(typ, msg, p)
	if errors.Is(err, wsframe.ErrWrongMessageType) {
		other := wsframe.BinaryMessage
		if p.Base64 {
			other = wsframe.TextMessage
		}
		f, err = wsframe.Decode(other, msg, p)
		note = "message type ignored upstream (documented difference); "
	}
	switch {
	case errors.Is(err, wsframe.ErrBadClose), errors.Is(err, wsframe.ErrBadCloseChannel):
		return o, true, note + "malformed close signal kills the connection"
	case err != nil:
		return o, false, note + "dropped: " + err.Error()
	case f.IsClose():
		o.eof[f.Payload[0]] = true
		return o, false, note + "close signal"
	}
	o.chunks[f.Channel] = [][]byte{f.Payload}
	return o, false, note + "delivered"
}

func init() {
	seedSets["FuzzWSFrameDifferential"] = []seed{
		{"ready-stdout", []any{[]byte{1}, false, byte(0)}},
		{"stdin", []any{[]byte("\x00echo hi\n"), false, byte(0)}},
		{"resize", []any{[]byte("\x04" + `{"Width":80,"Height":24}`), false, byte(0)}},
		{"unknown-channel", []any{[]byte("\x07x"), false, byte(0)}},
		{"channel-255-v4", []any{[]byte{255, 0}, false, byte(0)}},
		{"text-on-binary", []any{[]byte("\x00text"), true, byte(0)}},
		{"empty", []any{[]byte{}, false, byte(0)}},
		{"base64-stdin", []any{b64(0, "echo hi\n"), true, byte(1)}},
		{"base64-ready", []any{[]byte("0"), true, byte(1)}},
		{"base64-newlines", []any{[]byte("0aGVs\r\nbG8="), true, byte(1)}},
		{"base64-bad", []any{[]byte("0a*=="), true, byte(1)}},
		{"base64-no-padding", []any{[]byte("0aGVsbG8"), true, byte(1)}},
		{"base64-letter-channel", []any{[]byte("xAA=="), true, byte(1)}},
		{"base64-wraparound-channel", []any{[]byte("/AA=="), true, byte(1)}},
		{"base64-as-binary", []any{b64(0, "x"), false, byte(4)}},
		{"v5-close-stdin", []any{[]byte{255, 0}, false, byte(2)}},
		{"v5-close-resize", []any{[]byte{255, 4}, false, byte(2)}},
		{"v5-close-as-text", []any{[]byte{255, 1}, true, byte(2)}},
		{"v5-close-short", []any{[]byte{255}, false, byte(2)}},
		{"v5-close-long", []any{[]byte{255, 0, 0}, false, byte(2)}},
		{"v5-close-beyond", []any{[]byte{255, 5}, false, byte(2)}},
		{"v5-close-255", []any{[]byte{255, 255}, false, byte(2)}},
		{"v1-stdin", []any{[]byte("\x00x"), false, byte(3)}},
	}
}

// FuzzWSFrameDifferential compares wsframe.Decode with what k8s.io/streaming's
// wsstream actually does with the same message on a live connection:
// delivered payload and channel, channel close, connection teardown, or
// nothing. Any difference other than the documented message-type leniency
// fails.
func FuzzWSFrameDifferential(f *testing.F) {
	addSeeds(f, "FuzzWSFrameDifferential")
	f.Fuzz(func(t *testing.T, msg []byte, text bool, pi byte) {
		if len(msg) > maxDiffMessage {
			return
		}
		diff.mu.Lock()
		defer diff.mu.Unlock()
		name := diffProtocols[int(pi)%len(diffProtocols)]
		s := diff.session(t, name)
		// Reuse the connection only after a clean exchange: a failure,
		// a closed channel or a dead connection all start afresh.
		keep := false
		defer func() {
			if !keep {
				diff.drop(name)
			}
		}()
		typ := msgType(text)
		got := s.send(t, typ, msg)
		want, died, note := expect(typ, msg, s.proto)
		if died {
			if !got.died() {
				t.Fatalf("%s: wsstream survived %q (%s), observed%v", name, msg, note, got)
			}
			return
		}
		if got.died() || got.String() != want.String() {
			t.Fatalf("%s: message %q (type %d): wsframe expects%v (%s); wsstream did%v", name, msg, typ, want, note, got)
		}
		keep = !slices.Contains(got.eof[:], true)
	})
}
