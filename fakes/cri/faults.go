package cri

import (
	"fmt"
	"sort"
	"strings"
)

// Fault names one deliberate misbehaviour of the reference runtime. Each check in
// the streaming suite names the faults that must make it fail; the proof tests in
// suites/streaming enable them one at a time.
type Fault string

// The fault catalogue. Grouped by the layer that injects them.
const (
	// CRI (gRPC) layer.
	FaultRelativeURL               Fault = "relative-url"         // Exec/Attach/PortForward return a path, not an absolute URL
	FaultShortToken                Fault = "short-token"          // tokens are 2-character counters
	FaultTokenReuse                Fault = "token-reuse"          // a token stays valid after use
	FaultNoTTL                     Fault = "no-ttl"               // tokens never expire
	FaultTokenCrossEndpoint        Fault = "token-cross-endpoint" // an exec token is honoured on /attach/
	FaultFailedHandshakeKeepsToken Fault = "failed-handshake-keeps-token"
	FaultNoInflightLimit           Fault = "no-inflight-limit"      // unconsumed tokens are never refused
	FaultNoValidation              Fault = "no-request-validation"  // invalid Exec requests get a URL
	FaultExecStopped               Fault = "exec-stopped-container" // Exec on a stopped/unknown container returns a URL
	FaultListenAll                 Fault = "stream-listen-all"      // stream URL names a non-loopback host

	// HTTP handshake layer.
	FaultHandshakeAs500     Fault = "handshake-errors-as-500"  // 400/403/404/405 answers become 500
	FaultSPDYDowngrade      Fault = "spdy-downgrade"           // negotiates the oldest version offered
	FaultSPDYDefaultVersion Fault = "spdy-default-version"     // a missing X-Stream-Protocol-Version is treated as v4
	FaultSPDYNoV2           Fault = "spdy-no-v2"               // v2.channel.k8s.io is not served
	FaultWedgeOnBadResize   Fault = "wedge-on-bad-resize"      // a malformed resize stops stdin (the C11/D12 wedge)
	FaultLenientUpgrade     Fault = "lenient-upgrade"          // wrong Upgrade/Connection headers are repaired
	FaultWSWrongProtocol    Fault = "ws-wrong-protocol"        // 101 names channel.k8s.io whatever was negotiated
	FaultWSAcceptAny        Fault = "ws-accept-any-protocol"   // unsupported subprotocols are upgraded as channel.k8s.io
	FaultWSEmptyProtocol    Fault = "ws-empty-protocol-header" // the library's empty Sec-WebSocket-Protocol (D4) is not stripped
	FaultV5NotServed        Fault = "v5-not-served"            // v5.channel.k8s.io answered 403 although declared

	// Stream/wire layer.
	FaultNoSuccessStatus     Fault = "no-success-status"      // connection closed before the v4 Success status is written
	FaultWSNoReadyFrame      Fault = "ws-no-ready-frame"      // the first (empty) server frame is dropped
	FaultWSRawBase64         Fault = "ws-raw-base64"          // base64 frames use unpadded encoding
	FaultWSDropStatus        Fault = "ws-drop-status"         // channel 3 frames are dropped
	FaultWSCloseBeforeV5     Fault = "ws-close-before-v5"     // [255,0] closes stdin on v4 too
	FaultWSKillOnBadChannel  Fault = "ws-kill-on-bad-channel" // frames for an unknown channel or with bad base64 drop the connection
	FaultWSNoPong            Fault = "ws-no-pong"             // pings are not answered
	FaultWSBadPortPrefix     Fault = "ws-bad-port-prefix"     // port prefix sent big-endian
	FaultCrashOnBadStream    Fault = "crash-on-bad-stream"    // an unknown/duplicate streamType or bad port header crashes the stream server
	FaultCrashOnManyStreams  Fault = "crash-on-many-streams"  // > 100 port-forward streams on one connection crash the stream server
	FaultNoIdleTimeout       Fault = "no-idle-timeout"        // idle connections are never closed
	FaultLongCreationTimeout Fault = "long-creation-timeout"  // streams missing from a pair are waited for for an hour

	// Process layer.
	FaultSwapStdoutStderr Fault = "swap-stdout-stderr"
	FaultWrongExitCode    Fault = "wrong-exit-code"     // non-zero exit codes are reported off by one
	FaultIgnoreStdinEOF   Fault = "ignore-stdin-eof"    // the process never sees stdin close
	FaultTruncateOutput   Fault = "truncate-output"     // output after the first write is lost when stdin is not attached
	FaultIgnoreResize     Fault = "ignore-resize"       // terminal resizes are ignored
	FaultApplyZeroResize  Fault = "apply-zero-resize"   // a 0x0 resize is applied
	FaultAttachNoStdin    Fault = "attach-no-stdin"     // attach never forwards stdin
	FaultLeakOnAttach     Fault = "leak-on-attach"      // every attach leaks a goroutine and 64 KiB
	FaultPortIgnored      Fault = "port-ignored"        // port-forward always dials the first listening port
	FaultPFSilentRefuse   Fault = "pf-silent-refuse"    // a refused port-forward reports no error
	FaultPFAnyPort        Fault = "pf-any-port"         // ports not in PortForwardRequest are forwarded (library behaviour, F8)
	FaultPFResetKillsConn Fault = "pf-reset-kills-conn" // one failing port-forward stream closes the whole connection
	FaultHostNetPF        Fault = "hostnet-pf-broken"   // port-forward into host-network sandboxes fails

	// AuthorizeStream (KEP-6051).
	FaultAuthzAfterStart  Fault = "authz-after-start"  // the hook runs after the command started
	FaultAuthzDenyAs401   Fault = "authz-deny-as-401"  // denial answered 401
	FaultAuthzKeepsToken  Fault = "authz-keeps-token"  // a denied token stays valid
	FaultAuthzNoBody      Fault = "authz-no-body"      // denial body omits the hook's error
	FaultAuthzWithoutHook Fault = "authz-without-hook" // the deny policy applies even when no hook is configured

	// Added with E2, F10 and C9 on real runtimes.
	FaultV5IgnoreBadClose Fault = "v5-ignore-bad-close" // malformed v5 close signals are swallowed: the connection stays open
	FaultWSPFNoPortsOpen  Fault = "ws-pf-no-ports-open" // a WebSocket port forward without ports stays open
	FaultLateInitialSize  Fault = "late-initial-size"   // the process starts before the initial tty size is applied (containerd 1.6, 2.x)
)

var faultDocs = map[Fault]string{
	FaultRelativeURL:               "Exec/Attach/PortForward return a path, not an absolute URL",
	FaultShortToken:                "tokens are 2-character counters",
	FaultTokenReuse:                "a token stays valid after use",
	FaultNoTTL:                     "tokens never expire",
	FaultTokenCrossEndpoint:        "an exec token is honoured on /attach/ and /portforward/",
	FaultFailedHandshakeKeepsToken: "a failed handshake does not burn the token",
	FaultNoInflightLimit:           "unconsumed tokens are never refused",
	FaultNoValidation:              "invalid Exec/Attach requests get a URL",
	FaultExecStopped:               "Exec/Attach on a stopped or unknown container returns a URL",
	FaultListenAll:                 "the stream URL names a non-loopback host",
	FaultHandshakeAs500:            "400/403/404/405 handshake answers become 500",
	FaultSPDYDowngrade:             "SPDY negotiates the oldest version offered",
	FaultSPDYDefaultVersion:        "a missing X-Stream-Protocol-Version is treated as v4",
	FaultSPDYNoV2:                  "v2.channel.k8s.io is not served",
	FaultWedgeOnBadResize:          "a malformed resize message stops stdin from reaching the process",
	FaultLenientUpgrade:            "wrong Upgrade/Connection headers are repaired instead of refused",
	FaultWSWrongProtocol:           "the 101 names channel.k8s.io whatever was negotiated",
	FaultWSAcceptAny:               "unsupported WebSocket subprotocols are upgraded as channel.k8s.io",
	FaultWSEmptyProtocol:           "the library's empty Sec-WebSocket-Protocol header (D4) is sent",
	FaultV5NotServed:               "v5.channel.k8s.io is answered 403 although declared",
	FaultNoSuccessStatus:           "the connection closes before the v4 Success status is written",
	FaultWSNoReadyFrame:            "the first (empty) server frame is dropped",
	FaultWSRawBase64:               "base64 frames use unpadded encoding",
	FaultWSDropStatus:              "WebSocket channel 3 frames are dropped",
	FaultWSCloseBeforeV5:           "[255,0] closes stdin on pre-v5 protocols",
	FaultWSKillOnBadChannel:        "a frame for an unknown channel or with bad base64 drops the connection",
	FaultWSNoPong:                  "WebSocket pings are not answered",
	FaultWSBadPortPrefix:           "the port-forward port prefix is sent big-endian",
	FaultCrashOnBadStream:          "an unknown/duplicate streamType or a bad port header crashes the stream server",
	FaultCrashOnManyStreams:        "more than 100 port-forward streams on one connection crash the stream server",
	FaultNoIdleTimeout:             "idle stream connections are never closed",
	FaultLongCreationTimeout:       "missing streams are waited for for an hour, and idle connections are never closed",
	FaultSwapStdoutStderr:          "stdout and stderr are swapped",
	FaultWrongExitCode:             "non-zero exit codes are reported off by one",
	FaultIgnoreStdinEOF:            "the process never sees stdin close",
	FaultTruncateOutput:            "output after the first write is lost when stdin is not attached",
	FaultIgnoreResize:              "terminal resizes are ignored",
	FaultApplyZeroResize:           "a 0x0 resize is applied",
	FaultAttachNoStdin:             "attach never forwards stdin",
	FaultLeakOnAttach:              "every attach leaks a goroutine and 64 KiB",
	FaultPortIgnored:               "port-forward always dials the first listening port",
	FaultPFSilentRefuse:            "a refused port-forward reports no error",
	FaultPFAnyPort:                 "ports not listed in PortForwardRequest are forwarded (library behaviour, F8)",
	FaultPFResetKillsConn:          "one failing port-forward stream closes the whole connection",
	FaultHostNetPF:                 "port-forward into host-network sandboxes fails",
	FaultAuthzAfterStart:           "the AuthorizeStream hook runs after the command started",
	FaultAuthzDenyAs401:            "an AuthorizeStream denial is answered 401",
	FaultAuthzKeepsToken:           "a denied token stays valid",
	FaultAuthzNoBody:               "the denial body omits the hook's error",
	FaultAuthzWithoutHook:          "the deny policy applies even when no hook is configured",
	FaultV5IgnoreBadClose:          "malformed v5 close signals ([255], [255,0,0], [255,9]) are swallowed and the connection stays open",
	FaultWSPFNoPortsOpen:           "a WebSocket port forward without ports stays open instead of closing",
	FaultLateInitialSize:           "the process starts before the client's initial tty size is applied",
}

// Faults lists every known fault name, sorted.
func Faults() []Fault {
	out := make([]Fault, 0, len(faultDocs))
	for f := range faultDocs {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Describe returns the one-line description of a fault.
func (f Fault) Describe() string { return faultDocs[f] }

// ParseFaults parses a comma-separated list of fault names.
func ParseFaults(s string) ([]Fault, error) {
	var out []Fault
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		f := Fault(name)
		if _, ok := faultDocs[f]; !ok {
			return nil, fmt.Errorf("unknown fault %q (see `gauntlet fake-runtime --list-faults`)", name)
		}
		out = append(out, f)
	}
	return out, nil
}

type faultSet map[Fault]bool

func newFaultSet(fs []Fault) faultSet {
	s := faultSet{}
	for _, f := range fs {
		s[f] = true
	}
	return s
}

func (s faultSet) has(f Fault) bool { return s[f] }
