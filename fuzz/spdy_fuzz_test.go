package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"reflect"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/moby/spdystream/spdy"

	"github.com/gauntlet-conformance/gauntlet/internal/spdyraw"
)

// Input and allocation guards for the SPDY targets. spdystream v0.5.1
// bounds header counts (1000) and field sizes (1 MiB) but still turns a
// header value of N NUL bytes into N+1 strings: ~100 KiB allocated per
// compressed input byte (see TestFindingSPDYHeaderValueFanout). Capping the
// input at 8 KiB bounds one execution to well under 1 GiB, so a fuzzer that
// rediscovers the bomb reports it instead of taking the machine down.
const (
	maxSPDYInput     = 8 << 10
	maxSPDYFrames    = 64
	spdyAllocBudget  = 256 << 20
	spdyMaxFieldSize = 1 << 20 // spdystream's defaultMaxHeaderFieldSize
	spdyMaxHeaders   = 1000    // spdystream's defaultMaxHeaderCount
)

// heapAllocs is the process' cumulative heap allocation; runtime/metrics
// reads it without stopping the world, unlike ReadMemStats.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// --- frame builders (seeds and findings): internal/spdyraw ---

// synStreams builds SYN_STREAM frames in stream order whose blocks share
// one compression stream, as on a real connection.
func synStreams(blocks map[uint32][]byte) []byte {
	var out []byte
	z := spdyraw.NewDeflater()
	for id := uint32(1); len(blocks) > 0; id++ {
		block, ok := blocks[id]
		if !ok {
			continue
		}
		delete(blocks, id)
		out = append(out, spdyraw.SynStream(id, z.Block(block), -1)...)
	}
	return out
}

// written serialises frames with spdystream's own writer, so the seeds use
// the real header dictionary and one continuous compression stream.
func written(frames ...spdy.Frame) []byte {
	var b bytes.Buffer
	fr, err := spdy.NewFramer(&b, nil)
	if err != nil {
		panic(err)
	}
	for _, f := range frames {
		if err := fr.WriteFrame(f); err != nil {
			panic(err)
		}
	}
	return b.Bytes()
}

func init() {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	exec := written(
		&spdy.SynStreamFrame{StreamId: 1, Headers: hdr("streamtype", "error")},
		&spdy.SynStreamFrame{StreamId: 3, Headers: hdr("streamtype", "stdin")},
		&spdy.SynStreamFrame{StreamId: 5, Headers: hdr("streamtype", "stdout")},
		&spdy.SynStreamFrame{StreamId: 7, Headers: hdr("streamtype", "resize")},
		&spdy.DataFrame{StreamId: 3, Data: []byte("echo hi\n")},
		&spdy.DataFrame{StreamId: 7, Data: []byte(`{"Width":80,"Height":24}`)},
		&spdy.DataFrame{StreamId: 3, Flags: spdy.DataFlagFin},
	)
	reply := written(&spdy.SynReplyFrame{StreamId: 1, Headers: hdr("streamtype", "error")},
		&spdy.DataFrame{StreamId: 1, Data: []byte(`{"metadata":{},"status":"Success"}`), Flags: spdy.DataFlagFin})
	control := written(
		&spdy.SettingsFrame{FlagIdValues: []spdy.SettingsFlagIdValue{{Id: spdy.SettingsInitialWindowSize, Value: 65536}}},
		&spdy.PingFrame{Id: 1},
		&spdy.WindowUpdateFrame{StreamId: 1, DeltaWindowSize: 4096},
		&spdy.RstStreamFrame{StreamId: 1, Status: spdy.Cancel},
		&spdy.HeadersFrame{StreamId: 1, Headers: hdr("x", "y")},
		&spdy.GoAwayFrame{LastGoodStreamId: 7, Status: spdy.GoAwayOK},
	)
	// Several headers per frame: spdystream writes map order, so build
	// these blocks ourselves to keep the seed deterministic.
	pf := synStreams(map[uint32][]byte{
		1: spdyraw.Pairs("port", "8080", "requestid", "0", "streamtype", "error"),
		3: spdyraw.Pairs("port", "8080", "requestid", "0", "streamtype", "data"),
	})
	portForward := append(pf, spdyraw.Data(3, 0, []byte("GET / HTTP/1.1\r\n\r\n"), -1)...)
	seedSets["FuzzSPDYFrame"] = []seed{
		{"exec-session", []any{exec}},
		{"syn-reply-status", []any{reply}},
		{"control-frames", []any{control}},
		{"port-forward", []any{portForward}},
		{"data-empty-fin", []any{spdyraw.Data(1, 1, nil, -1)}},
		// CVE-2026-35469 class and other length lies.
		{"settings-count-bomb", []any{spdyraw.Control(spdy.TypeSettings, 0, binary.BigEndian.AppendUint32(nil, 0xffffffff), -1)}},
		{"settings-count-exceeds-length", []any{spdyraw.Control(spdy.TypeSettings, 0, append(binary.BigEndian.AppendUint32(nil, 2), make([]byte, 8)...), -1)}},
		{"header-count-bomb", []any{spdyraw.SynStream(1, spdyraw.Deflate(binary.BigEndian.AppendUint32(nil, 0xffffffff)), -1)}},
		{"header-name-length-bomb", []any{spdyraw.SynStream(1, spdyraw.Deflate(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 1), 0xffffffff)), -1)}},
		{"header-name-length-at-limit", []any{spdyraw.SynStream(1, spdyraw.Deflate(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 1), spdyMaxFieldSize)), -1)}},
		{"header-value-fanout-64k", []any{spdyraw.SynStream(1, spdyraw.Deflate(spdyraw.Pairs("a", string(make([]byte, 64<<10)))), -1)}},
		{"data-length-max", []any{spdyraw.Data(1, 0, []byte("abc"), 0xffffff)}},
		{"control-length-max", []any{spdyraw.Control(spdy.TypePing, 0, []byte{0, 0, 0, 1}, 0xffffff)}},
		{"syn-stream-length-0", []any{append(spdyraw.SynStream(1, spdyraw.Deflate(spdyraw.Pairs("a", "b")), 0), exec...)}},
		{"rst-stream-length-0", []any{append(spdyraw.Control(spdy.TypeRstStream, 0, nil, -1), control...)}},
		{"unknown-control-type", []any{spdyraw.Control(0x7f, 0, []byte{1, 2, 3, 4}, -1)}},
		{"truncated-header", []any{[]byte{0x80, 0x03, 0x00}}},
		{"empty", []any{[]byte{}}},
	}
	seedSets["FuzzSPDYHeaderBlock"] = []seed{
		{"exec-stdout", []any{spdyraw.Pairs("streamtype", "stdout"), uint32(1)}},
		{"port-forward", []any{spdyraw.Pairs("streamtype", "data", "port", "8080", "requestid", "0"), uint32(3)}},
		{"multi-value", []any{spdyraw.Pairs("x", "a\x00b\x00", "y", ""), uint32(5)}},
		{"uppercase-name", []any{spdyraw.Pairs("StreamType", "stdin"), uint32(1)}},
		{"duplicate-name", []any{spdyraw.Pairs("a", "1", "a", "2"), uint32(1)}},
		{"duplicate-nonletter-name", []any{spdyraw.Pairs("1", "1", "1", "2"), uint32(1)}},
		{"invalid-header", []any{spdyraw.Pairs("connection", "close"), uint32(1)}},
		{"empty-name", []any{spdyraw.Pairs("", "x"), uint32(1)}},
		{"count-bomb", []any{spdyraw.NV(0xffffffff), uint32(1)}},
		{"count-over-limit", []any{spdyraw.NV(spdyMaxHeaders+1, "a", "b"), uint32(1)}},
		{"name-length-bomb", []any{binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 1), 0xffffffff), uint32(1)}},
		{"count-short", []any{spdyraw.NV(3, "a", "b"), uint32(1)}},
		{"trailing-bytes", []any{append(spdyraw.Pairs("a", "b"), "trailing"...), uint32(1)}},
		{"stream-id-0", []any{spdyraw.Pairs("a", "b"), uint32(0)}},
		{"empty", []any{[]byte{}, uint32(1)}},
	}
}

// FuzzSPDYFrame feeds arbitrary bytes to spdystream's framer (the parser
// k8s.io/streaming's SPDY connections use, with its default limits) and
// reads frames until an error: no panic, and bounded allocation.
func FuzzSPDYFrame(f *testing.F) {
	addSeeds(f, "FuzzSPDYFrame")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxSPDYInput {
			return
		}
		before := heapAllocs()
		fr, err := spdy.NewFramer(io.Discard, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < maxSPDYFrames; i++ {
			frame, err := fr.ReadFrame()
			if err != nil {
				break
			}
			if d, ok := frame.(*spdy.DataFrame); ok && len(d.Data) > len(data) {
				t.Fatalf("data frame longer than the input: %d > %d", len(d.Data), len(data))
			}
		}
		if n := heapAllocs() - before; n > spdyAllocBudget {
			t.Fatalf("spdy framer allocated %d MiB for a %d-byte input", n>>20, len(data))
		}
	})
}

// refBlock parses a name/value block the way SPDY/3 defines it and as
// spdystream applies it to an http.Header (names lowered, then
// canonicalised by Header.Add; values split at NUL). ok is false where
// spdystream must return an error.
func refBlock(block []byte) (h http.Header, ok bool) {
	next := func() (uint32, bool) {
		if len(block) < 4 {
			return 0, false
		}
		v := binary.BigEndian.Uint32(block)
		block = block[4:]
		return v, true
	}
	field := func() (string, bool) {
		n, ok := next()
		if !ok || n > spdyMaxFieldSize || uint32(len(block)) < n {
			return "", false
		}
		s := string(block[:n])
		block = block[n:]
		return s, true
	}
	count, ok := next()
	if !ok || count > spdyMaxHeaders {
		return nil, false
	}
	h = http.Header{}
	ok = true
	for i := uint32(0); i < count; i++ {
		name, nok := field()
		if !nok {
			return nil, false
		}
		if name != strings.ToLower(name) {
			ok = false
			name = strings.ToLower(name)
		}
		if h[name] != nil {
			ok = false // spdystream's duplicate check (see finding in the report)
		}
		value, vok := field()
		if !vok {
			return nil, false
		}
		for _, v := range strings.Split(value, "\x00") {
			h.Add(name, v)
		}
	}
	for name := range h {
		switch name {
		case "Connection", "Host", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding":
			ok = false
		}
	}
	return h, ok
}

// FuzzSPDYHeaderBlock sends an arbitrary name/value block, zlib-compressed,
// through the framer's SYN_STREAM path and checks the result against a
// reference parse: same headers on success, an error where the block is
// invalid, success where it is valid.
func FuzzSPDYHeaderBlock(f *testing.F) {
	addSeeds(f, "FuzzSPDYHeaderBlock")
	f.Fuzz(func(t *testing.T, block []byte, streamID uint32) {
		if len(block) > maxSPDYInput {
			return
		}
		in := spdyraw.SynStream(streamID, spdyraw.Deflate(block), -1)
		before := heapAllocs()
		fr, err := spdy.NewFramer(io.Discard, bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		frame, err := fr.ReadFrame()
		if n := heapAllocs() - before; n > spdyAllocBudget {
			t.Fatalf("spdy framer allocated %d MiB for a %d-byte block", n>>20, len(block))
		}
		want, ok := refBlock(block)
		ok = ok && streamID != 0
		var se *spdy.Error
		if err != nil && !errors.As(err, &se) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		switch {
		case err == nil && !ok:
			t.Fatalf("framer accepted an invalid block %q: %v", block, frame.(*spdy.SynStreamFrame).Headers)
		case err != nil && ok:
			t.Fatalf("framer rejected a valid block %q (stream %d): %v", block, streamID, err)
		case err == nil:
			got := frame.(*spdy.SynStreamFrame)
			if got.StreamId != spdy.StreamId(streamID) || !reflect.DeepEqual(got.Headers, want) {
				t.Fatalf("framer parsed %q as stream %d %v, want %v", block, got.StreamId, got.Headers, want)
			}
		}
	})
}
