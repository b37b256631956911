// Package busybox is a deterministic, in-process stand-in for the busybox
// userland (ash `sh` plus a handful of applets) that the fake CRI runtime
// (fakes/cri) runs inside its "containers", so the fake needs no real
// processes, namespaces or sockets.
//
// The conformance suite sends the same command lines to real runtimes running
// Debian's busybox-static 1.35, so the supported subset aims to produce the
// same bytes, exit statuses and error messages as real busybox. Reference
// behaviour was taken by running /bin/busybox; busybox_test.go compares the
// two where a real busybox is installed.
//
// Model:
//
//   - A Machine is one container: a process table with PIDs from 1. Each
//     process is a goroutine plus a context; "signals" cancel that context.
//     Foreground children derive their context from their parent, so killing
//     a shell also kills what it is running; background jobs (`cmd &`) do
//     not, and outlive their parent like real orphans. As in a real PID
//     namespace, PID 1 ignores signals sent from inside the machine (kill,
//     tty ^C), and when PID 1 exits every other process is killed.
//   - File descriptors are reference counted open files (caller stdio,
//     in-memory pipes and connections, /dev/null, /dev/zero, /dev/urandom, a
//     tiny in-memory filesystem), so a pipe reader sees EOF once every
//     writer is gone, and a writer whose reader is gone gets SIGPIPE (141).
//   - A Netns is a pod network namespace of in-memory TCP-like listeners;
//     nc and httpd listen there and the fake runtime's port-forward dials.
//   - With Stdio.TTY set, the process's stdin/stdout/stderr is a terminal:
//     output gets onlcr (\n -> \r\n) and input goes through a small canonical
//     line discipline (echo, \r -> \n, erase, ^U, ^D = EOF, ^C/^\ = SIGINT/
//     SIGQUIT to the foreground processes). `stty` can switch echo, icanon,
//     isig, icrnl, opost/onlcr off and on (stty raw / sane).
//
// Every blocking operation waits on the process context, so KillAll and
// context cancellation stop everything; the only goroutine that can outlive a
// process is one blocked inside the caller's own Stdin.Read or Stdout.Write,
// which returns when the caller closes its stream.
package busybox
