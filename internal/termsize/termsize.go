// Package termsize encodes and decodes remotecommand resize messages: a JSON
// object {"Width":W,"Height":H} (uint16 each) on the resize stream (SPDY)
// or channel 4 (WebSocket).
//
// How the upstream server reads them (k8s.io/cri-streaming remotecommand,
// handleResizeEvents): it wraps the whole resize stream in one
// json.NewDecoder and loops Decode(&TerminalSize{}), so
//
//   - message boundaries do not matter: an object may span frames, one frame
//     may hold several objects, whitespace between them is skipped;
//   - keys match case-insensitively (ASCII folding for these two names),
//     unknown keys are ignored (but must be valid JSON), duplicate keys: the
//     last wins, and a null value leaves the field as it was;
//   - missing keys stay 0, and a top-level null decodes to 0x0: both are
//     delivered to the runtime as resizes;
//   - a value must be an integer literal in 0..65535: 80.0, 8e1, -0, "80"
//     and 65536 are type errors;
//   - the first error of any kind ends the loop: the resize channel is
//     closed and no later resize is applied for the rest of the session.
//
// Decode accepts exactly one message the way that decoder accepts its first
// value, except that it rejects a top-level null (ErrNotObject) and data
// after the object (ErrTrailingData): a client sends one object per message.
// It is a hand-written parser (no reflection) that validates JSON the way
// encoding/json does, including its nesting limit.
package termsize

import (
	"errors"
	"fmt"
	"strconv"
)

// Size is a terminal size in character cells.
type Size struct {
	Width, Height uint16
}

// Sentinel errors; Decode wraps ErrSyntax with the offset.
var (
	ErrEmpty        = errors.New("termsize: empty message")
	ErrSyntax       = errors.New("termsize: malformed JSON")
	ErrNotObject    = errors.New("termsize: not a JSON object")
	ErrFieldType    = errors.New("termsize: Width/Height is not a number")
	ErrOutOfRange   = errors.New("termsize: Width/Height is not an integer in 0..65535")
	ErrTrailingData = errors.New("termsize: data after the object")
)

// maxDepth is encoding/json's nesting limit (scanner maxNestingDepth); an
// unknown key's value nested deeper is a syntax error upstream too.
const maxDepth = 10000

// Encode returns {"Width":w,"Height":h}.
func Encode(w, h uint16) []byte {
	return AppendEncode(make([]byte, 0, 32), w, h)
}

// AppendEncode appends {"Width":w,"Height":h} to dst.
func AppendEncode(dst []byte, w, h uint16) []byte {
	dst = append(dst, `{"Width":`...)
	dst = strconv.AppendUint(dst, uint64(w), 10)
	dst = append(dst, `,"Height":`...)
	dst = strconv.AppendUint(dst, uint64(h), 10)
	return append(dst, '}')
}

// Decode parses one resize message (see the package comment for what is
// accepted). Errors are checked in encoding/json's order: malformed JSON
// anywhere first, then a wrong type or range.
func Decode(b []byte) (Size, error) {
	d := decoder{b: b}
	d.space()
	if d.i == len(b) {
		return Size{}, ErrEmpty
	}
	var s Size
	var err error
	if b[d.i] == '{' {
		s, err = d.object()
	} else {
		err = d.value(1)
		if err == nil {
			err = ErrNotObject
		}
	}
	if err != nil {
		return Size{}, err
	}
	d.space()
	if d.i != len(b) {
		return Size{}, ErrTrailingData
	}
	return s, nil
}

type decoder struct {
	b []byte
	i int
}

func (d *decoder) syntax() error { return fmt.Errorf("%w at offset %d", ErrSyntax, d.i) }

func (d *decoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0 // never valid where a token is expected
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

type field int

const (
	fieldOther field = iota
	fieldWidth
	fieldHeight
)

// object decodes the top-level object. A wrong type or range is remembered
// and reported only if the rest is well-formed, as encoding/json does.
func (d *decoder) object() (Size, error) {
	var s Size
	var semantic error
	d.i++ // '{'
	d.space()
	if d.peek() == '}' {
		d.i++
		return s, nil
	}
	for {
		if d.peek() != '"' {
			return Size{}, d.syntax()
		}
		f, err := d.key()
		if err != nil {
			return Size{}, err
		}
		d.space()
		if d.peek() != ':' {
			return Size{}, d.syntax()
		}
		d.i++
		d.space()
		if f == fieldOther {
			if err := d.value(2); err != nil {
				return Size{}, err
			}
		} else {
			v, set, bad, err := d.dimension()
			if err != nil {
				return Size{}, err
			}
			if bad != nil && semantic == nil {
				semantic = bad
			}
			if set && f == fieldWidth {
				s.Width = v
			} else if set {
				s.Height = v
			}
		}
		d.space()
		switch d.peek() {
		case ',':
			d.i++
			d.space()
		case '}':
			d.i++
			if semantic != nil {
				return Size{}, semantic
			}
			return s, nil
		default:
			return Size{}, d.syntax()
		}
	}
}

// key parses an object key and says whether it names Width or Height.
// encoding/json unescapes the key, then folds case; no non-ASCII rune
// folds to a letter of "width" or "height" (only K and S have non-ASCII
// fold partners), so comparing the unescaped ASCII bytes suffices.
func (d *decoder) key() (field, error) {
	var buf [6]byte
	n, ascii := 0, true
	add := func(c byte) {
		if n < len(buf) {
			buf[n] = c
		}
		n++
	}
	d.i++ // opening quote
	for {
		if d.i >= len(d.b) {
			return 0, d.syntax()
		}
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !ascii || n > len(buf) {
				return fieldOther, nil
			}
			switch {
			case equalFold(buf[:n], "width"):
				return fieldWidth, nil
			case equalFold(buf[:n], "height"):
				return fieldHeight, nil
			}
			return fieldOther, nil
		case c < 0x20:
			return 0, d.syntax()
		case c == '\\':
			r, err := d.escape()
			if err != nil {
				return 0, err
			}
			if r >= 0x80 {
				ascii = false
			} else {
				add(byte(r))
			}
		case c >= 0x80:
			ascii = false
			d.i++
		default:
			add(c)
			d.i++
		}
	}
}

// escape parses a backslash escape and returns the code unit it denotes
// (for \u, the 16-bit value; surrogates are >= 0x80 and so never match).
func (d *decoder) escape() (rune, error) {
	d.i++ // backslash
	if d.i >= len(d.b) {
		return 0, d.syntax()
	}
	c := d.b[d.i]
	d.i++
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		if len(d.b)-d.i < 4 {
			d.i = len(d.b)
			return 0, d.syntax()
		}
		var r rune
		for _, h := range d.b[d.i : d.i+4] {
			switch {
			case '0' <= h && h <= '9':
				h -= '0'
			case 'a' <= h && h <= 'f':
				h -= 'a' - 10
			case 'A' <= h && h <= 'F':
				h -= 'A' - 10
			default:
				return 0, d.syntax()
			}
			r = r<<4 | rune(h)
		}
		d.i += 4
		return r, nil
	}
	d.i--
	return 0, d.syntax()
}

// dimension parses the value of Width or Height. set is false for null;
// bad is the type or range error encoding/json would report; err is a
// syntax error.
func (d *decoder) dimension() (v uint16, set bool, bad, err error) {
	c := d.peek()
	switch {
	case c == 'n':
		return 0, false, nil, d.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		start := d.i
		plain, err := d.number()
		if err != nil {
			return 0, false, nil, err
		}
		if !plain {
			return 0, false, ErrOutOfRange, nil
		}
		n := 0
		for _, c := range d.b[start:d.i] {
			n = n*10 + int(c-'0')
			if n > 0xffff {
				return 0, false, ErrOutOfRange, nil
			}
		}
		return uint16(n), true, nil, nil
	}
	if err := d.value(2); err != nil {
		return 0, false, nil, err
	}
	return 0, false, ErrFieldType, nil
}

// number parses a JSON number; plain reports an unsigned integer without
// fraction or exponent, the only form encoding/json stores in a uint16.
func (d *decoder) number() (plain bool, err error) {
	plain = true
	if d.peek() == '-' {
		plain = false
		d.i++
	}
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case '1' <= c && c <= '9':
		d.digits()
	default:
		return false, d.syntax()
	}
	if d.peek() == '.' {
		plain = false
		d.i++
		if !isDigit(d.peek()) {
			return false, d.syntax()
		}
		d.digits()
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		plain = false
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if !isDigit(d.peek()) {
			return false, d.syntax()
		}
		d.digits()
	}
	return plain, nil
}

func (d *decoder) digits() {
	for isDigit(d.peek()) {
		d.i++
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (d *decoder) literal(lit string) error {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return d.syntax()
	}
	d.i += len(lit)
	return nil
}

// str skips a string, validating escapes and control characters. Like
// encoding/json it does not require valid UTF-8.
func (d *decoder) str() error {
	d.i++ // opening quote
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return nil
		case c == '\\':
			if _, err := d.escape(); err != nil {
				return err
			}
		case c < 0x20:
			return d.syntax()
		default:
			d.i++
		}
	}
	return d.syntax()
}

// value skips any JSON value; depth is the nesting level a container
// starting here would have.
func (d *decoder) value(depth int) error {
	switch c := d.peek(); {
	case c == '{', c == '[':
		if depth > maxDepth {
			return d.syntax()
		}
		return d.container(c, depth)
	case c == '"':
		return d.str()
	case c == '-' || isDigit(c):
		_, err := d.number()
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	}
	return d.syntax()
}

func (d *decoder) container(open byte, depth int) error {
	end := byte('}')
	if open == '[' {
		end = ']'
	}
	d.i++
	d.space()
	if d.peek() == end {
		d.i++
		return nil
	}
	for {
		if open == '{' {
			if d.peek() != '"' {
				return d.syntax()
			}
			if err := d.str(); err != nil {
				return err
			}
			d.space()
			if d.peek() != ':' {
				return d.syntax()
			}
			d.i++
			d.space()
		}
		if err := d.value(depth + 1); err != nil {
			return err
		}
		d.space()
		switch d.peek() {
		case ',':
			d.i++
			d.space()
		case end:
			d.i++
			return nil
		default:
			return d.syntax()
		}
	}
}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
