// Package spdyraw builds raw SPDY/3 frames byte by byte, including frames no
// well-behaved framer would write (length fields that lie, counts that do not
// match, header blocks that are not zlib). The hostile-peer checks send them
// to runtimes; the fuzz targets use them as seeds. Well-formed traffic goes
// through spdystream's own framer (internal/spdyconn) instead.
package spdyraw

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"sync"

	"github.com/moby/spdystream/spdy"
)

// Control is a SPDY/3 control frame of type typ; its length field is the
// payload's unless lie >= 0 overrides it (truncated to the 24-bit field).
func Control(typ spdy.ControlFrameType, flags byte, payload []byte, lie int) []byte {
	return frame(0x80030000|uint32(typ), flags, payload, lie)
}

// Data is a DATA frame for stream id; lie as for Control.
func Data(id uint32, flags byte, data []byte, lie int) []byte {
	return frame(id&0x7fffffff, flags, data, lie)
}

func frame(word0 uint32, flags byte, payload []byte, lie int) []byte {
	length := uint32(len(payload))
	if lie >= 0 {
		length = uint32(lie)
	}
	b := make([]byte, 0, 8+len(payload))
	b = binary.BigEndian.AppendUint32(b, word0)
	b = binary.BigEndian.AppendUint32(b, uint32(flags)<<24|length&0xffffff)
	return append(b, payload...)
}

// SynStream is a SYN_STREAM for stream id (no associated stream, priority 0)
// carrying an already compressed header block; lie as for Control.
func SynStream(id uint32, block []byte, lie int) []byte {
	p := make([]byte, 0, 10+len(block))
	p = binary.BigEndian.AppendUint32(p, id)
	p = binary.BigEndian.AppendUint32(p, 0) // associated stream
	p = append(p, 0, 0)                     // priority, slot
	return Control(spdy.TypeSynStream, 0, append(p, block...), lie)
}

// Ping is a PING control frame.
func Ping(id uint32) []byte {
	return Control(spdy.TypePing, 0, binary.BigEndian.AppendUint32(nil, id), -1)
}

// NV is an uncompressed name/value block: count (which need not match), then
// each field with its 32-bit length.
func NV(count uint32, fields ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, count)
	for _, s := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

// Pairs is a name/value block whose count is correct: Pairs("a", "1") has one header.
func Pairs(pairs ...string) []byte {
	return NV(uint32(len(pairs)/2), pairs...)
}

// Deflater is one connection's header compression stream: each Block is
// sync-flushed, and later blocks depend on earlier ones, as on a real SPDY
// connection. It does not use the SPDY/3 preset dictionary (spdystream does
// not export it): the zlib header then does not ask for one, and a SPDY
// reader (zlib.NewReaderDict) accepts that.
type Deflater struct {
	out bytes.Buffer
	z   *zlib.Writer
}

// NewDeflater starts a compression stream.
func NewDeflater() *Deflater {
	d := &Deflater{}
	d.z, _ = zlib.NewWriterLevel(&d.out, zlib.BestCompression) // only fails for a bad level
	return d
}

// Block compresses the next header block of the stream.
func (d *Deflater) Block(nv []byte) []byte {
	d.out.Reset()
	d.z.Write(nv) //nolint:errcheck // writes to a bytes.Buffer
	d.z.Flush()   //nolint:errcheck
	return append([]byte(nil), d.out.Bytes()...)
}

// writers recycles zlib writers for Deflate: a fresh one costs ~1 MB, which
// dominates a fuzz execution.
var writers = sync.Pool{New: func() any {
	z, _ := zlib.NewWriterLevel(nil, zlib.BestCompression)
	return z
}}

// Deflate compresses one header block as the first block of a fresh stream.
func Deflate(nv []byte) []byte {
	var b bytes.Buffer
	z := writers.Get().(*zlib.Writer)
	z.Reset(&b)
	z.Write(nv) //nolint:errcheck // writes to a bytes.Buffer
	z.Flush()   //nolint:errcheck
	writers.Put(z)
	return b.Bytes()
}
