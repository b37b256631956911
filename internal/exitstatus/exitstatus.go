// Package exitstatus decodes what a runtime writes on the remotecommand error
// stream (SPDY) or channel 3 (WebSocket): a JSON metav1.Status in v4/v5, plain
// text in v1–v3. Decoding is lenient about metadata and unknown fields, strict
// about what a client relies on (status, reason, the ExitCode cause).
package exitstatus

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// Result is a decoded status.
type Result struct {
	Success     bool
	ExitCode    int // valid when Reason == NonZeroExitCode
	Reason      string
	Message     string
	HasMetadata bool
}

// Sentinel errors.
var (
	ErrEmpty       = errors.New("exitstatus: empty status")
	ErrNotObject   = errors.New("exitstatus: not a JSON object")
	ErrNoStatus    = errors.New("exitstatus: no status field")
	ErrBadStatus   = errors.New("exitstatus: status is neither Success nor Failure")
	ErrNoExitCode  = errors.New("exitstatus: NonZeroExitCode without an ExitCode cause")
	ErrBadExitCode = errors.New("exitstatus: ExitCode cause is not an integer 0..255")
)

type wire struct {
	Metadata *json.RawMessage `json:"metadata"`
	Status   string           `json:"status"`
	Message  string           `json:"message"`
	Reason   string           `json:"reason"`
	Details  *struct {
		Causes []struct {
			Type    string `json:"reason"`
			Message string `json:"message"`
		} `json:"causes"`
	} `json:"details"`
}

// DecodeV4 decodes a v4/v5 JSON status.
func DecodeV4(b []byte) (Result, error) {
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) == 0 {
		return Result{}, ErrEmpty
	}
	if b[0] != '{' {
		return Result{}, ErrNotObject
	}
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return Result{}, errors.Join(ErrNotObject, err)
	}
	r := Result{Reason: w.Reason, Message: w.Message, HasMetadata: w.Metadata != nil}
	switch w.Status {
	case "Success":
		r.Success = true
		return r, nil
	case "Failure":
	case "":
		return r, ErrNoStatus
	default:
		return r, ErrBadStatus
	}
	if w.Reason != "NonZeroExitCode" {
		return r, nil
	}
	if w.Details == nil {
		return r, ErrNoExitCode
	}
	for _, c := range w.Details.Causes {
		if c.Type != "ExitCode" {
			continue
		}
		n, err := strconv.Atoi(c.Message)
		if err != nil || n < 0 || n > 255 {
			return r, ErrBadExitCode
		}
		r.ExitCode = n
		return r, nil
	}
	return r, ErrNoExitCode
}

// DecodeLegacy decodes a v1–v3 error stream: empty is success, text a failure.
func DecodeLegacy(b []byte) Result {
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		return Result{Success: true}
	}
	return Result{Message: msg}
}

// EncodeV4Success returns the Success status as containerd 2.x writes it.
func EncodeV4Success() []byte { return []byte(`{"status":"Success"}`) }

// EncodeV4Exit returns the NonZeroExitCode status for code.
func EncodeV4Exit(code int) []byte {
	c := strconv.Itoa(code)
	return []byte(`{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: ` + c +
		`","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"` + c + `"}]}}`)
}
