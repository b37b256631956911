package meshkube

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
	"github.com/gauntlet-conformance/gauntlet/internal/meshtranslate"
)

// objKey names one API object.
type objKey struct {
	GVR             schema.GroupVersionResource
	Namespace, Name string
}

func (k objKey) String() string {
	if k.Namespace == "" {
		return k.GVR.Resource + "/" + k.Name
	}
	return k.GVR.Resource + " " + k.Namespace + "/" + k.Name
}

// objInfo is what the driver remembers of an applied object.
type objInfo struct{ Kind string }

func (d *Driver) resource(k objKey) dynamic.ResourceInterface {
	if k.Namespace == "" {
		return d.dyn.Resource(k.GVR)
	}
	return d.dyn.Resource(k.GVR).Namespace(k.Namespace)
}

func (d *Driver) keyOf(o *unstructured.Unstructured) (objKey, error) {
	gvk := o.GroupVersionKind()
	m, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return objKey{}, fmt.Errorf("the cluster does not serve %s (%s): %w", gvk.Kind, gvk.GroupVersion(), err)
	}
	return objKey{GVR: m.Resource, Namespace: o.GetNamespace(), Name: o.GetName()}, nil
}

func (d *Driver) translate(p mp.Policy) ([]*unstructured.Unstructured, error) {
	d.mu.Lock()
	ws := make([]mp.Workload, 0, len(d.workloads))
	for _, w := range d.workloads {
		ws = append(ws, w)
	}
	d.mu.Unlock()
	sort.Slice(ws, func(i, j int) bool { return ws[i].Ref().String() < ws[j].Ref().String() })
	return meshtranslate.Translate(p, d.flavor, meshtranslate.Options{TrustDomain: d.o.TrustDomain,
		RootNamespace: d.o.RootNamespace, Workloads: ws})
}

// Apply implements Driver. The translation's objects are server-side
// applied in order; the first the server refuses ends it, and objects this
// Apply created before it are deleted again, so a rejected policy leaves
// nothing behind. A translation that no longer contains an object an
// earlier Apply of this policy made deletes that object (unless another
// policy's translation still holds it: Linkerd Servers are shared).
func (d *Driver) Apply(ctx context.Context, p mp.Policy) error {
	objs, err := d.translate(p)
	if err != nil {
		if u, ok := meshtranslate.IsUnsupported(err); ok {
			return fmt.Errorf("the %s API cannot express this policy (%s): %w", d.flavor, u.What, err)
		}
		return err
	}
	ref := p.Ref()
	keys := make([]objKey, len(objs))
	for i, o := range objs {
		if keys[i], err = d.keyOf(o); err != nil {
			return err
		}
	}
	d.mu.Lock()
	known := map[objKey]bool{}
	for k := range d.owned {
		known[k] = true
	}
	d.mu.Unlock()
	var created []objKey
	for i, o := range objs {
		k := keys[i]
		cctx, cancel := context.WithTimeout(ctx, perCall)
		_, err := d.resource(k).Apply(cctx, k.Name, o, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
		cancel()
		if err != nil {
			d.deleteObjects(ctx, created)
			if rej, ok := rejection(err); ok {
				rej.Reason = fmt.Sprintf("%s %s: %s", o.GetKind(), k, rej.Reason)
				return rej
			}
			return fmt.Errorf("apply %s: %w", k, err)
		}
		if !known[k] {
			created = append(created, k)
		}
	}
	d.mu.Lock()
	old := d.byPolicy[ref]
	d.byPolicy[ref] = keys
	for i, k := range keys {
		if d.owned[k] == nil {
			d.owned[k] = map[mp.PolicyRef]bool{}
		}
		d.owned[k][ref] = true
		d.objects[k] = objInfo{Kind: objs[i].GetKind()}
	}
	stale := d.release(ref, old, keys)
	d.mu.Unlock()
	return d.deleteObjects(ctx, stale)
}

// release drops ref's ownership of the objects in old that are not in
// keep and returns those no policy owns any more. d.mu held.
func (d *Driver) release(ref mp.PolicyRef, old, keep []objKey) []objKey {
	kept := map[objKey]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	var gone []objKey
	for _, k := range old {
		if kept[k] {
			continue
		}
		delete(d.owned[k], ref)
		if len(d.owned[k]) == 0 {
			delete(d.owned, k)
			delete(d.objects, k)
			gone = append(gone, k)
		}
	}
	return gone
}

// deleteObjects deletes objects (absent ones are fine), last first.
func (d *Driver) deleteObjects(ctx context.Context, keys []objKey) error {
	var errs []error
	for i := len(keys) - 1; i >= 0; i-- {
		k := keys[i]
		cctx, cancel := context.WithTimeout(ctx, perCall)
		err := d.resource(k).Delete(cctx, k.Name, metav1.DeleteOptions{})
		cancel()
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// Delete implements Driver.
func (d *Driver) Delete(ctx context.Context, ref mp.PolicyRef) error {
	d.mu.Lock()
	old, ok := d.byPolicy[ref]
	delete(d.byPolicy, ref)
	gone := d.release(ref, old, nil)
	d.mu.Unlock()
	if !ok {
		return nil
	}
	return d.deleteObjects(ctx, gone)
}

// Status implements Driver: the Accepted condition of the policy's primary
// object (its AuthorizationPolicy-like kind), found in status.conditions or
// in status.ancestors[]/parents[].conditions (Gateway API policy status).
// All Accepted conditions must be True; none means not Reported (Linkerd
// writes no status).
func (d *Driver) Status(ctx context.Context, ref mp.PolicyRef) (mp.PolicyStatus, error) {
	d.mu.Lock()
	keys := d.byPolicy[ref]
	var primary objKey
	found := false
	for _, k := range keys {
		if strings.HasSuffix(d.objects[k].Kind, "AuthorizationPolicy") {
			primary, found = k, true
		}
	}
	if !found && len(keys) > 0 {
		primary, found = keys[len(keys)-1], true
	}
	d.mu.Unlock()
	if !found {
		return mp.PolicyStatus{}, fmt.Errorf("policy %s/%s was not applied by this driver", ref.Namespace, ref.Name)
	}
	cctx, cancel := context.WithTimeout(ctx, perCall)
	defer cancel()
	o, err := d.resource(primary).Get(cctx, primary.Name, metav1.GetOptions{})
	if err != nil {
		return mp.PolicyStatus{}, fmt.Errorf("get %s: %w", primary, err)
	}
	return statusOf(o), nil
}

// statusOf reads the Accepted conditions of an object.
func statusOf(o *unstructured.Unstructured) mp.PolicyStatus {
	var conds []map[string]any
	collect := func(l []any) {
		for _, c := range l {
			if m, ok := c.(map[string]any); ok {
				conds = append(conds, m)
			}
		}
	}
	if l, ok, _ := unstructured.NestedSlice(o.Object, "status", "conditions"); ok {
		collect(l)
	}
	for _, field := range []string{"ancestors", "parents"} {
		l, _, _ := unstructured.NestedSlice(o.Object, "status", field)
		for _, a := range l {
			if m, ok := a.(map[string]any); ok {
				if cl, ok, _ := unstructured.NestedSlice(m, "conditions"); ok {
					collect(cl)
				}
			}
		}
	}
	var st mp.PolicyStatus
	for _, c := range conds {
		if c["type"] != "Accepted" {
			continue
		}
		reason, _ := c["reason"].(string)
		msg, _ := c["message"].(string)
		accepted := c["status"] == "True"
		if !st.Reported || (st.Accepted && !accepted) {
			st = mp.PolicyStatus{Reported: true, Accepted: accepted, Reason: reason, Message: msg}
		}
	}
	return st
}

// rejection maps the API server refusing an object to a RejectedError:
// schema or CEL validation (422 Invalid), a request the server cannot
// accept as written (400 BadRequest, e.g. strict field validation), and
// admission denials (a webhook's, whatever its code, or a
// ValidatingAdmissionPolicy's). Anything else — RBAC's Forbidden, a
// missing CRD, a timeout — is the driver's or the cluster's failure.
func rejection(err error) (*mp.RejectedError, bool) {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return nil, false
	}
	st := se.Status()
	msg := oneLine(st.Message)
	switch {
	case st.Code == http.StatusUnprocessableEntity || st.Reason == metav1.StatusReasonInvalid:
	case st.Code == http.StatusBadRequest && st.Reason == metav1.StatusReasonBadRequest:
	case strings.Contains(msg, "admission webhook") && strings.Contains(msg, "denied the request"):
	case strings.Contains(msg, "ValidatingAdmissionPolicy"):
	default:
		return nil, false
	}
	if msg == "" {
		msg = err.Error()
	}
	return &mp.RejectedError{Reason: msg}, true
}
