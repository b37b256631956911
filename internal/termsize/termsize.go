// Package termsize encodes and decodes remotecommand resize messages: one JSON
// object {"Width":W,"Height":H} per message on the resize stream / channel 4.
// The server side (k8s.io/cri-streaming remotecommand) decodes a stream of such
// objects with encoding/json, so key case is ignored and unknown keys pass.
package termsize

import (
	"encoding/json"
	"errors"
	"strconv"
)

// Size is a terminal size in character cells.
type Size struct {
	Width, Height uint16
}

// Sentinel errors.
var (
	ErrSyntax     = errors.New("termsize: not a JSON object")
	ErrOutOfRange = errors.New("termsize: dimension does not fit uint16")
)

// Encode returns {"Width":w,"Height":h} without reflection.
func Encode(w, h uint16) []byte {
	return AppendEncode(make([]byte, 0, 32), w, h)
}

// AppendEncode appends the message to dst.
func AppendEncode(dst []byte, w, h uint16) []byte {
	dst = append(dst, `{"Width":`...)
	dst = strconv.AppendUint(dst, uint64(w), 10)
	dst = append(dst, `,"Height":`...)
	dst = strconv.AppendUint(dst, uint64(h), 10)
	return append(dst, '}')
}

// Decode parses one message the way the server does (case-insensitive keys).
func Decode(b []byte) (Size, error) {
	var raw struct {
		Width, Height json.Number
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return Size{}, errors.Join(ErrSyntax, err)
	}
	w, err := dim(raw.Width)
	if err != nil {
		return Size{}, err
	}
	h, err := dim(raw.Height)
	if err != nil {
		return Size{}, err
	}
	return Size{Width: w, Height: h}, nil
}

func dim(n json.Number) (uint16, error) {
	if n == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(string(n), 10, 16)
	if err != nil {
		return 0, ErrOutOfRange
	}
	return uint16(v), nil
}
