package faults

// The meshauthz suite's catalogue: misbehaviours of the reference mesh
// (fakes/mesh). Every fault is armable (the fixtures are deployed and
// reachable first), grouped by the layer that injects it: "policy" (the
// policy engine's semantics), "proxy" (the per-workload mTLS proxy's data
// path), "control" (how changes propagate), "api" (the policy API).
const (
	layerMeshPolicy  Layer = "policy"
	layerMeshProxy   Layer = "proxy"
	layerMeshControl Layer = "control"
	layerMeshAPI     Layer = "api"
)

// Reference mesh faults.
const (
	MeshDefaultDeny          Fault = "mesh-default-deny"
	MeshAllowIgnored         Fault = "mesh-allow-ignored"
	MeshSelectorIgnored      Fault = "mesh-selector-ignored"
	MeshEmptySelectorNone    Fault = "mesh-empty-selector-matches-none"
	MeshNamespaceIgnored     Fault = "mesh-policy-namespace-ignored"
	MeshSANamespaceDefault   Fault = "mesh-sa-namespace-default-wrong"
	MeshWildcardAnyNamespace Fault = "mesh-wildcard-any-namespace"
	MeshIdentityNameOnly     Fault = "mesh-identity-name-only"
	MeshSPIFFENeverMatches   Fault = "mesh-spiffe-never-matches"
	MeshRulesANDed           Fault = "mesh-rules-anded"
	MeshRuleCriteriaORed     Fault = "mesh-rule-criteria-ored"
	MeshEmptySourcesMatchAll Fault = "mesh-empty-sources-match-all"
	MeshNoRulesAllowAll      Fault = "mesh-no-rules-allow-all"
	MeshServicePortMatching  Fault = "mesh-service-port-matching"
	MeshFirstAllowOnly       Fault = "mesh-first-allow-only"
	MeshDeleteIgnored        Fault = "mesh-delete-ignored"
	MeshEditFlaps            Fault = "mesh-edit-flaps"
	MeshLabelsCached         Fault = "mesh-labels-cached"
	MeshPlaintextAllowed     Fault = "mesh-plaintext-allowed"
	MeshDenyAfterForward     Fault = "mesh-deny-after-forward"
	MeshProbesEnforced       Fault = "mesh-probes-enforced"
	MeshTCPDenyData          Fault = "mesh-tcp-deny-data"
	MeshHTTPDenyReset        Fault = "mesh-http-deny-reset"
	MeshGRPCDenyUnavailable  Fault = "mesh-grpc-deny-unavailable"
	MeshStallOnPolicyChange  Fault = "mesh-stall-on-policy-change"
	MeshAllowBeatsDeny       Fault = "mesh-allow-beats-deny"
	MeshDenyIgnoredTCP       Fault = "mesh-deny-ignored-tcp"
	MeshAdminDenyOverridable Fault = "mesh-admin-deny-overridable"
	MeshAdminAllowFinal      Fault = "mesh-admin-allow-final"
	MeshNoValidation         Fault = "mesh-no-validation"
	MeshStatusMissing        Fault = "mesh-status-missing"
)

// Mesh is the meshauthz catalogue.
var Mesh = NewCatalogue("meshauthz",
	Info{MeshDefaultDeny, layerMeshPolicy, "denies every request to a workload no policy targets (a default-deny install with no baseline)"},
	Info{MeshAllowIgnored, layerMeshPolicy, "ALLOW policies do not restrict: requests no rule matches are still allowed"},
	Info{MeshSelectorIgnored, layerMeshPolicy, "a Pod targetRef's selector is ignored: the policy applies to every pod of its namespace"},
	Info{MeshEmptySelectorNone, layerMeshPolicy, "an empty Pod selector selects no pod instead of every pod of the namespace"},
	Info{MeshNamespaceIgnored, layerMeshPolicy, "namespace policies apply to matching pods of every namespace"},
	Info{MeshSANamespaceDefault, layerMeshPolicy, "a serviceAccount source without namespace means namespace \"default\" instead of the policy's"},
	Info{MeshWildcardAnyNamespace, layerMeshPolicy, "serviceAccount name \"*\" matches service accounts of every namespace"},
	Info{MeshIdentityNameOnly, layerMeshPolicy, "serviceAccount sources compare the name only, not the namespace"},
	Info{MeshSPIFFENeverMatches, layerMeshPolicy, "SPIFFE sources never match"},
	Info{MeshRulesANDed, layerMeshPolicy, "a request must match every rule of a policy (rules ANDed instead of ORed)"},
	Info{MeshRuleCriteriaORed, layerMeshPolicy, "a rule matches when its sources OR its ports match (criteria ORed instead of ANDed)"},
	Info{MeshEmptySourcesMatchAll, layerMeshPolicy, "sources: [] matches every source, like an omitted list"},
	Info{MeshNoRulesAllowAll, layerMeshPolicy, "an ALLOW policy without rules allows every request"},
	Info{MeshServicePortMatching, layerMeshProxy, "rule ports are compared with the Service port the client dialled, not the container port"},
	Info{MeshFirstAllowOnly, layerMeshPolicy, "only the oldest ALLOW policy of a workload counts (no union)"},
	Info{MeshDeleteIgnored, layerMeshControl, "deleted policies stay enforced"},
	Info{MeshEditFlaps, layerMeshControl, "after an edit, half the proxy replicas keep the old version: answers alternate"},
	Info{MeshLabelsCached, layerMeshControl, "proxies keep the labels a workload had when it was deployed"},
	Info{MeshPlaintextAllowed, layerMeshProxy, "clients without mesh identity (plaintext) are treated as matching every source"},
	Info{MeshDenyAfterForward, layerMeshProxy, "a denied HTTP request is forwarded to the application before the 403 is returned"},
	Info{MeshProbesEnforced, layerMeshProxy, "kubelet health probes go through policy enforcement (and have no identity)"},
	Info{MeshTCPDenyData, layerMeshProxy, "a denied TCP connection receives a line of data before it is closed"},
	Info{MeshHTTPDenyReset, layerMeshProxy, "denied HTTP requests get a connection reset instead of 403"},
	Info{MeshGRPCDenyUnavailable, layerMeshProxy, "denied gRPC calls see the connection closed (UNAVAILABLE) instead of PERMISSION_DENIED"},
	Info{MeshStallOnPolicyChange, layerMeshProxy, "a policy change stalls open connections: neither forwarded nor closed"},
	Info{MeshAllowBeatsDeny, layerMeshPolicy, "a matching ALLOW is evaluated before (and wins over) a matching DENY"},
	Info{MeshDenyIgnoredTCP, layerMeshPolicy, "DENY policies are enforced on HTTP and gRPC ports only, not on plain TCP"},
	Info{MeshAdminDenyOverridable, layerMeshPolicy, "a namespace ALLOW overrides a cluster-scope DENY"},
	Info{MeshAdminAllowFinal, layerMeshPolicy, "a cluster-scope ALLOW cannot be overridden by a namespace DENY"},
	Info{MeshNoValidation, layerMeshAPI, "the policy API accepts invalid policies"},
	Info{MeshStatusMissing, layerMeshAPI, "policies never get a status"},
)
