package fuzz

// Reproductions of upstream behaviour found while building the codecs and
// fuzzers. Each test asserts what upstream does today, so it fails (and
// the finding needs revisiting) when upstream changes. Findings that need
// the whole cri-streaming server live in ./findings: its dependencies
// would double the per-execution cost of every fuzz target here, since go
// test -fuzz instruments every package in the test binary.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/internal/wsframe"
	"github.com/gorilla/websocket"
	"github.com/moby/spdystream/spdy"

	"github.com/gauntlet-conformance/gauntlet/internal/spdyraw"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// spdystream v0.5.1 caps the header count (1000) and each name/value
// (1 MiB), the CVE-2026-35469 fixes, but a value is still split at every NUL
// into its own string after decompression. One header whose value is 1 MiB
// of NULs deflates to ~1 KiB; the framer turns it into 1,048,577 strings.
// At the limits (1000 such headers, ~1 MiB frame) that is on the order of
// 100 GiB allocated and ~17 GiB retained from one frame.
func TestFindingSPDYHeaderValueFanout(t *testing.T) {
	in := spdyraw.SynStream(1, spdyraw.Deflate(spdyraw.Pairs("a", string(make([]byte, spdyMaxFieldSize)))), -1)
	before := heapAllocs()
	fr, _ := spdy.NewFramer(io.Discard, bytes.NewReader(in))
	frame, err := fr.ReadFrame()
	allocated := heapAllocs() - before
	if err != nil {
		t.Fatalf("upstream now rejects the fan-out frame: %v", err)
	}
	values := len(frame.(*spdy.SynStreamFrame).Headers["A"])
	t.Logf("FINDING: %d-byte SYN_STREAM -> %d header values, %d MiB allocated (%.0fx)",
		len(in), values, allocated>>20, float64(allocated)/float64(len(in)))
	if values != spdyMaxFieldSize+1 {
		t.Fatalf("values = %d", values)
	}
}

// spdystream trusts the fields it reads over the frame's length: a
// RST_STREAM or PING is read at its fixed size whatever the length says,
// and a SETTINGS frame's bytes beyond its entries are not skipped. The
// parser then resumes inside a frame, so its view of the stream differs
// from any length-respecting parser's (frame smuggling).
func TestFindingSPDYFramingDesync(t *testing.T) {
	ping := spdyraw.Control(spdy.TypePing, 0, binary.BigEndian.AppendUint32(nil, 7), -1)
	settings := append(binary.BigEndian.AppendUint32(nil, 1), 0, 0, 0, 7, 0, 0, 0x10, 0) // 1 entry
	settings = append(settings, ping...)                                                 // hidden in the payload
	in := spdyraw.Control(spdy.TypeSettings, 0, settings, -1)
	fr, _ := spdy.NewFramer(io.Discard, bytes.NewReader(in))
	var got []string
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		got = append(got, typeName(f))
	}
	t.Logf("FINDING: one %d-byte SETTINGS frame is read as %v", len(in), got)
	if strings.Join(got, ",") != "SettingsFrame,PingFrame" {
		t.Fatalf("frames = %v", got)
	}

	// RST_STREAM with length 0 swallows the next 8 bytes (here the start
	// of a DATA frame) as its stream id and status.
	in = append(spdyraw.Control(spdy.TypeRstStream, 0, nil, -1), spdyraw.Data(1, 0, []byte("payload"), -1)...)
	fr, _ = spdy.NewFramer(io.Discard, bytes.NewReader(in))
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatalf("RST_STREAM length 0: %v", err)
	}
	rst := f.(*spdy.RstStreamFrame)
	t.Logf("FINDING: RST_STREAM with length 0 read as stream %d status %d from the next frame's header", rst.StreamId, rst.Status)
	if rst.StreamId != 1 {
		t.Fatalf("stream = %d", rst.StreamId)
	}
}

func typeName(f spdy.Frame) string {
	switch f.(type) {
	case *spdy.SettingsFrame:
		return "SettingsFrame"
	case *spdy.PingFrame:
		return "PingFrame"
	}
	return "other"
}

// serveWSStream serves one wsstream.Conn with the given channels and
// returns the gorilla client and the server's channel streams.
func serveWSStream(t *testing.T, subprotocol string, binaryCodec bool, chans []wsstream.ChannelType) (*websocket.Conn, []io.ReadWriteCloser) {
	t.Helper()
	opened := make(chan []io.ReadWriteCloser, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{subprotocol: {Binary: binaryCodec, Channels: chans}})
		_, streams, err := conn.Open(w, r)
		if err != nil {
			t.Error(err)
		}
		opened <- streams
	}))
	t.Cleanup(srv.Close)
	d := websocket.Dialer{Subprotocols: []string{subprotocol}, HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, <-opened
}

// writeRawFrame writes one masked client frame, bypassing gorilla's
// message writer, so the test controls fragmentation exactly.
func writeRawFrame(t *testing.T, c *websocket.Conn, fin bool, opcode byte, payload []byte) {
	t.Helper()
	if len(payload) > 125 {
		t.Fatal("short frames only")
	}
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	mask := make([]byte, 4)
	rand.Read(mask)
	frame := append([]byte{b0, 0x80 | byte(len(payload))}, mask...)
	for i, p := range payload {
		frame = append(frame, p^mask[i%4])
	}
	if _, err := c.NetConn().Write(frame); err != nil {
		t.Fatal(err)
	}
}

func readChunk(t *testing.T, r io.Reader) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 256)
		n, _ := r.Read(buf)
		got <- string(buf[:n])
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no data")
		return ""
	}
}

// RFC 6455 lets a peer fragment a message; gorilla (our Framer) reassembles
// it. wsstream reads with golang.org/x/net/websocket's Message.Receive,
// which returns one *frame*, so each continuation frame is demultiplexed
// as a message of its own: its first byte becomes a channel number. A
// client that fragments stdin (gorilla does so for messages larger than its
// write buffer, 4 KiB by default) has the rest of its data routed to
// whatever channel that byte names, or dropped. client-go sizes its write
// buffer to avoid fragmenting, other clients may not.
func TestFindingWSStreamSplitsFragmentedMessages(t *testing.T) {
	chans := []wsstream.ChannelType{wsstream.ReadChannel, wsstream.ReadChannel}
	c, streams := serveWSStream(t, "v4.channel.k8s.io", true, chans)
	// One binary message "\x00hello \x01world" sent as two fragments.
	writeRawFrame(t, c, false, websocket.BinaryMessage, []byte("\x00hello "))
	writeRawFrame(t, c, true, 0 /* continuation */, []byte("\x01world"))

	stdin := readChunk(t, streams[0])
	other := readChunk(t, streams[1])
	t.Logf("FINDING: message %q fragmented -> channel 0 got %q, channel 1 got %q", "\x00hello \x01world", stdin, other)
	if stdin != "hello " || other != "world" {
		t.Fatalf("channel 0 %q, channel 1 %q", stdin, other)
	}
}

// wsstream writes a base64 frame's channel as string('0'+ch): a rune, so
// channels from 80 on get a two-byte UTF-8 prefix that no reader (including
// wsstream's own, data[0]-'0') decodes. It also numbers channels with
// byte(i), so a port-forward with more than 128 ports (256 channels) sends
// channel 256 as channel 0.
func TestFindingWSStreamChannelNumbering(t *testing.T) {
	chans := make([]wsstream.ChannelType, 258)
	for i := range chans {
		chans[i] = wsstream.WriteChannel
	}
	c, streams := serveWSStream(t, "v4.base64.channel.k8s.io", false, chans)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := streams[80].Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FINDING: base64 channel 80 is sent with prefix % x (message %q)", msg[:2], msg)
	if !bytes.HasPrefix(msg, []byte("\xc2\x80")) {
		t.Fatalf("channel 80 prefix %q", msg)
	}
	if _, err := wsframe.Decode(websocket.TextMessage, msg, proto("v4.base64.channel.k8s.io", 258)); !errors.Is(err, wsframe.ErrBadChannelDigit) {
		t.Fatalf("wsframe should reject it: %v", err)
	}

	c2, streams2 := serveWSStream(t, "v4.channel.k8s.io", true, chans)
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := streams2[256].Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_, msg, err = c2.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FINDING: binary channel 256 is sent as %q (channel %d)", msg, msg[0])
	if msg[0] != 0 {
		t.Fatalf("channel 256 prefix %d", msg[0])
	}
}
