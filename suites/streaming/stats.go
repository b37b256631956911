package streaming

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Stats is a runtime's resource use, as far as the target exposes it.
type Stats struct {
	Goroutines  int   // embedded reference runtime (process-wide)
	LeakedBytes int   // embedded reference runtime's deliberate leaks
	FDs         int   // /proc/PID/fd of --runtime-pid
	Threads     int   // /proc/PID/status
	RSSKiB      int64 // /proc/PID/status VmRSS
}

// Stats samples the target's resource use (feature process-stats).
func (e *Env) Stats(ctx context.Context) (Stats, error) {
	if e.Fake != nil {
		// Goroutines of finished sessions take a moment to unwind.
		var s Stats
		for i := 0; i < 20; i++ {
			fs := e.Fake.Stats()
			s = Stats{Goroutines: fs.Goroutines, LeakedBytes: fs.LeakedBytes}
			if i > 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return s, nil
	}
	if e.Cfg.RuntimePID > 0 {
		return procStats(e.Cfg.RuntimePID)
	}
	return Stats{}, Skip(FeatureProcessStats, "the runtime's resource use is not observable: pass --runtime-pid")
}

func procStats(pid int) (Stats, error) {
	var s Stats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("--runtime-pid %d: %w", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			s.RSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "Threads:":
			s.Threads, _ = strconv.Atoi(f[1])
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, fmt.Errorf("--runtime-pid %d: %w", pid, err)
	}
	s.FDs = len(fds)
	return s, nil
}

// Grew fails when after shows growth beyond noise relative to s.
func (s Stats) Grew(after Stats) error {
	var bad []string
	if d := after.Goroutines - s.Goroutines; d > 25 {
		bad = append(bad, fmt.Sprintf("goroutines +%d", d))
	}
	if d := after.LeakedBytes - s.LeakedBytes; d > 0 {
		bad = append(bad, fmt.Sprintf("retained memory +%d bytes", d))
	}
	if d := after.FDs - s.FDs; d > 10 {
		bad = append(bad, fmt.Sprintf("open fds +%d", d))
	}
	if d := after.Threads - s.Threads; d > 10 {
		bad = append(bad, fmt.Sprintf("threads +%d", d))
	}
	if d := after.RSSKiB - s.RSSKiB; d > 64<<10 {
		bad = append(bad, fmt.Sprintf("RSS +%d KiB", d))
	}
	if len(bad) > 0 {
		return Failf("the runtime grew after 30 attach/detach cycles and 20 failing tty execs: %s", strings.Join(bad, ", "))
	}
	return nil
}
