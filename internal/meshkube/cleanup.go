package meshkube

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// Namespaces lists the namespaces the driver created or adopted.
func (d *Driver) Namespaces() []string {
	d.nsMu.Lock()
	defer d.nsMu.Unlock()
	var out []string
	for n, st := range d.nsOK {
		if st.err == nil {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Cleanup implements Driver: every policy object the driver applied (some
// live outside its namespaces: Istio's root namespace, cluster-scoped
// kinds), then every namespace it created, waiting (CleanupWait, and ctx)
// until they are gone. It may be called again after a partial failure.
func (d *Driver) Cleanup(ctx context.Context) error {
	d.mu.Lock()
	var objs []objKey
	for k := range d.owned {
		objs = append(objs, k)
	}
	d.owned = map[objKey]map[mp.PolicyRef]bool{}
	d.byPolicy = map[mp.PolicyRef][]objKey{}
	d.objects = map[objKey]objInfo{}
	d.mu.Unlock()
	sort.Slice(objs, func(i, j int) bool { return objs[i].String() < objs[j].String() })
	var errs []error
	if err := d.deleteObjects(ctx, objs); err != nil {
		errs = append(errs, err)
	}
	nss := d.Namespaces()
	for _, ns := range nss {
		if d.o.FinalizeNamespaces {
			if err := d.deleteContents(ctx, ns); err != nil {
				errs = append(errs, err)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, perCall)
		err := d.cs.CoreV1().Namespaces().Delete(cctx, ns, metav1.DeleteOptions{})
		cancel()
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", ns, err))
		}
		if d.o.FinalizeNamespaces {
			if err := d.finalize(ctx, ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(nss) > 0 {
		err := await(ctx, "deleting namespaces "+strings.Join(nss, " "), d.o.CleanupWait, d.o.PollInterval,
			func(ctx context.Context) (bool, string, error) {
				var left []string
				for _, ns := range nss {
					_, err := d.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
					switch {
					case apierrors.IsNotFound(err):
					case err != nil:
						return false, "", err
					default:
						left = append(left, ns)
					}
				}
				if len(left) > 0 {
					return false, "still there: " + strings.Join(left, " "), nil
				}
				return true, "", nil
			})
		if err != nil {
			errs = append(errs, err)
		} else {
			d.nsMu.Lock()
			for _, ns := range nss {
				delete(d.nsOK, ns)
			}
			d.nsMu.Unlock()
		}
	}
	d.mu.Lock()
	d.clients = map[mp.Identity]podRef{}
	d.workloads = map[mp.WorkloadRef]mp.Workload{}
	d.mu.Unlock()
	return errors.Join(errs...)
}

// deleteContents deletes what the driver puts in a namespace, for API
// servers with no namespace controller (FinalizeNamespaces).
func (d *Driver) deleteContents(ctx context.Context, ns string) error {
	zero := int64(0)
	all := metav1.ListOptions{}
	do := func(what string, fn func(ctx context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, perCall)
		defer cancel()
		if err := fn(cctx); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s in %s: %w", what, ns, err)
		}
		return nil
	}
	return errors.Join(
		do("deployments", func(ctx context.Context) error {
			return d.cs.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, all)
		}),
		do("pods", func(ctx context.Context) error {
			return d.cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, all)
		}),
		do("services", func(ctx context.Context) error {
			l, err := d.cs.CoreV1().Services(ns).List(ctx, all)
			if err != nil {
				return err
			}
			for _, s := range l.Items {
				if err := d.cs.CoreV1().Services(ns).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					return err
				}
			}
			return nil
		}),
		do("service accounts", func(ctx context.Context) error {
			return d.cs.CoreV1().ServiceAccounts(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, all)
		}),
	)
}

// finalize removes the "kubernetes" finalizer of a terminating namespace
// (what the namespace controller does once the namespace is empty).
func (d *Driver) finalize(ctx context.Context, name string) error {
	for range 3 {
		cctx, cancel := context.WithTimeout(ctx, perCall)
		ns, err := d.cs.CoreV1().Namespaces().Get(cctx, name, metav1.GetOptions{})
		cancel()
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("finalize namespace %s: %w", name, err)
		}
		var keep []corev1.FinalizerName
		for _, f := range ns.Spec.Finalizers {
			if f != corev1.FinalizerKubernetes {
				keep = append(keep, f)
			}
		}
		ns.Spec.Finalizers = keep
		cctx, cancel = context.WithTimeout(ctx, perCall)
		_, err = d.cs.CoreV1().Namespaces().Finalize(cctx, ns, metav1.UpdateOptions{})
		cancel()
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("finalize namespace %s: %w", name, err)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("finalize namespace %s: conflicts", name)
}
