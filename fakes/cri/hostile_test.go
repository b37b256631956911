package cri

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/spdystream/spdy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestHostileFaultsRegistered(t *testing.T) {
	for _, f := range append(HostileFaults(), vulnerableFaults...) {
		info, ok := faults.Streaming.Lookup(f)
		if !ok {
			t.Errorf("%s missing from faults.Streaming", f)
		}
		if info.Armable() {
			t.Errorf("%s needs the hostile front, built at start: its layer must be construction", f)
		}
	}
}

// feedAll feeds b to an inspector in chunks of n bytes and collects what it
// forwards until the first non-pass verdict.
func feedAll(ins inspector, b []byte, n int) ([]byte, verdict) {
	var out []byte
	for len(b) > 0 {
		k := min(n, len(b))
		o, v, _ := ins.feed(b[:k])
		out = append(out, o...)
		b = b[k:]
		if v != vPass {
			return out, v
		}
	}
	return out, vPass
}

// maskedFrame is a client frame header (masked, zero key) plus payload.
func maskedFrame(length uint64, payload []byte) []byte {
	var h []byte
	switch {
	case length < 126:
		h = []byte{0x82, 0x80 | byte(length)}
	case length <= 0xffff:
		h = binary.BigEndian.AppendUint16([]byte{0x82, 0x80 | 126}, uint16(length))
	default:
		h = binary.BigEndian.AppendUint64([]byte{0x82, 0x80 | 127}, length)
	}
	return append(append(h, 0, 0, 0, 0), payload...)
}

func TestWSInspector(t *testing.T) {
	small := maskedFrame(5, []byte{0, 'h', 'e', 'l', 'o'})
	mid := maskedFrame(300, make([]byte, 300))
	for _, tc := range []struct {
		name    string
		in      []byte
		wantOut []byte
		want    verdict
	}{
		{"small frames pass byte-exact", append(append([]byte{}, small...), small...), append(append([]byte{}, small...), small...), vPass},
		{"16-bit length passes", mid, mid, vPass},
		{"a 64-bit length at the limit passes (header)", maskedFrame(libWSMaxFrame, nil), maskedFrame(libWSMaxFrame, nil), vPass},
		{"over the limit is held from its header", append(append([]byte{}, small...), maskedFrame(libWSMaxFrame+1, []byte("xx"))...), small, vHold},
	} {
		for _, chunk := range []int{1, 3, 4096} {
			out, v := feedAll(&wsInspector{}, tc.in, chunk)
			if v != tc.want || !bytes.Equal(out, tc.wantOut) {
				t.Errorf("%s (chunks of %d): verdict %d, forwarded %d bytes; want %d and %d bytes", tc.name, chunk, v, len(out), tc.want, len(tc.wantOut))
			}
		}
	}
}

// spdySession is what a real client sends: SYN_STREAMs sharing one header
// compression stream, data, and a ping.
func spdySession(t *testing.T) []byte {
	var b bytes.Buffer
	fr, err := spdy.NewFramer(&b, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []spdy.Frame{
		&spdy.SynStreamFrame{StreamId: 1, Headers: http.Header{"Streamtype": {"error"}}},
		&spdy.SynStreamFrame{StreamId: 3, Headers: http.Header{"Streamtype": {"stdin"}}},
		&spdy.SynStreamFrame{StreamId: 5, Headers: http.Header{"Streamtype": {"stdout"}}},
		&spdy.DataFrame{StreamId: 3, Data: bytes.Repeat([]byte("x"), 100<<10)},
		&spdy.PingFrame{Id: 1},
		&spdy.DataFrame{StreamId: 3, Flags: spdy.DataFlagFin},
	} {
		if err := fr.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func ctrl(typ uint16, flags byte, payload []byte, length int) []byte {
	if length < 0 {
		length = len(payload)
	}
	b := binary.BigEndian.AppendUint32(nil, 0x80030000|uint32(typ))
	b = binary.BigEndian.AppendUint32(b, uint32(flags)<<24|uint32(length)&0xffffff)
	return append(b, payload...)
}

func TestSPDYInspector(t *testing.T) {
	session := spdySession(t)
	countBomb := ctrl(uint16(spdy.TypeSettings), 0, binary.BigEndian.AppendUint32(nil, 0xffffffff), -1)
	giant := ctrl(0x7f, 0, nil, 0xffffff)
	bigData := append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 1), 2<<20), make([]byte, 2<<20)...)
	for _, tc := range []struct {
		name             string
		vulnerable, hold bool
		in               []byte
		wantOut          []byte
		want             verdict
	}{
		{"a client session passes byte-exact (vulnerable)", true, false, session, session, vPass},
		{"a client session passes byte-exact (hold)", false, true, session, session, vPass},
		{"a large data frame passes", true, true, bigData, bigData, vPass},
		{"SETTINGS count bomb crashes", true, false, append(append([]byte{}, session...), countBomb...), session, vCrash},
		{"SETTINGS count bomb passes when only holding", false, true, countBomb, countBomb, vPass},
		{"a giant control frame is held", false, true, append(append([]byte{}, session...), giant...), session, vHold},
		{"a giant control frame streams through when only vulnerable", true, false, giant, giant, vPass},
	} {
		for _, chunk := range []int{1, 7, 32 << 10} {
			if chunk == 1 && len(tc.in) > 1<<20 {
				continue
			}
			out, v := feedAll(newSPDYInspector(tc.vulnerable, tc.hold), tc.in, chunk)
			if v != tc.want || !bytes.Equal(out, tc.wantOut) {
				t.Errorf("%s (chunks of %d): verdict %d, forwarded %d bytes; want %d and %d bytes", tc.name, chunk, v, len(out), tc.want, len(tc.wantOut))
			}
		}
	}
}

// frontAddr is where the runtime's stream URLs point.
func frontAddr(r *Runtime) string { return r.streams.urlHost }

func startHostile(t *testing.T, f faults.Fault) *Runtime {
	t.Helper()
	o := DefaultOptions()
	o.Faults = []faults.Fault{f}
	r, err := Start("", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// upgrade dials the front and sends a SPDY upgrade request for a token
// nobody issued; every step is bounded by d.
func upgrade(t *testing.T, addr string, d time.Duration) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(d))
	io.WriteString(c, "POST /exec/x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
	return c
}

// exchange returns what arrives within d (at most max bytes).
func exchange(t *testing.T, addr string, d time.Duration, max int) []byte {
	t.Helper()
	b, _ := io.ReadAll(io.LimitReader(upgrade(t, addr, d), int64(max)))
	return b
}

func TestFrontModes(t *testing.T) {
	for _, tc := range []struct {
		fault faults.Fault
		check func(got []byte) bool
		what  string
	}{
		{faults.HostileNeverAnswer, func(b []byte) bool { return len(b) == 0 }, "no byte"},
		{faults.HostileMute, func(b []byte) bool {
			return strings.HasPrefix(string(b), "HTTP/1.1 101 ") && strings.HasSuffix(string(b), "\r\n\r\n")
		}, "a 101 and nothing after it"},
		{faults.HostileEndlessHead, func(b []byte) bool {
			return len(b) == 256<<10 && !bytes.Contains(b, []byte("\r\n\r\n"))
		}, "a head that never ends"},
		{faults.HostileGiantFrame, func(b []byte) bool {
			i := bytes.Index(b, []byte("\r\n\r\n"))
			return i > 0 && bytes.Equal(b[i+4:], []byte{0, 0, 0, 1, 0, 0xff, 0xff, 0xff})
		}, "a 101 and a DATA header claiming 16 MiB"},
	} {
		t.Run(string(tc.fault), func(t *testing.T) {
			r := startHostile(t, tc.fault)
			if got := exchange(t, frontAddr(r), 300*time.Millisecond, 256<<10); !tc.check(got) {
				t.Errorf("want %s, got %q", tc.what, got[:min(len(got), 200)])
			}
			// Disarmed, the front proxies to the library: an unknown token is a 404.
			r.SetHostile(false)
			resp, err := http.ReadResponse(bufio.NewReader(upgrade(t, frontAddr(r), 2*time.Second)), nil)
			if err != nil || resp.StatusCode != http.StatusNotFound {
				t.Errorf("disarmed: want the library's 404, got %v (%v)", resp, err)
			}
		})
	}
}

func TestCRIHang(t *testing.T) {
	r := startHostile(t, faults.HostileCRIHang)
	conn, err := grpc.NewClient("passthrough:///cri", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", strings.TrimPrefix(r.Endpoint(), "unix://"))
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	call := func() (codes.Code, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "none", Cmd: []string{"true"}, Stdout: true})
		return status.Code(err), time.Since(start)
	}
	if code, d := call(); code != codes.DeadlineExceeded || d < 400*time.Millisecond {
		t.Errorf("armed: Exec answered %s after %s, want DeadlineExceeded at the caller's deadline", code, d)
	}
	if _, err := rt.Version(context.Background(), &runtimeapi.VersionRequest{}); err != nil {
		t.Errorf("armed: Version must still answer: %v", err)
	}
	r.SetHostile(false)
	if code, _ := call(); code == codes.DeadlineExceeded || code == codes.OK {
		t.Errorf("disarmed: Exec on an unknown container answered %s, want the runtime's error", code)
	}
}
