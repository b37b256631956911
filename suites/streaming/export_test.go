package streaming

import "context"

// Internals the external tests need.

var (
	SlowlorisBound     = &slowlorisBound
	HostileEnvDuration = hostileEnvDuration
)

// HostileCase is one sub-case of G3 or G4 as a check of its own, so a test
// can prove each sub-case on a fresh runtime.
type HostileCase struct {
	Name  string
	Check Check
}

// HostileCases returns G3's and G4's sub-cases, each as a one-case check.
func HostileCases() []HostileCase {
	var out []HostileCase
	g3, _ := Lookup("G3")
	for _, c := range g3Cases {
		ch := g3
		ch.Run = func(ctx context.Context, e *Env) error { return runSPDYFrameCases(ctx, e, "G3", []spdyFrameCase{c}) }
		out = append(out, HostileCase{"G3/" + caseSlug(c.name), ch})
	}
	g4, _ := Lookup("G4")
	for _, c := range g4Cases {
		ch := g4
		ch.Run = func(ctx context.Context, e *Env) error {
			before := hostileBaseline(ctx, e)
			if _, err := sendGiantControl(ctx, e, c.frame, c.mustClose); err != nil {
				return err
			}
			if err := healthy(ctx, e); err != nil {
				return err
			}
			return hostileGrowth(ctx, e, "G4", before)
		}
		out = append(out, HostileCase{"G4/" + caseSlug(c.name), ch})
	}
	return out
}
