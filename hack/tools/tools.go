//go:build tools

// Package tools keeps the packages of the CRI tools that build.sh builds in
// this module's go.mod and go.sum: crictl is a `tool` directive, and
// critest, a test binary (go test -c sigs.k8s.io/cri-tools/cmd/critest),
// needs the test-only dependencies imported here. This module is separate
// from gauntlet's main module on purpose: cri-tools is never a dependency of
// gauntlet itself.
package tools

import (
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
	_ "sigs.k8s.io/cri-tools/pkg/benchmark"
	_ "sigs.k8s.io/cri-tools/pkg/common"
	_ "sigs.k8s.io/cri-tools/pkg/framework"
	_ "sigs.k8s.io/cri-tools/pkg/validate"
	_ "sigs.k8s.io/cri-tools/pkg/version"
)
