// Package critarget is what a CRI streaming target states about itself
// (conformance.Target.Settings for the streaming suite): its configured
// timeouts, images and stream CA. The CLI fills it from flags for a real
// runtime, and from the reference runtime's options for the embedded one.
package critarget

import "time"

// Settings of a CRI streaming target.
type Settings struct {
	ImageEndpoint  string // CRI image service, when not the runtime endpoint
	TestImagesFile string // critest's --test-images-file format
	// The runtime's stream timeouts and token lifetime; zero means the
	// library defaults (30 s creation, 1 min token TTL; idle unknown).
	StreamCreationTimeout time.Duration
	StreamIdleTimeout     time.Duration
	TokenTTL              time.Duration
	// HeaderTimeout is the stream server's request-header read timeout, when
	// known; G5 allows a slowloris connection this long plus slack (or 2
	// minutes when unknown).
	HeaderTimeout time.Duration
	// StreamCA is PEM the stream server's certificate may chain to (G2).
	StreamCA []byte
	// ConnectTimeout bounds dialing the CRI endpoint (default 5 s).
	ConnectTimeout time.Duration
	// ExecBurst is how many execs the target takes at once where a check
	// only needs many of them (C18); 0 means one at a time (CRI-O's Exec
	// calls time out under a burst of conmons).
	ExecBurst int
}

// The AuthorizeStream deny contract (G6): a target declaring the
// authorize-stream feature denies, with 403 and the hook's error as body, an
// exec whose command line contains DenyMarker and a port-forward to DenyPort.
const (
	DenyMarker       = "gauntlet-deny"
	DenyPort   int32 = 7781
)
