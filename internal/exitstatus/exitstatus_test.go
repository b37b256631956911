package exitstatus

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	brief0  = `{"metadata":{},"status":"Success"}`
	brief1  = `{"status":"Success"}`
	briefNZ = `{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`
	// What k8s.io/cri-streaming's local status type marshals to.
	criNZ       = `{"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`
	criInternal = `{"status":"Failure","message":"Internal error occurred: error executing command in container: boom","reason":"InternalError","code":500}`
)

func TestDecodeV4(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Result
		wantErr error
	}{
		{"success with metadata", brief0, Result{Success: true, HasMetadata: true}, nil},
		{"success bare", brief1, Result{Success: true}, nil},
		{"success with spaces", " {\"status\" : \"Success\"}\n", Result{Success: true}, nil},
		{"success with kind", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"}`, Result{Success: true, HasMetadata: true}, nil},
		{"success unknown fields", `{"status":"Success","extra":[1,{"a":null}]}`, Result{Success: true}, nil},
		{"success null metadata", `{"metadata":null,"status":"Success"}`, Result{Success: true}, nil},
		{"success case-insensitive keys like encoding/json", `{"STATUS":"Success"}`, Result{Success: true}, nil},
		{"exit 3 metadata", briefNZ, Result{ExitCode: 3, Reason: "NonZeroExitCode", Message: "command terminated with non-zero exit code: exit status 3", HasMetadata: true}, nil},
		{"exit 3 cri-streaming", criNZ, Result{ExitCode: 3, Reason: "NonZeroExitCode", Message: "command terminated with non-zero exit code: exit status 3"}, nil},
		{"exit 255", string(EncodeV4Exit(255)), Result{ExitCode: 255, Reason: "NonZeroExitCode", Message: "command terminated with non-zero exit code: exit status 255", HasMetadata: true}, nil},
		{"exit leading zeros", `{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"007"}]}}`, Result{ExitCode: 7, Reason: "NonZeroExitCode"}, nil},
		{"exit code after other cause", `{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"Other","message":"x"},{"reason":"ExitCode","message":"2"}]}}`, Result{ExitCode: 2, Reason: "NonZeroExitCode"}, nil},
		{"internal error", criInternal, Result{Reason: "InternalError", Message: "Internal error occurred: error executing command in container: boom", Code: 500}, nil},
		{"failure without reason", `{"status":"Failure","message":"nope"}`, Result{Message: "nope"}, nil},

		{"empty", ``, Result{}, ErrEmpty},
		{"whitespace", " \r\n\t", Result{}, ErrEmpty},
		{"too large", `{"status":"Success","x":"` + strings.Repeat("a", MaxStatusSize) + `"}`, Result{}, ErrTooLarge},
		{"truncated", `{"status":"Succ`, Result{}, ErrSyntax},
		{"trailing garbage", `{"status":"Success"}x`, Result{}, ErrSyntax},
		{"garbage", `exit 3`, Result{}, ErrSyntax},
		{"null", `null`, Result{}, ErrNotObject},
		{"array", `[{"status":"Success"}]`, Result{}, ErrNotObject},
		{"string", `"Success"`, Result{}, ErrNotObject},
		{"status not a string", `{"status":1}`, Result{}, ErrFieldType},
		{"metadata not an object", `{"metadata":5,"status":"Success"}`, Result{}, ErrFieldType},
		{"code out of int32", `{"status":"Success","code":2147483648}`, Result{}, ErrFieldType},
		{"cause field not a string", `{"status":"Success","details":{"causes":[{"field":1}]}}`, Result{}, ErrFieldType},
		{"missing status", `{"metadata":{}}`, Result{HasMetadata: true}, ErrNoStatus},
		{"empty status", `{"status":""}`, Result{}, ErrNoStatus},
		{"lowercase status", `{"status":"success"}`, Result{}, ErrBadStatus},
		{"no details", `{"status":"Failure","reason":"NonZeroExitCode"}`, Result{Reason: "NonZeroExitCode"}, ErrNoDetails},
		{"no causes", `{"status":"Failure","reason":"NonZeroExitCode","details":{}}`, Result{Reason: "NonZeroExitCode"}, ErrNoExitCode},
		{"no ExitCode cause", `{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"exitcode","message":"3"}]}}`, Result{Reason: "NonZeroExitCode"}, ErrNoExitCode},
		{"exit code 256", `{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"256"}]}}`, Result{Reason: "NonZeroExitCode"}, ErrBadExitCode},
		{"exit code negative", `{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"-1"}]}}`, Result{Reason: "NonZeroExitCode"}, ErrBadExitCode},
		{"exit code plus sign", `{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"+3"}]}}`, Result{Reason: "NonZeroExitCode"}, ErrBadExitCode},
		{"exit code empty", `{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode"}]}}`, Result{Reason: "NonZeroExitCode"}, ErrBadExitCode},
		{"exit code float", `{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3.0"}]}}`, Result{Reason: "NonZeroExitCode"}, ErrBadExitCode},
		{"first ExitCode cause decides", `{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"x"},{"reason":"ExitCode","message":"3"}]}}`, Result{Reason: "NonZeroExitCode"}, ErrBadExitCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeV4([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeLegacy(t *testing.T) {
	if r := DecodeLegacy(nil); !r.Success {
		t.Fatal("empty legacy stream is success")
	}
	if r := DecodeLegacy([]byte(" \n")); r.Success || r.Message != " \n" {
		t.Fatalf("whitespace is a failure text for client-go: %+v", r)
	}
	if r := DecodeLegacy([]byte("command terminated with exit code 3")); r.Success || r.Message != "command terminated with exit code 3" {
		t.Fatalf("%+v", r)
	}
}

// The encoders must be byte-identical to apimachinery's encoding of the same
// metav1.Status, so that fakes look like a real kubelet-style server.
func TestEncodersMatchApimachinery(t *testing.T) {
	marshal := func(s metav1.Status) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got, want := string(EncodeV4Success()), marshal(metav1.Status{Status: metav1.StatusSuccess}); got != want || got != brief0 {
		t.Errorf("EncodeV4Success = %s, apimachinery %s", got, want)
	}
	for _, code := range []int{1, 3, 127, 255} {
		want := marshal(metav1.Status{
			Status:  metav1.StatusFailure,
			Message: "command terminated with non-zero exit code: exit status " + strconv.Itoa(code),
			Reason:  ReasonNonZeroExitCode,
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: CauseExitCode, Message: strconv.Itoa(code)}}},
		})
		if got := string(EncodeV4Exit(code)); got != want {
			t.Errorf("EncodeV4Exit(%d) = %s\napimachinery     %s", code, got, want)
		}
		r, err := DecodeV4(EncodeV4Exit(code))
		if err != nil || r.ExitCode != code {
			t.Errorf("round trip %d: %+v, %v", code, r, err)
		}
	}
	for _, tc := range []struct {
		reason, msg string
		code        int32
	}{{"InternalError", "Internal error occurred: \"quoted\" <html> \u2028", 500}, {"", "plain", 0}} {
		want := marshal(metav1.Status{Status: metav1.StatusFailure, Message: tc.msg, Reason: metav1.StatusReason(tc.reason), Code: tc.code})
		got := EncodeV4Failure(tc.reason, tc.msg, tc.code)
		if string(got) != want {
			t.Errorf("EncodeV4Failure = %s\napimachinery      %s", got, want)
		}
		r, err := DecodeV4(got)
		if err != nil || r.Success || r.Message != tc.msg || r.Reason != tc.reason || r.Code != int(tc.code) {
			t.Errorf("round trip: %+v, %v", r, err)
		}
	}
	if _, err := DecodeV4(EncodeV4Exit(256)); !errors.Is(err, ErrBadExitCode) {
		t.Errorf("EncodeV4Exit(256) must not decode: %v", err)
	}
}
