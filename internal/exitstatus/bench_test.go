package exitstatus

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var benchInputs = []struct{ name, in string }{
	{"success-metadata", brief0},
	{"success-bare", brief1},
	{"success-kind", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"}`},
	{"exit-3", briefNZ},
	{"internal-error", criInternal},
}

func BenchmarkDecodeV4(b *testing.B) {
	for _, bi := range benchInputs {
		in := []byte(bi.in)
		b.Run(bi.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := DecodeV4(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// upstreamDecode is client-go's errorDecoderV4.decode (tools/remotecommand,
// unexported), reduced to its outcome: unmarshal into metav1.Status, then
// the first ExitCode cause through strconv.ParseUint(.., 10, 8).
func upstreamDecode(b []byte) (success bool, code int, err error) {
	var s metav1.Status
	if err := json.Unmarshal(b, &s); err != nil {
		return false, 0, err
	}
	switch s.Status {
	case metav1.StatusSuccess:
		return true, 0, nil
	case metav1.StatusFailure:
		if s.Reason == "NonZeroExitCode" {
			if s.Details == nil {
				return false, 0, errors.New("details must be set")
			}
			for _, c := range s.Details.Causes {
				if c.Type != "ExitCode" {
					continue
				}
				rc, err := strconv.ParseUint(c.Message, 10, 8)
				if err != nil {
					return false, 0, err
				}
				return false, int(rc), nil
			}
			return false, 0, errors.New("no ExitCode cause")
		}
		return false, 0, nil
	}
	return false, 0, errors.New("unknown error")
}

func BenchmarkUpstreamDecodeV4(b *testing.B) {
	for _, bi := range benchInputs {
		in := []byte(bi.in)
		b.Run(bi.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, _, err := upstreamDecode(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeV4Exit(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = EncodeV4Exit(3)
	}
}
