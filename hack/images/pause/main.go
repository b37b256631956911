// Command pause is the sandbox ("pause") process of gauntlet's test images.
//
// It holds a pod's namespaces open: it sleeps until SIGTERM or SIGINT, and,
// as PID 1 of a shared PID namespace, reaps every child that is reparented
// to it. It is built statically (CGO_ENABLED=0) by internal/testimages when
// the image is built, so the image needs no registry and no prebuilt binary.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "pause: %v, exiting\n", sig)
		os.Exit(0)
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
