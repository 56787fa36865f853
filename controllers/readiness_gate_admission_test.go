package controllers

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/manifests"
	"github.com/netintent/netintent/internal/testenv"
)

// TestAdmissionPolicyAddsReadinessGate installs config/admission's
// readiness-gate policy, its parameter pointed at a stand-in for the
// operator's Deployment, and creates pods: in a labelled namespace they get
// the gate (once, next to the pod's own gates) while the Deployment has an
// available replica, and none when it has none; in a namespace without the
// label, none.
func TestAdmissionPolicyAddsReadinessGate(t *testing.T) {
	ctx := context.Background()
	operatorNS := testEnv.Namespace(t)
	labelled := testEnv.Namespace(t)
	plain := testEnv.Namespace(t)
	ns := &corev1.Namespace{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: labelled}, ns); err != nil {
		t.Fatal(err)
	}
	ns.Labels[v1alpha1.LabelReadinessGate] = v1alpha1.ReadinessGateEnabled
	if err := k8sClient.Update(ctx, ns); err != nil {
		t.Fatal(err)
	}
	operator := standInOperator(t, operatorNS, 1)

	objs, err := manifests.Read(filepath.Join("..", manifests.ReadinessGatePolicy))
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		obj.SetName(obj.GetName() + "-" + labelled)
		if obj.GetKind() == "MutatingAdmissionPolicyBinding" {
			policy, _, _ := unstructured.NestedString(obj.Object, "spec", "policyName")
			_ = unstructured.SetNestedField(obj.Object, policy+"-"+labelled, "spec", "policyName")
			_ = unstructured.SetNestedField(obj.Object, operatorNS, "spec", "paramRef", "namespace")
		}
	}
	if err := manifests.Create(ctx, k8sClient, objs...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, obj := range objs {
			_ = k8sClient.Delete(ctx, obj)
		}
	})

	gate := corev1.PodReadinessGate{ConditionType: v1alpha1.PodConditionBackendHealthy}
	own := corev1.PodReadinessGate{ConditionType: "example.com/own"}
	dryRun := func(namespace string, gates ...corev1.PodReadinessGate) ([]corev1.PodReadinessGate, error) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "probe"},
			Spec: corev1.PodSpec{
				Containers:     []corev1.Container{{Name: "app", Image: "app:1"}},
				ReadinessGates: gates,
			},
		}
		if err := k8sClient.Create(ctx, pod, client.DryRunAll); err != nil {
			return nil, err
		}
		return pod.Spec.ReadinessGates, nil
	}
	// The API server takes up a new policy a moment later.
	testenv.Eventually(t, time.Minute, func() error {
		got, err := dryRun(labelled)
		if err != nil {
			return err
		}
		if !slices.Equal(got, []corev1.PodReadinessGate{gate}) {
			return fmt.Errorf("a pod created in a labelled namespace has readiness gates %v", got)
		}
		return nil
	})
	for _, tt := range []struct {
		namespace   string
		given, want []corev1.PodReadinessGate
	}{
		{labelled, []corev1.PodReadinessGate{own}, []corev1.PodReadinessGate{own, gate}},
		{labelled, []corev1.PodReadinessGate{gate}, []corev1.PodReadinessGate{gate}},
		{labelled, []corev1.PodReadinessGate{own, gate}, []corev1.PodReadinessGate{own, gate}},
		{plain, nil, nil},
		{plain, []corev1.PodReadinessGate{own}, []corev1.PodReadinessGate{own}},
	} {
		got, err := dryRun(tt.namespace, tt.given...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("in %s, created with gates %v: came back with %v, want %v", tt.namespace, tt.given, got, tt.want)
		}
	}

	// gatesBecome waits until a pod created in the labelled namespace gets
	// n readiness gates.
	gatesBecome := func(n int, when string) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, func() error {
			got, err := dryRun(labelled)
			if err != nil {
				return err
			}
			if len(got) != n {
				return fmt.Errorf("%s, a new pod has readiness gates %v", when, got)
			}
			return nil
		})
	}
	setAvailable := func(n int32) {
		t.Helper()
		operator.Status.AvailableReplicas = n
		if err := k8sClient.Status().Update(ctx, operator); err != nil {
			t.Fatal(err)
		}
	}
	// No replica of the operator available: no gate, so that no new pod
	// waits for a condition nobody sets.
	setAvailable(0)
	gatesBecome(0, "with no operator replica available")
	// A replica available again: the gate again; then no Deployment at
	// all: none.
	setAvailable(1)
	gatesBecome(1, "with an operator replica available again")
	if err := k8sClient.Delete(ctx, operator); err != nil {
		t.Fatal(err)
	}
	gatesBecome(0, "without the operator's Deployment")
}

// standInOperator creates a Deployment named as the operator's, with
// available replicas in its status (no controller here updates it).
func standInOperator(t *testing.T, ns string, available int32) *appsv1.Deployment {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app.kubernetes.io/name": "netintent"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "netintent-controller-manager"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "netintent:latest"}}},
			},
		},
	}
	if err := k8sClient.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	d.Status.Replicas = available
	d.Status.ReadyReplicas = available
	d.Status.AvailableReplicas = available
	if err := k8sClient.Status().Update(ctx, d); err != nil {
		t.Fatal(err)
	}
	return d
}
