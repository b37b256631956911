// Package findings reproduces upstream behaviour that needs a complete
// k8s.io/cri-streaming server. It is separate from package fuzz because
// go test -fuzz instruments every package linked into the test binary, and
// the server's dependencies (cri-api, grpc, go-restful) halve the fuzzers'
// execution rate.
package findings
