package findings

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/internal/termsize"
	"github.com/gauntlet-conformance/gauntlet/internal/wsframe"
	"github.com/go-logr/logr"
	"github.com/gorilla/websocket"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
)

func init() { klog.SetLogger(logr.Discard()) }

func v4() wsframe.Protocol {
	p, _ := wsframe.ParseProtocol("v4.channel.k8s.io")
	p.Channels = wsframe.RemoteCommandChannels
	return p
}

// catRuntime echoes stdin to stdout and drains resize events, like a shell
// running cat in a TTY.
type catRuntime struct{}

func (catRuntime) Exec(_ context.Context, _ string, _ []string, in io.Reader, out, _ io.WriteCloser, _ bool, resize <-chan remotecommand.TerminalSize) error {
	go func() {
		for range resize {
		}
	}()
	_, err := io.Copy(out, in)
	return err
}

func (r catRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return r.Exec(ctx, id, nil, in, out, errw, tty, resize)
}

func (catRuntime) PortForward(context.Context, string, int32, io.ReadWriteCloser) error {
	return errors.New("no port-forward")
}

// The cri-streaming server's resize loop stops at the first malformed
// resize message and nothing reads the WebSocket resize channel after
// that. The next resize frame blocks wsstream's read loop on the channel's
// io.Pipe for good: stdin is never delivered again, the idle timeout
// cannot fire (it is only reset between reads), and the exec never sees
// stdin EOF, so the session and its goroutines leak even after the client
// leaves. One bad resize plus one good one wedges the session.
func TestFindingMalformedResizeWedgesWebSocketExec(t *testing.T) {
	hs := httptest.NewUnstartedServer(nil)
	base, _ := url.Parse("http://" + hs.Listener.Addr().String())
	cfg := streaming.DefaultConfig
	cfg.BaseURL = base
	srv, err := streaming.NewServer(cfg, catRuntime{})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv
	hs.Start()
	t.Cleanup(hs.Close)

	session := func() *wsframe.Framer {
		resp, err := srv.GetExec(&runtimeapi.ExecRequest{ContainerId: "c", Cmd: []string{"cat"}, Stdin: true, Stdout: true, Tty: true})
		if err != nil {
			t.Fatal(err)
		}
		d := websocket.Dialer{Subprotocols: []string{"v4.channel.k8s.io"}, HandshakeTimeout: 5 * time.Second}
		c, _, err := d.Dial("ws"+strings.TrimPrefix(resp.Url, "http"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fr := wsframe.NewFramer(c, v4())
		fr.SetTimeout(time.Second)
		if f, err := fr.ReadFrame(); err != nil || f.Channel != wsframe.Stdout || len(f.Payload) != 0 {
			t.Fatalf("ready frame: %+v, %v", f, err)
		}
		return fr
	}
	echoes := func(fr *wsframe.Framer, s string) bool {
		if err := fr.WriteFrame(wsframe.Stdin, []byte(s)); err != nil {
			t.Fatal(err)
		}
		f, err := fr.ReadFrame()
		return err == nil && string(f.Payload) == s
	}

	good := session()
	for i := 0; i < 3; i++ {
		if err := good.WriteFrame(wsframe.Resize, termsize.Encode(80, 24)); err != nil {
			t.Fatal(err)
		}
	}
	if !echoes(good, "control") {
		t.Fatal("control session does not echo")
	}

	// A malformed resize alone ends resize handling but does not wedge:
	// nothing is written to the unread pipe yet.
	half := session()
	if err := half.WriteFrame(wsframe.Resize, []byte(`{"Width":}`)); err != nil {
		t.Fatal(err)
	}
	if !echoes(half, "after-bad-resize") {
		t.Fatal("a malformed resize alone already stops stdin")
	}

	bad := session()
	for _, msg := range [][]byte{[]byte(`{"Width":}`), termsize.Encode(80, 24)} {
		if err := bad.WriteFrame(wsframe.Resize, msg); err != nil {
			t.Fatal(err)
		}
	}
	if echoes(bad, "still-alive") {
		t.Fatal("upstream no longer wedges after a malformed resize")
	}
	t.Log("FINDING: after a malformed resize and one valid resize, stdin is never delivered again (session wedged)")
}
