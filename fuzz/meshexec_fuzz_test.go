package fuzz

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/gauntlet-conformance/gauntlet/internal/meshpolicy/meshexec"
)

func init() {
	seedSets["FuzzMeshexecDecode"] = []seed{
		{"hello-answer", []any{[]byte(`{"id":1,"result":{"version":1,"name":"m","trustDomain":"td","convergenceBound":30000000000,"protocols":["GRPC"]}}` + "\n")}},
		{"do-request", []any{[]byte(`{"id":8,"method":"do","timeout":3000000000,"params":{"from":{"namespace":"cli","serviceAccount":"a"},"to":{"namespace":"ns","name":"s"},"protocol":"GRPC","port":7070,"nonce":"n","timeout":1000000000}}` + "\n")}},
		{"rejected", []any{[]byte(`{"id":5,"error":{"message":"policy rejected: x","rejected":"x"}}` + "\n")}},
		{"echo-class", []any{[]byte(`{"id":11,"error":{"message":"reset","class":"reset"}}` + "\n")}},
		{"cancel", []any{[]byte(`{"method":"cancel","params":{"id":8}}` + "\n")}},
		{"two-lines-crlf", []any{[]byte("{\"id\":1}\r\n\n{\"id\":2,\"result\":null}\r\n")}},
		{"no-newline", []any{[]byte(`{"id":3}`)}},
		{"log-line", []any{[]byte("starting driver\n")}},
		{"both", []any{[]byte(`{"id":1,"result":1,"error":{"message":"x"}}` + "\n")}},
		{"long", []any{bytes.Repeat([]byte("x"), 300)}},
		{"nested-deep", []any{[]byte(`{"id":1,"result":` + string(bytes.Repeat([]byte("["), 100)) + "\n")}},
		{"empty", []any{[]byte{}}},
	}
}

// FuzzMeshexecDecode: the driver protocol's decoder never panics, never
// returns a line over its limit, fails only with its sentinel errors, and
// what it accepts re-encodes to one line that decodes to the same frame.
func FuzzMeshexecDecode(f *testing.F) {
	addSeeds(f, "FuzzMeshexecDecode")
	const max = 256
	f.Fuzz(func(t *testing.T, data []byte) {
		d := meshexec.NewDecoder(bytes.NewReader(data), max)
		for i := 0; i < 1000; i++ {
			fr, err := d.Decode()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, meshexec.ErrMalformed) && !errors.Is(err, meshexec.ErrLineTooLong) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			b, err := meshexec.Encode(fr, 4*max)
			if err != nil {
				t.Fatalf("decoded %+v does not re-encode: %v", fr, err)
			}
			if bytes.Count(b, []byte("\n")) != 1 || b[len(b)-1] != '\n' {
				t.Fatalf("encoded %q is not one line", b)
			}
			again, err := meshexec.NewDecoder(bytes.NewReader(b), 4*max).Decode()
			if err != nil {
				t.Fatalf("re-encoded %q does not decode: %v", b, err)
			}
			b2, err := meshexec.Encode(again, 4*max)
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("round trip changed %q to %q (%v)", b, b2, err)
			}
		}
	})
}
