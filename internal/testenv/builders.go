package testenv

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
)

// IntentBuilder builds a NetworkIntent: a ClusterIP intent with nothing
// else until its methods add it.
type IntentBuilder struct{ in *v1alpha1.NetworkIntent }

// Intent starts an intent ns/name.
func Intent(ns, name string) *IntentBuilder {
	return &IntentBuilder{in: &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.NetworkIntentSpec{Exposure: v1alpha1.ExposureClusterIP},
	}}
}

// Exposure sets how the intent is exposed.
func (b *IntentBuilder) Exposure(e v1alpha1.Exposure) *IntentBuilder {
	b.in.Spec.Exposure = e
	return b
}

// SelectApp selects the pods labelled app=<app>.
func (b *IntentBuilder) SelectApp(app string) *IntentBuilder {
	b.in.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
	return b
}

// Port adds a port; target is its target port, none when nil.
func (b *IntentBuilder) Port(name string, port int32, target *intstr.IntOrString) *IntentBuilder {
	b.in.Spec.Ports = append(b.in.Spec.Ports, v1alpha1.IntentPort{Name: name, Port: port, TargetPort: target})
	return b
}

// HTTPPort adds the port "http", 80, to target port target.
func (b *IntentBuilder) HTTPPort(target int32) *IntentBuilder {
	return b.Port("http", 80, ptr.To(intstr.FromInt32(target)))
}

// Backends adds static backends.
func (b *IntentBuilder) Backends(addrs ...netip.Addr) *IntentBuilder {
	for _, a := range addrs {
		b.in.Spec.Backends = append(b.in.Spec.Backends, v1alpha1.Backend{Address: a.String()})
	}
	return b
}

// HTTPProbe probes the backends at GET /healthz every period, each probe
// given timeout, unhealthy after unhealthy failures in a row.
func (b *IntentBuilder) HTTPProbe(period, timeout time.Duration, unhealthy int32) *IntentBuilder {
	b.in.Spec.HealthCheck = &v1alpha1.HealthCheck{
		ProbeHandler:       v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{Path: "/healthz"}},
		Period:             &metav1.Duration{Duration: period},
		Timeout:            &metav1.Duration{Duration: timeout},
		UnhealthyThreshold: ptr.To(unhealthy),
	}
	return b
}

// ProbePort probes port rather than the target port (after HTTPProbe).
func (b *IntentBuilder) ProbePort(port int32) *IntentBuilder {
	b.in.Spec.HealthCheck.HTTP.Port = ptr.To(port)
	return b
}

// HealthyThreshold sets how many passed probes in a row bring a backend
// back (after HTTPProbe).
func (b *IntentBuilder) HealthyThreshold(n int32) *IntentBuilder {
	b.in.Spec.HealthCheck.HealthyThreshold = ptr.To(n)
	return b
}

// MinHealthyPercent sets the share of backends below which all stay in
// traffic (after HTTPProbe).
func (b *IntentBuilder) MinHealthyPercent(n int32) *IntentBuilder {
	b.in.Spec.HealthCheck.MinHealthyPercent = ptr.To(n)
	return b
}

// ReadinessGate sets whether the probes gate the pods' readiness (after
// HTTPProbe).
func (b *IntentBuilder) ReadinessGate(gate bool) *IntentBuilder {
	b.in.Spec.HealthCheck.ReadinessGate = gate
	return b
}

// IPFamilyPolicy sets which families the Service has.
func (b *IntentBuilder) IPFamilyPolicy(p corev1.IPFamilyPolicy) *IntentBuilder {
	b.in.Spec.IPFamilyPolicy = &p
	return b
}

// With lets a test set what the builder has no method for.
func (b *IntentBuilder) With(edit func(*v1alpha1.NetworkIntent)) *IntentBuilder {
	edit(b.in)
	return b
}

// Build returns the intent.
func (b *IntentBuilder) Build() *v1alpha1.NetworkIntent { return b.in }

// ProbedIntent is the intent the probing tests share: ClusterIP, port
// "http" 80 to target, over backends (or pods when none), probed over HTTP
// at /healthz.
func ProbedIntent(ns, name string, target int32, backends []netip.Addr, period, timeout time.Duration, unhealthy int32) *v1alpha1.NetworkIntent {
	b := Intent(ns, name).HTTPPort(target).HTTPProbe(period, timeout, unhealthy)
	if len(backends) == 0 {
		b.SelectApp(name)
	}
	return b.Backends(backends...).Build()
}

// PodBuilder builds a pod and the status a kubelet would write for it.
type PodBuilder struct {
	pod *corev1.Pod
}

// Pod starts a pod ns/name with one container, "app".
func Pod(ns, name string) *PodBuilder {
	return &PodBuilder{pod: &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}}
}

// App labels the pod app=<app>.
func (b *PodBuilder) App(app string) *PodBuilder {
	if b.pod.Labels == nil {
		b.pod.Labels = map[string]string{}
	}
	b.pod.Labels["app"] = app
	return b
}

// Node places the pod on a node.
func (b *PodBuilder) Node(node string) *PodBuilder {
	b.pod.Spec.NodeName = node
	return b
}

// ContainerPort names a port of the container.
func (b *PodBuilder) ContainerPort(name string, port int32) *PodBuilder {
	c := &b.pod.Spec.Containers[0]
	c.Ports = append(c.Ports, corev1.ContainerPort{Name: name, ContainerPort: port})
	return b
}

// Running gives the pod addresses, Running, and its Ready condition.
func (b *PodBuilder) Running(ready bool, ips ...string) *PodBuilder {
	b.pod.Status.Phase = corev1.PodRunning
	b.pod.Status.PodIPs = nil
	for _, ip := range ips {
		b.pod.Status.PodIPs = append(b.pod.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	if len(ips) > 0 {
		b.pod.Status.PodIP = ips[0]
	}
	SetPodReady(b.pod, ready)
	return b
}

// With lets a test set what the builder has no method for.
func (b *PodBuilder) With(edit func(*corev1.Pod)) *PodBuilder {
	edit(b.pod)
	return b
}

// Build returns the pod.
func (b *PodBuilder) Build() *corev1.Pod { return b.pod }

// Create creates the pod and then writes its status through the status
// subresource, as a kubelet would.
func (b *PodBuilder) Create(ctx context.Context, c client.Client) (*corev1.Pod, error) {
	pod := b.pod.DeepCopy()
	status := pod.Status
	if err := c.Create(ctx, pod); err != nil {
		return nil, err
	}
	pod.Status = status
	if err := c.Status().Update(ctx, pod); err != nil {
		return nil, err
	}
	return pod, nil
}

// CreateT is Create, failing the test on an error.
func (b *PodBuilder) CreateT(t testing.TB, c client.Client) *corev1.Pod {
	t.Helper()
	pod, err := b.Create(context.Background(), c)
	if err != nil {
		t.Fatalf("creating pod %s: %v", b.pod.Name, err)
	}
	return pod
}

// SetPodReady sets the pod's Ready condition, as a kubelet would.
func SetPodReady(pod *corev1.Pod, ready bool) {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
}

// Pool is an AddressPool of addresses (CIDRs, ranges or single
// addresses) for the namespaces sel selects (every namespace when nil).
func Pool(name string, sel *metav1.LabelSelector, addresses ...string) *v1alpha1.AddressPool {
	return &v1alpha1.AddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.AddressPoolSpec{Addresses: addresses, NamespaceSelector: sel},
	}
}

// CreateT creates obj and deletes it when the test ends.
func CreateT(t testing.TB, c client.Client, obj client.Object) {
	t.Helper()
	ctx := context.Background()
	if err := c.Create(ctx, obj); err != nil {
		t.Fatalf("creating %s: %v", obj.GetName(), err)
	}
	t.Cleanup(func() {
		if err := c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting %s: %v", obj.GetName(), err)
		}
	})
}
