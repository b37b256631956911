package conformance

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcWatcher samples a local process's resource use from /proc (a real
// runtime daemon named by --runtime-pid).
type ProcWatcher struct{ PID int }

// Sample implements ProcessWatcher.
func (p ProcWatcher) Sample(ctx context.Context) (Usage, error) {
	var u Usage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
	if err != nil {
		return u, fmt.Errorf("process %d: %w", p.PID, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			u.RSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "Threads:":
			u.Threads, _ = strconv.Atoi(f[1])
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.PID))
	if err != nil {
		return u, fmt.Errorf("process %d: %w", p.PID, err)
	}
	u.FDs = len(fds)
	return u, nil
}
