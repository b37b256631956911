// The consumer wire formats live in a module of their own, with no
// requirements, so that the kubelet wrapper (hack/credprovider-kubelet) can
// import them without the gauntlet module's requirements raising the
// versions its k8s.io/kubernetes v1.37.2 dependency graph pins
// (golang.org/x/sync's singleflight among them). The gauntlet module and the
// wrapper both require it through a replace directive to this directory.
module github.com/gauntlet-conformance/gauntlet/internal/credwire

go 1.26.8
