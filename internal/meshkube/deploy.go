package meshkube

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/gauntlet-conformance/gauntlet/internal/meshecho"
	mp "github.com/gauntlet-conformance/gauntlet/internal/meshpolicy"
)

// Labels and annotations the driver sets.
const (
	// CreatedByLabel (=gauntlet) is on everything the driver creates;
	// DriverLabel (=meshkube) marks its namespaces, which Cleanup deletes
	// and a later run may adopt (a leftover of an interrupted run).
	CreatedByLabel = "app.kubernetes.io/created-by"
	DriverLabel    = "gauntlet.dev/driver"
	// WorkloadLabel selects a workload's pods (Deployment and Services);
	// Relabel keeps it.
	WorkloadLabel = "gauntlet.dev/workload"
	// ClientLabel names the identity of a client pod.
	ClientLabel = "gauntlet.dev/client"

	istioInjectLabel     = "istio-injection"
	istioSidecarInject   = "sidecar.istio.io/inject"
	linkerdInjectAnnot   = "linkerd.io/inject"
	echoContainer        = "echo"
	clientContainer      = "client"
	recordsVolume        = "records"
	outsideMeshNamespace = "outside-mesh"
	headlessSuffix       = "-pods"
)

// ensureNamespace creates an in-mesh (or, for the outside-mesh client,
// opted-out) namespace once, or adopts one an earlier gauntlet run left.
// It refuses a namespace someone else made: Cleanup would delete it.
func (d *Driver) ensureNamespace(ctx context.Context, name string, inMesh bool) error {
	d.nsMu.Lock()
	st := d.nsOK[name]
	if st == nil {
		st = &nsState{}
		d.nsOK[name] = st
	}
	d.nsMu.Unlock()
	st.once.Do(func() { st.err = d.createNamespace(ctx, name, inMesh) })
	return st.err
}

func (d *Driver) namespaceObject(name string, inMesh bool) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels:      map[string]string{CreatedByLabel: "gauntlet", DriverLabel: "meshkube"},
		Annotations: map[string]string{}}}
	if inMesh {
		if len(d.o.NamespaceLabels) == 0 {
			ns.Labels[istioInjectLabel] = "enabled"
		}
		maps.Copy(ns.Labels, d.o.NamespaceLabels)
		ns.Annotations[linkerdInjectAnnot] = "enabled"
	} else {
		ns.Labels[istioInjectLabel] = "disabled"
		ns.Annotations[linkerdInjectAnnot] = "disabled"
	}
	return ns
}

func (d *Driver) createNamespace(ctx context.Context, name string, inMesh bool) error {
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, perCall)
		_, err := d.cs.CoreV1().Namespaces().Create(cctx, d.namespaceObject(name, inMesh), metav1.CreateOptions{})
		cancel()
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
		cctx, cancel = context.WithTimeout(ctx, perCall)
		ns, err := d.cs.CoreV1().Namespaces().Get(cctx, name, metav1.GetOptions{})
		cancel()
		if apierrors.IsNotFound(err) && attempt < 3 {
			continue // deleted in between
		}
		if err != nil {
			return fmt.Errorf("namespace %s: %w", name, err)
		}
		if ns.Labels[CreatedByLabel] != "gauntlet" || ns.Labels[DriverLabel] != "meshkube" {
			return fmt.Errorf("namespace %s already exists and was not created by gauntlet (no %s=gauntlet, %s=meshkube labels): choose another --mesh-namespace-prefix", name, CreatedByLabel, DriverLabel)
		}
		if ns.DeletionTimestamp == nil {
			return nil // a leftover of an earlier run: adopted (Cleanup deletes it)
		}
		// An earlier run's namespace still terminating: wait for it.
		err = await(ctx, "namespace "+name+" (terminating, from an earlier run)", d.o.CleanupWait, d.o.PollInterval,
			func(ctx context.Context) (bool, string, error) {
				_, err := d.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return true, "", nil
				}
				return false, "still terminating", err
			})
		if err != nil {
			return err
		}
	}
}

func (d *Driver) apply(ctx context.Context, what string, fn func(ctx context.Context, o metav1.ApplyOptions) error) error {
	cctx, cancel := context.WithTimeout(ctx, perCall)
	defer cancel()
	if err := fn(cctx, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
		return fmt.Errorf("apply %s: %w", what, err)
	}
	return nil
}

func (d *Driver) applyServiceAccount(ctx context.Context, ns, name string) error {
	return d.apply(ctx, "service account "+ns+"/"+name, func(ctx context.Context, o metav1.ApplyOptions) error {
		_, err := d.cs.CoreV1().ServiceAccounts(ns).Apply(ctx,
			corev1ac.ServiceAccount(name, ns).WithLabels(map[string]string{CreatedByLabel: "gauntlet"}), o)
		return err
	})
}

func appProtocol(p mp.Protocol) string {
	switch p {
	case mp.GRPC:
		return "grpc"
	case mp.TCP:
		return "tcp"
	}
	return "http"
}

// workloadPorts fills in the standard ports when a workload names none.
func workloadPorts(w mp.Workload) []mp.Port {
	if len(w.Ports) == 0 {
		return mp.StandardPorts()
	}
	return w.Ports
}

func portOf(ports []mp.Port, p mp.Protocol) int {
	for _, x := range ports {
		if x.Protocol == p {
			return x.Port
		}
	}
	return mp.PortFor(p)
}

// podLabels are a workload's pod labels: its own plus WorkloadLabel.
func podLabels(name string, l map[string]string) map[string]string {
	out := map[string]string{CreatedByLabel: "gauntlet"}
	maps.Copy(out, l)
	out[WorkloadLabel] = name
	return out
}

// deployment is the echo workload's Deployment.
func (d *Driver) deployment(w mp.Workload) *appsv1ac.DeploymentApplyConfiguration {
	ports := workloadPorts(w)
	var cports []*corev1ac.ContainerPortApplyConfiguration
	for _, p := range ports {
		cports = append(cports, corev1ac.ContainerPort().WithName(p.Name).WithContainerPort(int32(p.Port)).WithProtocol(corev1.ProtocolTCP))
	}
	httpPort := portOf(ports, mp.HTTP)
	c := corev1ac.Container().WithName(echoContainer).WithImage(d.o.EchoImage).WithImagePullPolicy(corev1.PullIfNotPresent).
		WithCommand(EchoBinary).
		WithArgs("mesh-echo", "serve", "--name", w.Namespace+"/"+w.Name, "--dir", meshecho.DefaultDir,
			fmt.Sprintf("--http=:%d", httpPort), fmt.Sprintf("--tcp=:%d", portOf(ports, mp.TCP)), fmt.Sprintf("--grpc=:%d", portOf(ports, mp.GRPC))).
		WithPorts(cports...).
		// The kubelet's probe is what Probe observes (MA21): every second.
		WithReadinessProbe(corev1ac.Probe().WithPeriodSeconds(1).WithFailureThreshold(3).
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/healthz").WithPort(intstr.FromInt32(int32(httpPort))))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(recordsVolume).WithMountPath(meshecho.DefaultDir)).
		WithSecurityContext(restricted())
	sel := map[string]string{WorkloadLabel: w.Name}
	return appsv1ac.Deployment(w.Name, w.Namespace).WithLabels(map[string]string{CreatedByLabel: "gauntlet", WorkloadLabel: w.Name}).
		WithSpec(appsv1ac.DeploymentSpec().WithReplicas(1).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(sel)).
			WithTemplate(corev1ac.PodTemplateSpec().WithLabels(podLabels(w.Name, w.Labels)).
				WithSpec(corev1ac.PodSpec().WithServiceAccountName(w.ServiceAccount).WithTerminationGracePeriodSeconds(2).
					WithVolumes(corev1ac.Volume().WithName(recordsVolume).WithEmptyDir(corev1ac.EmptyDirVolumeSource())).
					WithContainers(c))))
}

// restricted is the echo and client containers' security context (Pod
// Security "restricted"); injected sidecars bring their own.
func restricted() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().WithRunAsNonRoot(true).WithRunAsUser(65532).
		WithAllowPrivilegeEscalation(false).WithReadOnlyRootFilesystem(true).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

// services are the workload's Service (Service ports -> container ports)
// and its headless twin on the container ports, which requests to a
// container port dial.
func services(w mp.Workload) []*corev1ac.ServiceApplyConfiguration {
	sel := map[string]string{WorkloadLabel: w.Name}
	lbl := map[string]string{CreatedByLabel: "gauntlet", WorkloadLabel: w.Name}
	svc := corev1ac.ServiceSpec().WithSelector(sel)
	head := corev1ac.ServiceSpec().WithSelector(sel).WithClusterIP(corev1.ClusterIPNone).WithPublishNotReadyAddresses(true)
	for _, p := range workloadPorts(w) {
		if p.ServicePort != 0 {
			svc.WithPorts(corev1ac.ServicePort().WithName(p.Name).WithPort(int32(p.ServicePort)).
				WithTargetPort(intstr.FromInt32(int32(p.Port))).WithProtocol(corev1.ProtocolTCP).WithAppProtocol(appProtocol(p.Protocol)))
		}
		head.WithPorts(corev1ac.ServicePort().WithName(p.Name).WithPort(int32(p.Port)).
			WithTargetPort(intstr.FromInt32(int32(p.Port))).WithProtocol(corev1.ProtocolTCP).WithAppProtocol(appProtocol(p.Protocol)))
	}
	return []*corev1ac.ServiceApplyConfiguration{
		corev1ac.Service(w.Name, w.Namespace).WithLabels(lbl).WithSpec(svc),
		corev1ac.Service(w.Name+headlessSuffix, w.Namespace).WithLabels(lbl).WithSpec(head),
	}
}

// Deploy implements Driver.
func (d *Driver) Deploy(ctx context.Context, w mp.Workload) error {
	if w.Namespace == "" || w.Name == "" || w.ServiceAccount == "" {
		return fmt.Errorf("workload %+v: namespace, name and service account are required", w)
	}
	if err := d.ensureNamespace(ctx, w.Namespace, true); err != nil {
		return err
	}
	if err := d.applyServiceAccount(ctx, w.Namespace, w.ServiceAccount); err != nil {
		return err
	}
	err := d.apply(ctx, "deployment "+w.Namespace+"/"+w.Name, func(ctx context.Context, o metav1.ApplyOptions) error {
		_, err := d.cs.AppsV1().Deployments(w.Namespace).Apply(ctx, d.deployment(w), o)
		return err
	})
	if err != nil {
		return err
	}
	for _, s := range services(w) {
		err := d.apply(ctx, "service "+w.Namespace+"/"+*s.Name, func(ctx context.Context, o metav1.ApplyOptions) error {
			_, err := d.cs.CoreV1().Services(w.Namespace).Apply(ctx, s, o)
			return err
		})
		if err != nil {
			return err
		}
	}
	w.Ports = workloadPorts(w)
	w.Labels = maps.Clone(w.Labels)
	d.mu.Lock()
	d.workloads[w.Ref()] = w
	d.mu.Unlock()
	return await(ctx, "workload "+w.Ref().String(), d.o.ReadyBound, d.o.PollInterval, d.deploymentAvailable(w.Namespace, w.Name))
}

func (d *Driver) deploymentAvailable(ns, name string) observe {
	return func(ctx context.Context) (bool, string, error) {
		dep, err := d.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		st := dep.Status
		if st.ObservedGeneration >= dep.Generation && st.UpdatedReplicas >= 1 && st.AvailableReplicas >= 1 {
			return true, "", nil
		}
		why := fmt.Sprintf("deployment %d/1 available, %d updated (observed generation %d of %d)", st.AvailableReplicas, st.UpdatedReplicas, st.ObservedGeneration, dep.Generation)
		return false, why + "; " + d.podsWhy(ctx, ns, labels.SelectorFromSet(labels.Set{WorkloadLabel: name}).String(), true), nil
	}
}

// podsWhy explains why the pods a selector picks are not ready, for the
// error a convergence timeout gives.
func (d *Driver) podsWhy(ctx context.Context, ns, selector string, viaController bool) string {
	pods, err := d.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return "pods: " + err.Error()
	}
	if len(pods.Items) == 0 {
		if viaController {
			return "no pod was created (is kube-controller-manager running?)"
		}
		return "the pod does not exist"
	}
	var out []string
	for _, p := range pods.Items {
		out = append(out, fmt.Sprintf("pod %s: %s", p.Name, podWhy(&p, d.o.EchoImage)))
	}
	return strings.Join(out, "; ")
}

func podWhy(p *corev1.Pod, image string) string {
	if p.Spec.NodeName == "" {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				return fmt.Sprintf("not scheduled (%s: %s)", c.Reason, oneLine(c.Message))
			}
		}
		return "not scheduled (no node assigned: is a scheduler running, is there a node?)"
	}
	for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
			hint := ""
			if strings.Contains(w.Reason, "Image") {
				hint = fmt.Sprintf(" (load the echo image %s into the cluster, or name one with --mesh-echo-image)", image)
			}
			return fmt.Sprintf("container %s %s: %s%s", cs.Name, w.Reason, oneLine(w.Message), hint)
		}
		if t := cs.State.Terminated; t != nil {
			return fmt.Sprintf("container %s terminated (%s, exit %d): %s", cs.Name, t.Reason, t.ExitCode, oneLine(t.Message))
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
			return fmt.Sprintf("phase %s, not ready (%s %s)", p.Status.Phase, c.Reason, oneLine(c.Message))
		}
	}
	return "phase " + string(p.Status.Phase)
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// clientPodName names an identity's client pod.
func clientPodName(sa string) string {
	n := "client-" + strings.Trim(notDNS.ReplaceAllString(strings.ToLower(sa), "-"), "-")
	if len(n) > 63 {
		n = n[:63]
	}
	return strings.TrimRight(n, "-")
}

// DeployClient implements Driver.
func (d *Driver) DeployClient(ctx context.Context, id mp.Identity) error {
	ns, sa, inMesh := id.Namespace, id.ServiceAccount, true
	if id.None() {
		ns, sa, inMesh = d.o.NamespacePrefix+outsideMeshNamespace, "no-identity", false
	}
	if ns == "" || sa == "" {
		return fmt.Errorf("identity %q: namespace and service account are required", id)
	}
	if err := d.ensureNamespace(ctx, ns, inMesh); err != nil {
		return err
	}
	if err := d.applyServiceAccount(ctx, ns, sa); err != nil {
		return err
	}
	name := clientPodName(sa)
	pod := corev1ac.Pod(name, ns).WithLabels(map[string]string{CreatedByLabel: "gauntlet", ClientLabel: name}).
		WithSpec(corev1ac.PodSpec().WithServiceAccountName(sa).WithTerminationGracePeriodSeconds(1).
			WithContainers(corev1ac.Container().WithName(clientContainer).WithImage(d.o.EchoImage).
				WithImagePullPolicy(corev1.PullIfNotPresent).WithCommand(EchoBinary).WithArgs("mesh-echo", "idle").
				WithSecurityContext(restricted())))
	if !inMesh {
		// Outside the mesh: no sidecar, whatever the namespace says.
		pod.WithLabels(map[string]string{istioSidecarInject: "false"}).
			WithAnnotations(map[string]string{istioSidecarInject: "false", linkerdInjectAnnot: "disabled"})
	}
	err := d.apply(ctx, "client pod "+ns+"/"+name, func(ctx context.Context, o metav1.ApplyOptions) error {
		_, err := d.cs.CoreV1().Pods(ns).Apply(ctx, pod, o)
		return err
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.clients[id] = podRef{Namespace: ns, Name: name}
	d.mu.Unlock()
	return await(ctx, "client "+id.String(), d.o.ReadyBound, d.o.PollInterval, d.podReady(ns, name))
}

func (d *Driver) podReady(ns, name string) observe {
	return func(ctx context.Context) (bool, string, error) {
		p, err := d.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		if p.DeletionTimestamp == nil && isReady(p) {
			return true, "", nil
		}
		return false, "pod " + name + ": " + podWhy(p, d.o.EchoImage), nil
	}
}

func isReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// serverPods are the running pods of a workload (usually one; during a
// restart the old and the new one).
func (d *Driver) serverPods(ctx context.Context, ref mp.WorkloadRef) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, perCall)
	defer cancel()
	pods, err := d.cs.CoreV1().Pods(ref.Namespace).List(cctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{WorkloadLabel: ref.Name}).String()})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s: %w", ref, err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("workload %s has no running pod", ref)
	}
	return out, nil
}

// Relabel implements Driver: it patches the running pods' labels (what a
// mesh selects on), keeping WorkloadLabel so the Deployment keeps them. The
// pod template is left alone: a restart would roll the pods out.
func (d *Driver) Relabel(ctx context.Context, ref mp.WorkloadRef, l map[string]string) error {
	d.mu.Lock()
	w, ok := d.workloads[ref]
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("no workload %s", ref)
	}
	pods, err := d.serverPods(ctx, ref)
	if err != nil {
		return err
	}
	want := podLabels(ref.Name, l)
	for _, name := range pods {
		cctx, cancel := context.WithTimeout(ctx, perCall)
		p, err := d.cs.CoreV1().Pods(ref.Namespace).Get(cctx, name, metav1.GetOptions{})
		cancel()
		if err != nil {
			return fmt.Errorf("relabel %s: %w", ref, err)
		}
		patch := map[string]any{}
		for k := range p.Labels {
			if _, keep := want[k]; !keep && k != "pod-template-hash" && !strings.Contains(k, "istio.io") && !strings.Contains(k, "linkerd.io") {
				patch[k] = nil
			}
		}
		for k, v := range want {
			patch[k] = v
		}
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": patch}})
		cctx, cancel = context.WithTimeout(ctx, perCall)
		_, err = d.cs.CoreV1().Pods(ref.Namespace).Patch(cctx, name, types.MergePatchType, b, metav1.PatchOptions{FieldManager: FieldManager})
		cancel()
		if err != nil {
			return fmt.Errorf("relabel %s (pod %s): %w", ref, name, err)
		}
	}
	w.Labels = maps.Clone(l)
	d.mu.Lock()
	d.workloads[ref] = w
	d.mu.Unlock()
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
