package streaming

import (
	"context"
	"fmt"
	"strings"

	"github.com/gauntlet-conformance/gauntlet/conformance"
)

// Stats samples the target's resource use (feature process-stats).
func (e *Env) Stats(ctx context.Context) (conformance.Usage, error) {
	if e.Target.Process == nil {
		return conformance.Usage{}, Skip(FeatureProcessStats, "the runtime's resource use is not observable: pass --runtime-pid")
	}
	return e.Target.Process.Sample(ctx)
}

// grew fails when after shows growth beyond noise relative to before.
func grew(before, after conformance.Usage) error {
	var bad []string
	if d := after.Goroutines - before.Goroutines; d > 25 {
		bad = append(bad, fmt.Sprintf("goroutines +%d", d))
	}
	if d := after.LeakedBytes - before.LeakedBytes; d > 0 {
		bad = append(bad, fmt.Sprintf("retained memory +%d bytes", d))
	}
	if d := after.FDs - before.FDs; d > 10 {
		bad = append(bad, fmt.Sprintf("open fds +%d", d))
	}
	if d := after.Threads - before.Threads; d > 10 {
		bad = append(bad, fmt.Sprintf("threads +%d", d))
	}
	if d := after.RSSKiB - before.RSSKiB; d > 64<<10 {
		bad = append(bad, fmt.Sprintf("RSS +%d KiB", d))
	}
	if len(bad) > 0 {
		return Failf("the runtime grew after 30 attach/detach cycles and 20 failing tty execs: %s", strings.Join(bad, ", "))
	}
	return nil
}
