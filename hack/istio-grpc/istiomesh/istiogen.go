package istiomesh

import (
	"fmt"
	"net"
	"strconv"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"istio.io/api/label"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/grpcgen"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/host"
	"istio.io/istio/pkg/config/protocol"
)

// istioListener asks Istio's own proxyless gRPC generator
// (grpcgen.GrpcConfigGenerator.BuildListeners, what istiod serves a
// proxyless pod) for a workload's inbound listener: a minimal Proxy (an
// injected pod: label security.istio.io/tlsMode=istio, one gRPC service
// port whose target port is the listening port) and a PushContext holding
// the authorization policies and no PeerAuthentication (mesh default
// PERMISSIVE, which grpcgen makes STRICT for injected pods).
func istioListener(addr, namespace, name string, labels map[string]string, aps *model.AuthorizationPolicies) (*listener.Listener, error) {
	ip, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, err
	}
	l := map[string]string{label.SecurityTlsMode.Name: "istio"}
	for k, v := range labels {
		l[k] = v
	}
	push := model.NewPushContext()
	push.AuthzPolicies = aps
	svc := &model.Service{
		Hostname:   host.Name(fmt.Sprintf("%s.%s.svc.cluster.local", name, namespace)),
		Attributes: model.ServiceAttributes{Name: name, Namespace: namespace},
		Ports:      model.PortList{{Name: "grpc", Port: 70, Protocol: protocol.GRPC}},
	}
	node := &model.Proxy{
		Type:            model.SidecarProxy,
		IPAddresses:     []string{ip},
		ID:              name + "." + namespace,
		ConfigNamespace: namespace,
		Labels:          l,
		Metadata:        &model.NodeMetadata{Namespace: namespace, Labels: l, Generator: "grpc"},
		ServiceTargets: []model.ServiceTarget{{Service: svc,
			Port: model.ServiceInstancePort{ServicePort: svc.Ports[0], TargetPort: uint32(port)}}},
		SidecarScope: &model.SidecarScope{AuthnPolicies: noPeerAuthn{root: aps.RootNamespace}},
	}
	node.DiscoverIPMode()
	res := (&grpcgen.GrpcConfigGenerator{}).BuildListeners(node, push, []string{listenerName(addr)})
	if len(res) != 1 {
		return nil, fmt.Errorf("istio's grpc generator built %d listeners for %s, want 1", len(res), listenerName(addr))
	}
	out := &listener.Listener{}
	if err := res[0].GetResource().UnmarshalTo(out); err != nil {
		return nil, err
	}
	return out, nil
}

// noPeerAuthn is a mesh without PeerAuthentication policies.
type noPeerAuthn struct{ root string }

func (noPeerAuthn) GetPeerAuthenticationsForWorkload(model.WorkloadPolicyMatcher) []*config.Config {
	return nil
}
func (noPeerAuthn) GetNamespaceMutualTLSMode(string) model.MutualTLSMode { return model.MTLSUnknown }
func (noPeerAuthn) GetPeerAuthentications() map[string][]config.Config   { return nil }
func (noPeerAuthn) GetGlobalMutualTLSMode() model.MutualTLSMode          { return model.MTLSUnknown }
func (n noPeerAuthn) GetRootNamespace() string                           { return n.root }
func (noPeerAuthn) GetVersion() string                                   { return "" }
