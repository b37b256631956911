module github.com/gauntlet-conformance/gauntlet/hack/kind

go 1.26.8

require (
	sigs.k8s.io/kind v0.33.0
	sigs.k8s.io/yaml v1.4.0
)

require github.com/pkg/errors v0.9.1 // indirect
