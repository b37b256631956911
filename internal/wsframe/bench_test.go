package wsframe

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/gorilla/websocket"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

func init() {
	// wsstream logs every socket error through klog; benchmarks tear
	// connections down on purpose.
	klog.SetLogger(logr.Discard())
}

var benchSizes = []int{16, 1024, 32 << 10}

func sizeName(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

func BenchmarkDecode(b *testing.B) {
	for _, n := range benchSizes {
		payload := bytes.Repeat([]byte("x"), n)
		_, bin, _ := Encode(Frame{Stdout, payload}, v4)
		_, txt, _ := Encode(Frame{Stdout, payload}, v4b64)
		b.Run("binary/"+sizeName(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bin)))
			for b.Loop() {
				if _, err := Decode(BinaryMessage, bin, v4); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("base64/"+sizeName(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(txt)))
			for b.Loop() {
				if _, err := Decode(TextMessage, txt, v4b64); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("close", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(2)
		msg := CloseSignal(Stdin)
		for b.Loop() {
			if _, err := Decode(BinaryMessage, msg, v5); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppendEncode(b *testing.B) {
	for _, n := range benchSizes {
		payload := bytes.Repeat([]byte("x"), n)
		buf := make([]byte, 0, 2*n+8)
		for _, p := range []Protocol{v4, v4b64} {
			kind := map[bool]string{false: "binary/", true: "base64/"}[p.Base64]
			b.Run(kind+sizeName(n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(n))
				for b.Loop() {
					if _, _, err := AppendEncode(buf[:0], Frame{Stdout, payload}, p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// writeN has a gorilla client write n copies of msg, like a peer streaming
// stdin; it runs concurrently with the reader being measured.
func writeN(c *websocket.Conn, typ int, msg []byte, n int) chan error {
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := c.WriteMessage(typ, msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

// BenchmarkFramerRead is our read path over loopback TCP: a gorilla client
// writes stdin frames, a server-side Framer reads and decodes them.
// Compare with BenchmarkUpstreamWSStreamRead, which is the same traffic
// into k8s.io/streaming's wsstream.Conn.
func BenchmarkFramerRead(b *testing.B) {
	for _, name := range []string{"v4.channel.k8s.io", "v4.base64.channel.k8s.io"} {
		for _, n := range benchSizes {
			p := mustProto(name)
			b.Run(kindOf(p)+"/"+sizeName(n), func(b *testing.B) {
				sc, cc := wsPair(b, name)
				fr := NewFramer(sc, p)
				typ, msg, _ := Encode(Frame{Stdin, bytes.Repeat([]byte("x"), n)}, p)
				b.ReportAllocs()
				b.SetBytes(int64(n))
				b.ResetTimer()
				done := writeN(cc, typ, msg, b.N)
				for i := 0; i < b.N; i++ {
					f, err := fr.ReadFrame()
					if err != nil || len(f.Payload) != n {
						b.Fatalf("frame %d: %d bytes, %v", i, len(f.Payload), err)
					}
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

func kindOf(p Protocol) string {
	if p.Base64 {
		return "base64"
	}
	return "binary"
}

// upstreamConn serves a wsstream.Conn with five read channels (the
// remotecommand layout, all readable) and returns a gorilla client
// connected to it plus the server-side channel streams.
func upstreamConn(tb testing.TB, subprotocol string) (*websocket.Conn, []io.ReadWriteCloser) {
	tb.Helper()
	chans := make([]wsstream.ChannelType, RemoteCommandChannels)
	for i := range chans {
		chans[i] = wsstream.ReadChannel
	}
	type opened struct {
		conn    *wsstream.Conn
		streams []io.ReadWriteCloser
	}
	ch := make(chan opened, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
			"v4.channel.k8s.io":        {Binary: true, Channels: chans},
			"v4.base64.channel.k8s.io": {Binary: false, Channels: chans},
			"v5.channel.k8s.io":        {Binary: true, Channels: chans},
		})
		_, streams, err := conn.Open(w, r)
		if err != nil {
			tb.Error(err)
			return
		}
		ch <- opened{conn, streams}
	}))
	tb.Cleanup(srv.Close)
	d := websocket.Dialer{Subprotocols: []string{subprotocol}, HandshakeTimeout: 5 * time.Second, WriteBufferSize: 64 << 10}
	cc, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	o := <-ch
	tb.Cleanup(func() { cc.Close(); o.conn.Close() })
	return cc, o.streams
}

// BenchmarkUpstreamWSStreamRead measures what k8s.io/streaming does when
// reading frames: x/net/websocket message receive, channel demux, base64
// decode and the io.Pipe hand-off to the channel reader.
func BenchmarkUpstreamWSStreamRead(b *testing.B) {
	for _, name := range []string{"v4.channel.k8s.io", "v4.base64.channel.k8s.io"} {
		for _, n := range benchSizes {
			p := mustProto(name)
			b.Run(kindOf(p)+"/"+sizeName(n), func(b *testing.B) {
				cc, streams := upstreamConn(b, name)
				typ, msg, _ := Encode(Frame{Stdin, bytes.Repeat([]byte("x"), n)}, p)
				buf := make([]byte, 64<<10)
				b.ReportAllocs()
				b.SetBytes(int64(n))
				b.ResetTimer()
				done := writeN(cc, typ, msg, b.N)
				for want := b.N * n; want > 0; {
					k, err := streams[Stdin].Read(buf)
					if err != nil {
						b.Fatal(err)
					}
					want -= k
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
