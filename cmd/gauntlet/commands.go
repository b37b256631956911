package main

import "io"

// extraCommands are top-level subcommands a suite's file adds from init
// (e.g. a daemon serving a reference target for a real system to call).
// Each returns the process exit code.
var extraCommands = map[string]func(args []string, stdout, stderr io.Writer) int{}
