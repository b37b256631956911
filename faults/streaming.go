package faults

// The streaming suite's catalogue: the reference CRI runtime (fakes/cri).
// Layers: cri (gRPC), handshake (HTTP upgrade), wire (stream framing),
// process, authorize (KEP-6051), hostile (hostile-peer modes, which the
// harness's self-defence tests use) and construction (fixed at start:
// token aliasing, timers, TLS, the hostile front).
const (
	RelativeURL               Fault = "relative-url"
	ShortToken                Fault = "short-token"
	TokenReuse                Fault = "token-reuse"
	NoTTL                     Fault = "no-ttl"
	TokenCrossEndpoint        Fault = "token-cross-endpoint"
	FailedHandshakeKeepsToken Fault = "failed-handshake-keeps-token"
	NoInflightLimit           Fault = "no-inflight-limit"
	NoValidation              Fault = "no-request-validation"
	ExecStopped               Fault = "exec-stopped-container"
	ListenAll                 Fault = "stream-listen-all"
	HandshakeAs500            Fault = "handshake-errors-as-500"
	SPDYDowngrade             Fault = "spdy-downgrade"
	SPDYDefaultVersion        Fault = "spdy-default-version"
	SPDYNoV2                  Fault = "spdy-no-v2"
	WedgeOnBadResize          Fault = "wedge-on-bad-resize"
	LenientUpgrade            Fault = "lenient-upgrade"
	WSWrongProtocol           Fault = "ws-wrong-protocol"
	WSAcceptAny               Fault = "ws-accept-any-protocol"
	WSEmptyProtocol           Fault = "ws-empty-protocol-header"
	V5NotServed               Fault = "v5-not-served"
	NoSuccessStatus           Fault = "no-success-status"
	WSNoReadyFrame            Fault = "ws-no-ready-frame"
	WSRawBase64               Fault = "ws-raw-base64"
	WSDropStatus              Fault = "ws-drop-status"
	WSCloseBeforeV5           Fault = "ws-close-before-v5"
	WSKillOnBadChannel        Fault = "ws-kill-on-bad-channel"
	WSNoPong                  Fault = "ws-no-pong"
	WSBadPortPrefix           Fault = "ws-bad-port-prefix"
	CrashOnBadStream          Fault = "crash-on-bad-stream"
	CrashOnManyStreams        Fault = "crash-on-many-streams"
	NoIdleTimeout             Fault = "no-idle-timeout"
	LongCreationTimeout       Fault = "long-creation-timeout"
	SwapStdoutStderr          Fault = "swap-stdout-stderr"
	WrongExitCode             Fault = "wrong-exit-code"
	IgnoreStdinEOF            Fault = "ignore-stdin-eof"
	TruncateOutput            Fault = "truncate-output"
	IgnoreResize              Fault = "ignore-resize"
	ApplyZeroResize           Fault = "apply-zero-resize"
	AttachNoStdin             Fault = "attach-no-stdin"
	LeakOnAttach              Fault = "leak-on-attach"
	PortIgnored               Fault = "port-ignored"
	PFSilentRefuse            Fault = "pf-silent-refuse"
	PFAnyPort                 Fault = "pf-any-port"
	PFResetKillsConn          Fault = "pf-reset-kills-conn"
	HostNetPF                 Fault = "hostnet-pf-broken"
	AuthzAfterStart           Fault = "authz-after-start"
	AuthzDenyAs401            Fault = "authz-deny-as-401"
	AuthzKeepsToken           Fault = "authz-keeps-token"
	AuthzNoBody               Fault = "authz-no-body"
	AuthzWithoutHook          Fault = "authz-without-hook"
	V5IgnoreBadClose          Fault = "v5-ignore-bad-close"
	WSPFNoPortsOpen           Fault = "ws-pf-no-ports-open"
	LateInitialSize           Fault = "late-initial-size"
	SPDYBombVulnerable        Fault = "spdy-bomb-vulnerable"
	SPDYOversizeHeld          Fault = "spdy-oversize-held"
	NoHeaderTimeout           Fault = "no-header-timeout"
	WSUnboundedFrames         Fault = "ws-unbounded-frames"
	HostileNeverAnswer        Fault = "hostile-never-answer"
	HostileMute               Fault = "hostile-mute-upgrade"
	HostileGarbage            Fault = "hostile-garbage-frames"
	HostileEndless            Fault = "hostile-endless-stream"
	HostileGiantFrame         Fault = "hostile-giant-frame"
	HostileHeaderBomb         Fault = "hostile-header-bomb"
	HostileEndlessHead        Fault = "hostile-endless-head"
	HostileCRIHang            Fault = "hostile-cri-hang"
	TLSSelfSigned             Fault = "tls-self-signed"
	TLSWrongHost              Fault = "tls-wrong-host"
)

// Streaming is the reference CRI runtime's fault table.
var Streaming = NewCatalogue("streaming",
	Info{RelativeURL, "cri", "Exec/Attach/PortForward return a path, not an absolute URL"},
	Info{ShortToken, Construction, "tokens are 2-character counters"},
	Info{TokenReuse, Construction, "a token stays valid after use"},
	Info{NoTTL, Construction, "tokens never expire"},
	Info{TokenCrossEndpoint, Construction, "an exec token is honoured on /attach/ and /portforward/"},
	Info{FailedHandshakeKeepsToken, Construction, "a failed handshake does not burn the token"},
	Info{NoInflightLimit, Construction, "unconsumed tokens are never refused"},
	Info{NoValidation, Construction, "invalid Exec/Attach requests get a URL"},
	Info{ExecStopped, "cri", "Exec/Attach on a stopped or unknown container returns a URL"},
	Info{ListenAll, "cri", "the stream URL names a non-loopback host"},
	Info{HandshakeAs500, "handshake", "400/403/404/405 handshake answers become 500"},
	Info{SPDYDowngrade, "handshake", "SPDY negotiates the oldest version offered"},
	Info{SPDYDefaultVersion, "handshake", "a missing X-Stream-Protocol-Version is treated as v4"},
	Info{SPDYNoV2, Construction, "v2.channel.k8s.io is not served"},
	Info{WedgeOnBadResize, "handshake", "a malformed resize message stops stdin from reaching the process"},
	Info{LenientUpgrade, "handshake", "wrong Upgrade/Connection headers are repaired instead of refused"},
	Info{WSWrongProtocol, "handshake", "the 101 names channel.k8s.io whatever was negotiated"},
	Info{WSAcceptAny, "handshake", "unsupported WebSocket subprotocols are upgraded as channel.k8s.io"},
	Info{WSEmptyProtocol, "handshake", "the library's empty Sec-WebSocket-Protocol header (D4) is sent"},
	Info{V5NotServed, "handshake", "v5.channel.k8s.io is answered 403 although declared"},
	Info{NoSuccessStatus, "wire", "the connection closes before the v4 Success status is written"},
	Info{WSNoReadyFrame, "wire", "the first (empty) server frame is dropped"},
	Info{WSRawBase64, "wire", "base64 frames use unpadded encoding"},
	Info{WSDropStatus, "wire", "WebSocket channel 3 frames are dropped"},
	Info{WSCloseBeforeV5, "wire", "[255,0] closes stdin on pre-v5 protocols"},
	Info{WSKillOnBadChannel, "wire", "a frame for an unknown channel or with bad base64 drops the connection"},
	Info{WSNoPong, "wire", "WebSocket pings are not answered"},
	Info{WSBadPortPrefix, "wire", "the port-forward port prefix is sent big-endian"},
	Info{CrashOnBadStream, "wire", "an unknown/duplicate streamType or a bad port header crashes the stream server"},
	Info{CrashOnManyStreams, "wire", "more than 100 port-forward streams on one connection crash the stream server"},
	Info{NoIdleTimeout, Construction, "idle stream connections are never closed"},
	Info{LongCreationTimeout, Construction, "missing streams are waited for for an hour, and idle connections are never closed"},
	Info{SwapStdoutStderr, "process", "stdout and stderr are swapped"},
	Info{WrongExitCode, "process", "non-zero exit codes are reported off by one"},
	Info{IgnoreStdinEOF, "process", "the process never sees stdin close"},
	Info{TruncateOutput, "process", "output after the first write is lost when stdin is not attached"},
	Info{IgnoreResize, "process", "terminal resizes are ignored"},
	Info{ApplyZeroResize, "process", "a 0x0 resize is applied"},
	Info{AttachNoStdin, "process", "attach never forwards stdin"},
	Info{LeakOnAttach, "process", "every attach leaks a goroutine and 64 KiB"},
	Info{PortIgnored, "process", "port-forward always dials the first listening port"},
	Info{PFSilentRefuse, "process", "a refused port-forward reports no error"},
	Info{PFAnyPort, "process", "ports not listed in PortForwardRequest are forwarded (library behaviour, F8)"},
	Info{PFResetKillsConn, "process", "one failing port-forward stream closes the whole connection"},
	Info{HostNetPF, "process", "port-forward into host-network sandboxes fails"},
	Info{AuthzAfterStart, "authorize", "the AuthorizeStream hook runs after the command started"},
	Info{AuthzDenyAs401, "authorize", "an AuthorizeStream denial is answered 401"},
	Info{AuthzKeepsToken, "authorize", "a denied token stays valid"},
	Info{AuthzNoBody, "authorize", "the denial body omits the hook's error"},
	Info{AuthzWithoutHook, "authorize", "the deny policy applies even when no hook is configured"},
	Info{V5IgnoreBadClose, "wire", "malformed v5 close signals ([255], [255,0,0], [255,9]) are swallowed and the connection stays open"},
	Info{WSPFNoPortsOpen, "wire", "a WebSocket port forward without ports stays open instead of closing"},
	Info{LateInitialSize, "wire", "the process starts before the client's initial tty size is applied"},
	Info{SPDYBombVulnerable, Construction, "a SPDY frame bomb (SETTINGS/header count, 2^31 name length, NUL fan-out) or malformed frame crashes the stream server (CVE-2026-35469 class, spdystream <= 0.5.0)"},
	Info{SPDYOversizeHeld, Construction, "a SPDY control frame claiming more than 1 MiB is buffered and its connection kept open"},
	Info{NoHeaderTimeout, Construction, "the stream server waits for request headers forever (no ReadHeaderTimeout: slowloris)"},
	Info{WSUnboundedFrames, Construction, "WebSocket frames over the library's 32 MiB limit are buffered in memory instead of closing the connection"},
	Info{HostileNeverAnswer, Construction, "hostile: the stream server accepts the TCP connection and never answers"},
	Info{HostileMute, Construction, "hostile: the stream server answers 101 and then never sends a byte"},
	Info{HostileGarbage, Construction, "hostile: the stream server answers 101 and then sends garbage bytes"},
	Info{HostileEndless, Construction, "hostile: stdout (or port-forward data) never ends"},
	Info{HostileGiantFrame, Construction, "hostile: the first server frame claims a gigantic length (WebSocket 2^63-1, SPDY 16 MiB)"},
	Info{HostileHeaderBomb, Construction, "hostile: SPDY stream replies carry a 1 MiB header value of NULs (spdystream's fan-out)"},
	Info{HostileEndlessHead, Construction, "hostile: the stream server's 101 answer has a header line that never ends"},
	Info{HostileCRIHang, Construction, "hostile: the gRPC Exec, Attach and PortForward calls never return"},
	Info{TLSSelfSigned, "tls", "the https stream server presents a self-signed certificate (what containerd generates when enable_tls_streaming has no cert)"},
	Info{TLSWrongHost, "tls", "the https stream server's certificate names another host than the URL's"},
)
