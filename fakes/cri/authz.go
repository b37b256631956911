package cri

import (
	"fmt"
	"github.com/gauntlet-conformance/gauntlet/internal/critarget"
	"net/http"
	"slices"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Policy is a small deny-list for the AuthorizeStream hook. The suite's G6
// check relies on the contract of DefaultPolicy: an exec whose command line
// contains DenyMarker, and a port-forward to DenyPort, are denied.
type Policy struct {
	DenyCommandSubstrings []string
	DenyContainerIDs      []string
	DenyPorts             []int32
}

// DenyMarker and DenyPort are the deny contract of targets declaring
// authorize-stream (critarget), which the default policy implements.
const (
	DenyMarker       = critarget.DenyMarker
	DenyPort   int32 = critarget.DenyPort
)

// DefaultPolicy denies DenyMarker commands and DenyPort.
func DefaultPolicy() Policy {
	return Policy{DenyCommandSubstrings: []string{DenyMarker}, DenyPorts: []int32{DenyPort}}
}

// ParsePolicy reads "cmd=SUBSTR,container=ID,port=N" rules.
func ParsePolicy(s string) (Policy, error) {
	var p Policy
	for _, rule := range strings.Split(s, ",") {
		rule = strings.TrimSpace(rule)
		if rule == "" {
			continue
		}
		k, v, ok := strings.Cut(rule, "=")
		if !ok || v == "" {
			return p, fmt.Errorf("policy rule %q: want cmd=SUBSTRING, container=ID or port=N", rule)
		}
		switch k {
		case "cmd":
			p.DenyCommandSubstrings = append(p.DenyCommandSubstrings, v)
		case "container":
			p.DenyContainerIDs = append(p.DenyContainerIDs, v)
		case "port":
			n, err := parsePort(v)
			if err != nil {
				return p, fmt.Errorf("policy rule %q: %w", rule, err)
			}
			p.DenyPorts = append(p.DenyPorts, n)
		default:
			return p, fmt.Errorf("policy rule %q: unknown key %q (cmd, container, port)", rule, k)
		}
	}
	return p, nil
}

// Hook turns the policy into an AuthorizeStream hook.
func (p Policy) Hook() AuthorizeFunc {
	return func(_ *http.Request, streamRequest any) error {
		switch req := streamRequest.(type) {
		case *runtimeapi.ExecRequest:
			if slices.Contains(p.DenyContainerIDs, req.ContainerId) {
				return fmt.Errorf("AuthorizeStream: exec into container %s denied by policy", req.ContainerId)
			}
			cmd := strings.Join(req.Cmd, " ")
			for _, sub := range p.DenyCommandSubstrings {
				if strings.Contains(cmd, sub) {
					return fmt.Errorf("AuthorizeStream: exec of %q denied by policy", cmd)
				}
			}
		case *runtimeapi.AttachRequest:
			if slices.Contains(p.DenyContainerIDs, req.ContainerId) {
				return fmt.Errorf("AuthorizeStream: attach to container %s denied by policy", req.ContainerId)
			}
		case *runtimeapi.PortForwardRequest:
			for _, port := range req.Port {
				if slices.Contains(p.DenyPorts, port) {
					return fmt.Errorf("AuthorizeStream: port-forward to port %d denied by policy", port)
				}
			}
		}
		return nil
	}
}
