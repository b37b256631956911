package meshtranslate

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// CRDBundle is a variant of gauntlet's GEP-3779 CRDs.
type CRDBundle string

// Bundles. Core is GEP-3779 as written: ALLOW only, namespaced. Extended
// adds action DENY (feature Deny) and the cluster-scoped
// ClusterAuthorizationPolicy (feature ClusterScope). Both carry the GEP's
// validation as schema and CEL rules, so an API server with either
// installed rejects every invalid policy of MX29 itself (Core also rejects
// DENY: "action DENY on a core-only install").
const (
	CoreCRDs     CRDBundle = "core"
	ExtendedCRDs CRDBundle = "extended"
)

// Messages of the CEL rules (the tests match the API server's answers
// against them).
const (
	MsgSelectorNotPod = "selector may only be set when targeting Pods"
	MsgPodRefShape    = "a Pod targetRef has a selector and no name"
	MsgNamedRef       = "a targetRef of a kind other than Pod needs a name"
	MsgPodRefAlone    = "a Pod targetRef must be the only targetRef"
	MsgSPIFFE         = "spiffe source must be a SPIFFE ID: spiffe://<trust-domain>/<path>, path segments of letters, digits, '.', '-' and '_'"
	MsgSAName         = `serviceAccount name must be a service account name or "*"`
	MsgSAOnly         = "a ServiceAccount source sets serviceAccount and not spiffe"
	MsgSPIFFEOnly     = "a SPIFFE source sets spiffe and not serviceAccount"
	MsgClusterSANS    = "a cluster policy's serviceAccount source needs a namespace"
)

// GEPCRDs returns the CustomResourceDefinitions of a bundle, rendered to
// hack/meshapi/crds/gep3779-<bundle>.yaml by the golden test (go test
// ./internal/meshtranslate -update): the YAML there is generated, this is
// the source.
func GEPCRDs(b CRDBundle) []*unstructured.Unstructured {
	actions := []any{"ALLOW"}
	if b == ExtendedCRDs {
		actions = append(actions, "DENY")
	}
	out := []*unstructured.Unstructured{gepCRD(GEPKind, "authorizationpolicies", "Namespaced", actions, b)}
	if b == ExtendedCRDs {
		out = append(out, gepCRD(GEPClusterKind, "clusterauthorizationpolicies", "Cluster", actions, b))
	}
	return out
}

type obj = map[string]any

func str(extra obj) obj {
	o := obj{"type": "string"}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

func rule(cel, msg string) obj { return obj{"rule": cel, "message": msg} }

const (
	dnsSubdomain = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	dnsLabel     = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// celDNSSubdomain is dnsSubdomain for CEL string literals, where `\.`
	// would be an invalid escape.
	celDNSSubdomain = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	isPod           = `self.kind == 'Pod' && (self.group == '' || self.group == 'core')`
)

func gepCRD(kind, plural, scope string, actions []any, b CRDBundle) *unstructured.Unstructured {
	cluster := scope == "Cluster"
	saRequired := []any{"name"}
	var saRules []any
	saRules = append(saRules, rule(`self.name == '*' || self.name.matches('`+celDNSSubdomain+`')`, MsgSAName))
	if cluster {
		saRules = append(saRules, rule(`has(self.namespace)`, MsgClusterSANS))
	}
	selectorDoc := "Selects pods of the policy's namespace; {} selects every pod of it."
	if cluster {
		selectorDoc = "Selects pods of every namespace; {} selects every pod of the cluster."
	}
	targetRef := obj{
		"type":        "object",
		"description": "GEP-3779 PolicyTargetReferenceWithLabelSelectors: a Pod selector (then the only targetRef), or a named object of another kind.",
		"required":    []any{"group", "kind"},
		"properties": obj{
			"group":    str(obj{"maxLength": int64(253), "pattern": `^$|` + dnsSubdomain[1:]}),
			"kind":     str(obj{"minLength": int64(1), "maxLength": int64(63), "pattern": `^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`}),
			"name":     str(obj{"minLength": int64(1), "maxLength": int64(253)}),
			"selector": labelSelectorSchema(selectorDoc),
		},
		"x-kubernetes-validations": []any{
			rule(`!has(self.selector) || (`+isPod+`)`, MsgSelectorNotPod),
			rule(`!(`+isPod+`) || (has(self.selector) && !has(self.name))`, MsgPodRefShape),
			rule(`(`+isPod+`) || has(self.name)`, MsgNamedRef),
		},
	}
	source := obj{
		"type":     "object",
		"required": []any{"type"},
		"properties": obj{
			"type": str(obj{"enum": []any{"ServiceAccount", "SPIFFE"}}),
			"serviceAccount": obj{
				"type":     "object",
				"required": saRequired,
				"properties": obj{
					"namespace": str(obj{"description": "Empty: the policy's namespace.", "minLength": int64(1), "maxLength": int64(63), "pattern": dnsLabel}),
					"name":      str(obj{"description": `A service account name, or "*" for every service account of the namespace.`, "minLength": int64(1), "maxLength": int64(253)}),
				},
				"x-kubernetes-validations": saRules,
			},
			"spiffe": str(obj{
				"maxLength": int64(2048),
				"x-kubernetes-validations": []any{
					rule(`self.matches('^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)+$')`, MsgSPIFFE),
				},
			}),
		},
		"x-kubernetes-validations": []any{
			rule(`self.type != 'ServiceAccount' || (has(self.serviceAccount) && !has(self.spiffe))`, MsgSAOnly),
			rule(`self.type != 'SPIFFE' || (has(self.spiffe) && !has(self.serviceAccount))`, MsgSPIFFEOnly),
		},
	}
	spec := obj{
		"type":     "object",
		"required": []any{"targetRefs", "action", "enforcementLevel"},
		"properties": obj{
			"targetRefs": obj{
				"type": "array", "minItems": int64(1), "maxItems": int64(16), "items": targetRef,
				"x-kubernetes-validations": []any{
					rule(`!self.exists(t, t.kind == 'Pod' && (t.group == '' || t.group == 'core')) || self.size() == 1`, MsgPodRefAlone),
				},
			},
			"action": str(obj{"enum": actions, "description": actionDoc(b)}),
			"enforcementLevel": str(obj{"enum": []any{"Network"},
				"description": "Required, no default (GEP-3779 wants it explicit). Network: L4, identity and destination port."}),
			"rules": obj{
				"type": "array", "maxItems": int64(16),
				"description": "ORed. A policy without rules matches nothing (an ALLOW policy then denies every request to its targets).",
				"items": obj{
					"type":        "object",
					"description": "Sources AND networkAttributes.",
					"properties": obj{
						"sources": obj{
							"type": "array", "maxItems": int64(16), "items": source,
							"description": "ORed. Omitted: any source. Empty list: no source.",
						},
						"networkAttributes": obj{
							"type": "object",
							"properties": obj{
								"ports": obj{
									"type": "array", "maxItems": int64(16),
									"description": "Destination (container) ports; omitted: every port.",
									"items":       obj{"type": "integer", "format": "int32", "minimum": int64(1), "maximum": int64(65535)},
								},
							},
						},
					},
				},
			},
		},
	}
	schema := obj{
		"type":     "object",
		"required": []any{"spec"},
		"properties": obj{
			"apiVersion": str(nil),
			"kind":       str(nil),
			"metadata":   obj{"type": "object"},
			"spec":       spec,
			"status":     policyStatusSchema(),
		},
	}
	return &unstructured.Unstructured{Object: obj{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata": obj{
			"name": plural + "." + GEPGroup,
			"labels": obj{
				ManagedByLabel:             "gauntlet",
				GEPGroup + "/bundle":       string(b),
				GEPGroup + "/gep":          "3779",
				GEPGroup + "/generated-by": "internal-meshtranslate",
			},
		},
		"spec": obj{
			"group": GEPGroup,
			"scope": scope,
			"names": obj{"kind": kind, "listKind": kind + "List", "plural": plural, "singular": lower(kind), "categories": []any{"gauntlet", "gep3779"}},
			"versions": []any{obj{
				"name": GEPVersion, "served": true, "storage": true,
				"subresources": obj{"status": obj{}},
				"schema":       obj{"openAPIV3Schema": schema},
				"additionalPrinterColumns": []any{
					obj{"name": "Action", "type": "string", "jsonPath": ".spec.action"},
					obj{"name": "Level", "type": "string", "jsonPath": ".spec.enforcementLevel"},
					obj{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
				},
			}},
		},
	}}
}

func actionDoc(b CRDBundle) string {
	if b == ExtendedCRDs {
		return "ALLOW, or DENY (an extension of GEP-3779: DENY beats ALLOW)."
	}
	return "GEP-3779 core: ALLOW only (this is the core-only bundle)."
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func labelSelectorSchema(doc string) obj {
	return obj{
		"type":        "object",
		"description": doc,
		"properties": obj{
			"matchLabels": obj{"type": "object", "additionalProperties": str(obj{"maxLength": int64(63)}), "maxProperties": int64(64)},
			"matchExpressions": obj{
				"type": "array", "maxItems": int64(16),
				"items": obj{
					"type": "object", "required": []any{"key", "operator"},
					"properties": obj{
						"key":      str(obj{"minLength": int64(1), "maxLength": int64(317)}),
						"operator": str(obj{"enum": []any{"In", "NotIn", "Exists", "DoesNotExist"}}),
						"values":   obj{"type": "array", "maxItems": int64(64), "items": str(obj{"maxLength": int64(63)})},
					},
				},
			},
		},
		"x-kubernetes-map-type": "atomic",
	}
}

// policyStatusSchema is Gateway API's PolicyStatus (GEP-713): one entry
// per ancestor and controller, each with Accepted-style conditions. For a
// Pod-selector policy the ancestor is implementation-defined, so
// ancestorRef is optional here.
func policyStatusSchema() obj {
	condition := obj{
		"type":     "object",
		"required": []any{"type", "status", "lastTransitionTime", "reason", "message"},
		"properties": obj{
			"type":               str(obj{"maxLength": int64(316), "pattern": `^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$`}),
			"status":             str(obj{"enum": []any{"True", "False", "Unknown"}}),
			"observedGeneration": obj{"type": "integer", "format": "int64", "minimum": int64(0)},
			"lastTransitionTime": str(obj{"format": "date-time"}),
			"reason":             str(obj{"minLength": int64(1), "maxLength": int64(1024), "pattern": `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`}),
			"message":            str(obj{"maxLength": int64(32768)}),
		},
	}
	return obj{
		"type": "object",
		"properties": obj{
			"ancestors": obj{
				"type": "array", "maxItems": int64(16),
				"items": obj{
					"type":     "object",
					"required": []any{"controllerName", "conditions"},
					"properties": obj{
						"ancestorRef": obj{
							"type": "object", "required": []any{"name"},
							"properties": obj{
								"group": str(obj{"maxLength": int64(253)}), "kind": str(obj{"maxLength": int64(63)}),
								"name": str(obj{"minLength": int64(1), "maxLength": int64(253)}), "namespace": str(obj{"maxLength": int64(63)}),
								"sectionName": str(obj{"maxLength": int64(253)}),
							},
						},
						"controllerName": str(obj{"minLength": int64(1), "maxLength": int64(253),
							"description": "The implementation writing this entry, a domain-prefixed path (example.com/mesh)."}),
						"conditions": obj{
							"type": "array", "minItems": int64(1), "maxItems": int64(8), "items": condition,
							"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": []any{"type"},
							"description": "Accepted (True: the implementation enforces the policy) and implementation-specific ones.",
						},
					},
				},
			},
		},
	}
}
