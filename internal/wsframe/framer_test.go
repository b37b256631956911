package wsframe

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsPair returns the server and client ends of a loopback WebSocket
// connection that negotiated subprotocol.
func wsPair(t testing.TB, subprotocol string) (server, client *websocket.Conn) {
	t.Helper()
	ch := make(chan *websocket.Conn, 1)
	up := websocket.Upgrader{Subprotocols: []string{subprotocol}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		ch <- c
	}))
	t.Cleanup(srv.Close)
	d := websocket.Dialer{Subprotocols: []string{subprotocol}, HandshakeTimeout: 5 * time.Second}
	client, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	server = <-ch
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestMessageTypesMatchGorilla(t *testing.T) {
	if TextMessage != websocket.TextMessage || BinaryMessage != websocket.BinaryMessage {
		t.Fatal("message type constants drifted from gorilla's")
	}
}

func TestFramerRoundTrip(t *testing.T) {
	for _, name := range []string{"v4.channel.k8s.io", "v4.base64.channel.k8s.io", "v5.channel.k8s.io"} {
		t.Run(name, func(t *testing.T) {
			p := mustProto(name)
			sc, cc := wsPair(t, name)
			srv, cli := NewFramer(sc, p), NewFramer(cc, p)
			// The ready frame, then payloads of growing size so the read buffer grows.
			payloads := [][]byte{{}, []byte("hello"), bytes.Repeat([]byte("x"), 70000), []byte("after")}
			for _, pl := range payloads {
				if err := srv.WriteFrame(Stdout, pl); err != nil {
					t.Fatal(err)
				}
				f, err := cli.ReadFrame()
				if err != nil || f.Channel != Stdout || !bytes.Equal(f.Payload, pl) {
					t.Fatalf("ReadFrame = %d %d bytes, %v", f.Channel, len(f.Payload), err)
				}
			}
			if !p.V5 {
				if err := cli.WriteClose(Stdin); !errors.Is(err, ErrCloseNotSupported) {
					t.Fatalf("WriteClose on %s = %v", name, err)
				}
				return
			}
			if err := cli.WriteClose(Stdin); err != nil {
				t.Fatal(err)
			}
			f, err := srv.ReadFrame()
			if err != nil || !f.IsClose() || f.Payload[0] != Stdin {
				t.Fatalf("close = %+v, %v", f, err)
			}
		})
	}
}

func TestFramerDecodeErrorKeepsConnection(t *testing.T) {
	sc, cc := wsPair(t, "v4.channel.k8s.io")
	srv := NewFramer(sc, mustProto("v4.channel.k8s.io"))
	if err := cc.WriteMessage(websocket.TextMessage, []byte("\x01text")); err != nil {
		t.Fatal(err)
	}
	if err := cc.WriteMessage(websocket.BinaryMessage, nil); err != nil {
		t.Fatal(err)
	}
	if err := cc.WriteMessage(websocket.BinaryMessage, []byte("\x00ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ReadFrame(); !errors.Is(err, ErrWrongMessageType) {
		t.Fatalf("text frame: %v", err)
	}
	if _, err := srv.ReadFrame(); !errors.Is(err, ErrEmptyMessage) {
		t.Fatalf("empty message: %v", err)
	}
	if f, err := srv.ReadFrame(); err != nil || string(f.Payload) != "ok" {
		t.Fatalf("after errors: %q, %v", f.Payload, err)
	}
}

func TestFramerMaxMessage(t *testing.T) {
	sc, cc := wsPair(t, "v4.channel.k8s.io")
	srv := NewFramer(sc, mustProto("v4.channel.k8s.io"))
	srv.SetMaxMessage(16)
	if err := cc.WriteMessage(websocket.BinaryMessage, make([]byte, 17)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized message: %v", err)
	}
	srv.SetMaxMessage(0)
	if srv.maxMessage != DefaultMaxMessage {
		t.Fatalf("SetMaxMessage(0) = %d", srv.maxMessage)
	}
}

func TestFramerTimeout(t *testing.T) {
	sc, _ := wsPair(t, "v4.channel.k8s.io")
	srv := NewFramer(sc, mustProto("v4.channel.k8s.io"))
	srv.SetTimeout(50 * time.Millisecond)
	start := time.Now()
	_, err := srv.ReadFrame()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silent peer: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	srv.SetTimeout(0)
	if srv.timeout != DefaultTimeout {
		t.Fatalf("SetTimeout(0) = %v", srv.timeout)
	}
}

func TestFramerWriteRejectsUnencodable(t *testing.T) {
	sc, _ := wsPair(t, "base64.channel.k8s.io")
	fr := NewFramer(sc, mustProto("base64.channel.k8s.io"))
	if err := fr.WriteFrame(12, nil); !errors.Is(err, ErrBadChannelDigit) {
		t.Fatalf("WriteFrame(12) = %v", err)
	}
	if fr.Protocol().Name != "base64.channel.k8s.io" {
		t.Fatal("Protocol() lost the name")
	}
}
