// Package fuzz holds gauntlet's native Go fuzz targets (go test -fuzz) for
// the streaming codecs in internal/ and for the upstream parsers they must
// agree with: k8s.io/streaming's wsstream, encoding/json as the resize and
// status decoders use it, and moby/spdystream's SPDY framer.
//
// Without -fuzz, go test runs every seed (f.Add and testdata/fuzz) once;
// run.sh fuzzes each target in turn. findings_test.go reproduces upstream
// behaviour found along the way.
package fuzz
