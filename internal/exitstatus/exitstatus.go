// Package exitstatus decodes what a CRI streaming server writes on the
// remotecommand error stream (SPDY) or error channel 3 (WebSocket) when the
// command ends: a JSON metav1.Status in protocol v4 and v5, plain text in
// v1-v3.
//
// DecodeV4 accepts exactly the JSON that client-go's v4 error decoder
// accepts (it unmarshals into metav1.Status, then reads
// details.causes[reason=ExitCode]): the local wire types mirror every
// metav1.Status field with its JSON type, so a field of the wrong type fails
// here as it fails in kubectl, and unknown fields are ignored as there. It
// adds what client-go leaves implicit: a size limit, and errors where
// client-go would report "unknown error" (missing or odd status).
package exitstatus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Status values and the reason/cause names of a non-zero exit.
const (
	StatusSuccess         = "Success"
	StatusFailure         = "Failure"
	ReasonNonZeroExitCode = "NonZeroExitCode"
	CauseExitCode         = "ExitCode"
)

// MaxStatusSize bounds the status a decoder accepts. Real statuses are well
// under 4 KiB; client-go reads the error stream without a bound.
const MaxStatusSize = 1 << 20

// Result is a decoded status.
type Result struct {
	Success bool
	// ExitCode is the command's exit code, valid when Reason is
	// NonZeroExitCode (0..255; 0 only if a server sends it).
	ExitCode int
	// Reason and Message are the status' reason and message; for v1-v3
	// failures Message is the whole error text.
	Reason  string
	Message string
	// Code is the status' HTTP-style code (500 for InternalError), 0 if absent.
	Code int
	// HasMetadata reports a non-null "metadata" member: apimachinery's
	// encoder writes "metadata":{}, cri-streaming's local type does not.
	HasMetadata bool
}

// Sentinel errors. DecodeV4 wraps some with detail; compare with errors.Is.
var (
	ErrEmpty       = errors.New("exitstatus: empty status")
	ErrTooLarge    = errors.New("exitstatus: status exceeds MaxStatusSize")
	ErrSyntax      = errors.New("exitstatus: malformed JSON")
	ErrNotObject   = errors.New("exitstatus: status is not a JSON object")
	ErrFieldType   = errors.New("exitstatus: a metav1.Status field has the wrong JSON type")
	ErrNoStatus    = errors.New("exitstatus: status field missing or empty")
	ErrBadStatus   = errors.New("exitstatus: status is neither Success nor Failure")
	ErrNoDetails   = errors.New("exitstatus: NonZeroExitCode without details")
	ErrNoExitCode  = errors.New("exitstatus: NonZeroExitCode without an ExitCode cause")
	ErrBadExitCode = errors.New("exitstatus: ExitCode cause is not an integer 0..255")
)

// wireStatus mirrors metav1.Status field for field (JSON names and types),
// so that encoding/json accepts and rejects the same documents for both.
type wireStatus struct {
	Kind       string        `json:"kind"`
	APIVersion string        `json:"apiVersion"`
	Metadata   *wireListMeta `json:"metadata"`
	Status     string        `json:"status"`
	Message    string        `json:"message"`
	Reason     string        `json:"reason"`
	Details    *wireDetails  `json:"details"`
	Code       int32         `json:"code"`
}

type wireListMeta struct {
	SelfLink           string `json:"selfLink"`
	ResourceVersion    string `json:"resourceVersion"`
	Continue           string `json:"continue"`
	RemainingItemCount *int64 `json:"remainingItemCount"`
}

type wireDetails struct {
	Name              string      `json:"name"`
	Group             string      `json:"group"`
	Kind              string      `json:"kind"`
	UID               string      `json:"uid"`
	Causes            []wireCause `json:"causes"`
	RetryAfterSeconds int32       `json:"retryAfterSeconds"`
}

type wireCause struct {
	Type    string `json:"reason"` // metav1.StatusCause.Type is "reason" on the wire
	Message string `json:"message"`
	Field   string `json:"field"`
}

// The two success encodings seen in practice, decoded without reflection:
// apimachinery's json.Marshal of metav1.Status and cri-streaming's.
var (
	successWithMetadata = []byte(`{"metadata":{},"status":"Success"}`)
	successBare         = []byte(`{"status":"Success"}`)
)

// DecodeV4 decodes a v4/v5 status. On a semantic error (after the JSON
// decoded) the Result carries what was read, for reporting.
func DecodeV4(b []byte) (Result, error) {
	switch {
	case bytes.Equal(b, successWithMetadata):
		return Result{Success: true, HasMetadata: true}, nil
	case bytes.Equal(b, successBare):
		return Result{Success: true}, nil
	case len(b) > MaxStatusSize:
		return Result{}, ErrTooLarge
	}
	i := skipSpace(b)
	if i == len(b) {
		return Result{}, ErrEmpty
	}
	if b[i] != '{' {
		// null decodes without error into a struct: client-go then
		// reports "unknown error"; here it is not an object either.
		if json.Valid(b) {
			return Result{}, ErrNotObject
		}
		return Result{}, ErrSyntax
	}
	var w wireStatus
	if err := json.Unmarshal(b, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Result{}, fmt.Errorf("%w: %w", ErrFieldType, err)
		}
		return Result{}, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	r := Result{Reason: w.Reason, Message: w.Message, Code: int(w.Code), HasMetadata: w.Metadata != nil}
	switch w.Status {
	case StatusSuccess:
		r.Success = true
		return r, nil
	case StatusFailure:
	case "":
		return r, ErrNoStatus
	default:
		return r, fmt.Errorf("%w: %q", ErrBadStatus, w.Status)
	}
	if w.Reason != ReasonNonZeroExitCode {
		return r, nil
	}
	if w.Details == nil {
		return r, ErrNoDetails
	}
	// Like client-go: the first ExitCode cause decides, even if invalid.
	for _, c := range w.Details.Causes {
		if c.Type != CauseExitCode {
			continue
		}
		code, ok := parseExitCode(c.Message)
		if !ok {
			return r, fmt.Errorf("%w: %q", ErrBadExitCode, c.Message)
		}
		r.ExitCode = code
		return r, nil
	}
	return r, ErrNoExitCode
}

// parseExitCode accepts what strconv.ParseUint(s, 10, 8) accepts (client-go's
// check): ASCII digits only, leading zeros allowed, no sign, value <= 255.
func parseExitCode(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > 255 {
			return 0, false
		}
	}
	return n, true
}

// skipSpace returns the index of the first non-JSON-whitespace byte.
func skipSpace(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// DecodeLegacy decodes a v1-v3 error stream: nothing means success, any
// bytes are the failure text (client-go does not trim them either).
func DecodeLegacy(b []byte) Result {
	if len(b) == 0 {
		return Result{Success: true}
	}
	return Result{Message: string(b)}
}

// EncodeV4Success returns the success status as apimachinery encodes it
// (kubelet's historic streaming server). cri-streaming omits the metadata;
// both decode the same.
func EncodeV4Success() []byte { return bytes.Clone(successWithMetadata) }

// EncodeV4Exit returns the NonZeroExitCode status for code, byte for byte
// what json.Marshal of the equivalent metav1.Status produces. Codes outside
// 0..255 are encoded as given, for fakes that misbehave on purpose.
func EncodeV4Exit(code int) []byte {
	c := strconv.Itoa(code)
	b := make([]byte, 0, 200)
	b = append(b, `{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status `...)
	b = append(b, c...)
	b = append(b, `","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"`...)
	b = append(b, c...)
	return append(b, `"}]}}`...)
}

// EncodeV4Failure returns a Failure status with reason, message and code
// (omitted when empty/zero), as apimachinery encodes it.
func EncodeV4Failure(reason, message string, code int32) []byte {
	type failure struct {
		Metadata struct{} `json:"metadata"`
		Status   string   `json:"status"`
		Message  string   `json:"message,omitempty"`
		Reason   string   `json:"reason,omitempty"`
		Code     int32    `json:"code,omitempty"`
	}
	b, err := json.Marshal(failure{Status: StatusFailure, Message: message, Reason: reason, Code: code})
	if err != nil {
		panic(err) // strings and an int32 always marshal
	}
	return b
}
