package fuzz

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/gauntlet-conformance/gauntlet/internal/exitstatus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() {
	seedSets["FuzzExitStatus"] = []seed{
		{"success-metadata", []any{[]byte(`{"metadata":{},"status":"Success"}`), byte(0)}},
		{"success-bare", []any{[]byte(`{"status":"Success"}`), byte(0)}},
		{"exit-3", []any{[]byte(`{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`), byte(3)}},
		{"exit-3-cri-streaming", []any{[]byte(`{"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`), byte(3)}},
		{"internal-error", []any{[]byte(`{"status":"Failure","message":"Internal error occurred: boom","reason":"InternalError","code":500}`), byte(1)}},
		{"exit-256", []any{[]byte(`{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"256"}]}}`), byte(255)}},
		{"exit-plus", []any{[]byte(`{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"+3"}]}}`), byte(3)}},
		{"exit-leading-zero", []any{[]byte(`{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"003"}]}}`), byte(3)}},
		{"no-details", []any{[]byte(`{"status":"Failure","reason":"NonZeroExitCode"}`), byte(1)}},
		{"no-cause", []any{[]byte(`{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[]}}`), byte(1)}},
		{"upper-keys", []any{[]byte(`{"STATUS":"Success"}`), byte(0)}},
		{"metadata-number", []any{[]byte(`{"metadata":5,"status":"Success"}`), byte(0)}},
		{"code-overflow", []any{[]byte(`{"status":"Success","code":2147483648}`), byte(0)}},
		{"null", []any{[]byte(`null`), byte(0)}},
		{"array", []any{[]byte(`[]`), byte(0)}},
		{"legacy-text", []any{[]byte(`command terminated with exit code 3`), byte(3)}},
		{"empty", []any{[]byte{}, byte(0)}},
	}
}

type outcome struct {
	kind    string // success, exit, failure, error
	code    int
	message string
}

// upstreamStatus is client-go's v4 error decoder (errorDecoderV4.decode in
// tools/remotecommand/v4.go, unexported) reduced to its outcome.
func upstreamStatus(b []byte) outcome {
	var s metav1.Status
	if err := json.Unmarshal(b, &s); err != nil {
		return outcome{kind: "error"}
	}
	switch s.Status {
	case metav1.StatusSuccess:
		return outcome{kind: "success"}
	case metav1.StatusFailure:
		if s.Reason == "NonZeroExitCode" {
			if s.Details == nil {
				return outcome{kind: "error"}
			}
			for i := range s.Details.Causes {
				c := &s.Details.Causes[i]
				if c.Type != "ExitCode" {
					continue
				}
				rc, err := strconv.ParseUint(c.Message, 10, 8)
				if err != nil {
					return outcome{kind: "error"}
				}
				return outcome{kind: "exit", code: int(rc)}
			}
			return outcome{kind: "error"}
		}
	default:
		return outcome{kind: "error"}
	}
	return outcome{kind: "failure", message: s.Message}
}

func ourStatus(b []byte) (outcome, error) {
	r, err := exitstatus.DecodeV4(b)
	switch {
	case err != nil:
		return outcome{kind: "error"}, err
	case r.Success:
		return outcome{kind: "success"}, nil
	case r.Reason == exitstatus.ReasonNonZeroExitCode:
		return outcome{kind: "exit", code: r.ExitCode}, nil
	}
	return outcome{kind: "failure", message: r.Message}, nil
}

// FuzzExitStatus: DecodeV4 never panics, fails only with its sentinels,
// round-trips the encoders, and reaches the same outcome as client-go for
// every input (success, exit code, failure message, or protocol error).
func FuzzExitStatus(f *testing.F) {
	addSeeds(f, "FuzzExitStatus")
	f.Fuzz(func(t *testing.T, msg []byte, code byte) {
		enc := exitstatus.EncodeV4Exit(int(code))
		if r, err := exitstatus.DecodeV4(enc); err != nil || r.ExitCode != int(code) || r.Success {
			t.Fatalf("DecodeV4(EncodeV4Exit(%d)) = %+v, %v", code, r, err)
		}
		if up := upstreamStatus(enc); up.kind != "exit" || up.code != int(code) {
			t.Fatalf("client-go decodes EncodeV4Exit(%d) as %+v", code, up)
		}
		if r, err := exitstatus.DecodeV4(exitstatus.EncodeV4Success()); err != nil || !r.Success {
			t.Fatalf("EncodeV4Success: %+v, %v", r, err)
		}
		if lr := exitstatus.DecodeLegacy(msg); lr.Success != (len(msg) == 0) || (!lr.Success && lr.Message != string(msg)) {
			t.Fatalf("DecodeLegacy(%q) = %+v", msg, lr)
		}

		ours, err := ourStatus(msg)
		if err != nil && !isOneOf(err, []error{exitstatus.ErrEmpty, exitstatus.ErrTooLarge, exitstatus.ErrSyntax, exitstatus.ErrNotObject,
			exitstatus.ErrFieldType, exitstatus.ErrNoStatus, exitstatus.ErrBadStatus, exitstatus.ErrNoDetails, exitstatus.ErrNoExitCode, exitstatus.ErrBadExitCode}) {
			t.Fatalf("unexpected error %v", err)
		}
		if len(msg) == 0 || errors.Is(err, exitstatus.ErrTooLarge) {
			// client-go never decodes an empty error stream (it means
			// success there); DecodeV4 says ErrEmpty and leaves the
			// policy to the caller. The size limit is ours alone.
			return
		}
		if up := upstreamStatus(msg); up != ours {
			t.Fatalf("DecodeV4(%q) = %+v (%v), client-go %+v", msg, ours, err, up)
		}
	})
}
