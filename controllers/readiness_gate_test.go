package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// otherCondition is a condition another writer keeps on the gated pods.
var otherCondition = corev1.PodCondition{
	Type: "example.com/other", Status: corev1.ConditionTrue, Reason: "Other", Message: "set by someone else",
	LastTransitionTime: metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
}

// makeGatedPod creates a pod labelled app=<app> that carries the readiness
// gate (when gated), with the status a kubelet gives it while the gate's
// condition is missing: containers ready, the pod not Ready; and
// otherCondition.
func makeGatedPod(t *testing.T, ns, app, name, ip string, gated bool) {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{
			NodeName:       "node-a",
			Containers:     []corev1.Container{{Name: "app", Image: "app:1"}},
			ReadinessGates: []corev1.PodReadinessGate{{ConditionType: v1alpha1.PodConditionBackendHealthy}},
		},
	}
	if !gated {
		pod.Spec.ReadinessGates = nil
	}
	if err := k8sClient.Create(ctx, pod); err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
	// The operator may write the pod's status first (a gated pod that no
	// intent checks yet): keep what it wrote.
	testenv.Eventually(t, 10*time.Second, func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
			return err
		}
		now := metav1.Now()
		pod.Status.Phase = corev1.PodRunning
		pod.Status.PodIP = ip
		pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		pod.Status.Conditions = append(pod.Status.Conditions,
			corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ReadinessGatesNotReady", LastTransitionTime: now},
			otherCondition,
		)
		return k8sClient.Status().Update(ctx, pod)
	})
}

// podGate checks the pod's backend-healthy condition (status "" for none)
// and that otherCondition is as it was set.
func podGate(ns, name string, status corev1.ConditionStatus, reason string) func() error {
	return func() error {
		pod := &corev1.Pod{}
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
			return err
		}
		var other *corev1.PodCondition
		for i, c := range pod.Status.Conditions {
			if c.Type == otherCondition.Type {
				other = &pod.Status.Conditions[i]
			}
		}
		if other == nil {
			return fmt.Errorf("pod %s: another writer's condition is gone", name)
		}
		if other.Status != otherCondition.Status || other.Reason != otherCondition.Reason ||
			other.Message != otherCondition.Message || !other.LastTransitionTime.Equal(&otherCondition.LastTransitionTime) {
			return fmt.Errorf("pod %s: another writer's condition changed: %+v", name, *other)
		}
		gate := currentGate(pod)
		switch {
		case status == "" && gate != nil:
			return fmt.Errorf("pod %s has condition %+v, want none", name, *gate)
		case status == "":
			return nil
		case gate == nil:
			return fmt.Errorf("pod %s has no condition %s", name, v1alpha1.PodConditionBackendHealthy)
		case gate.Status != status || gate.Reason != reason || gate.Message == "" || gate.LastTransitionTime.IsZero():
			return fmt.Errorf("pod %s has condition %+v, want %s %s with a message and a time", name, *gate, status, reason)
		}
		return nil
	}
}

// TestReadinessGateFollowsChecks backs gated pods, not Ready for want of
// the gate's condition, with test hosts: the operator probes them and sets
// the condition True, then False with the failure class when a host stops,
// and True when it starts again, leaving another writer's condition as it
// was. Until the kubelet (here the test) turns the pod Ready, its endpoint
// is published not ready, as Kubernetes publishes it. The pod of an intent
// without healthCheck.readinessGate gets no condition. A gated pod that no
// opted-in intent selects is released at once (True, NotChecked), and so
// is one held False when its intent drops the opt-in. Below the healthy
// floor the gate holds no pod.
func TestReadinessGateFollowsChecks(t *testing.T) {
	ctx := context.Background()
	tn := testnet.New(t, 3)
	ns := testEnv.Namespace(t)
	for i, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			t.Fatalf("starting test host %d: %v", i, err)
		}
	}
	intentOf := func(name string, gate bool) *v1alpha1.NetworkIntent {
		return testenv.Intent(ns, name).SelectApp(name).HTTPPort(testnet.HTTPPort).
			HTTPProbe(probePeriod, probeTimeout, unhealthyThreshold).MinHealthyPercent(50).ReadinessGate(gate).Build()
	}
	h0, h1, h2 := tn.Hosts[0], tn.Hosts[1], tn.Hosts[2]
	makeGatedPod(t, ns, "gated", "gated-0", h0.IP.String(), true)
	makeGatedPod(t, ns, "gated", "gated-1", h1.IP.String(), true)
	makeGatedPod(t, ns, "plain", "plain-0", h2.IP.String(), false)
	makeGatedPod(t, ns, "loose", "loose-0", "10.250.0.9", true)
	for _, in := range []*v1alpha1.NetworkIntent{intentOf("gated", true), intentOf("plain", false)} {
		if err := k8sClient.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
	}

	// First probe: True, on pods not Ready only for the gate.
	testenv.Eventually(t, 10*time.Second, podGate(ns, "gated-0", corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed))
	testenv.Eventually(t, 10*time.Second, podGate(ns, "gated-1", corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed))
	waitPublished(t, 10*time.Second, ns, "gated", func(eps map[string]endpointState) error {
		for _, h := range []*testnet.Host{h0, h1} {
			if ep, ok := eps[h.IP.String()]; !ok || ep.ready {
				return fmt.Errorf("%s of a pod not Ready: published %+v (present %v), want not ready", h.IP, ep, ok)
			}
		}
		return nil
	})
	// The kubelet sees every gate True and turns the pods Ready.
	kubeletReady(t, ns, "gated-0")
	kubeletReady(t, ns, "gated-1")
	bothReady := func(eps map[string]endpointState) error {
		if !eps[h0.IP.String()].ready || !eps[h1.IP.String()].ready {
			return fmt.Errorf("published %v, want both ready", eps)
		}
		return nil
	}
	waitPublished(t, 10*time.Second, ns, "gated", bothReady)

	// A host stops: False with the failure class, the other stays True.
	if err := h0.Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, notReadyDeadline, podGate(ns, "gated-0", corev1.ConditionFalse, health.FailureConnectionRefused))
	if err := podGate(ns, "gated-1", corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed)(); err != nil {
		t.Error(err)
	}
	// It starts again: True.
	if err := h0.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, notReadyDeadline, podGate(ns, "gated-0", corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed))
	waitPublished(t, 10*time.Second, ns, "gated", bothReady)

	// The intent without the opt-in probed its pod all along and wrote
	// nothing on it.
	waitPublished(t, 10*time.Second, ns, "plain", func(eps map[string]endpointState) error {
		if _, ok := eps[h2.IP.String()]; !ok {
			return fmt.Errorf("published %v, want %s", eps, h2.IP)
		}
		return nil
	})
	if err := podGate(ns, "plain-0", "", "")(); err != nil {
		t.Error(err)
	}

	testenv.Eventually(t, 10*time.Second, podGate(ns, "loose-0", corev1.ConditionTrue, v1alpha1.BackendHealthyNotChecked))
	if err := h1.Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, notReadyDeadline, podGate(ns, "gated-1", corev1.ConditionFalse, health.FailureConnectionRefused))
	// Both fail: below the 50% floor the gate holds no pod, as the slices
	// then publish every pod-ready endpoint.
	if err := h0.Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, notReadyDeadline, podGate(ns, "gated-0", corev1.ConditionTrue, v1alpha1.IntentReasonBelowHealthyFloor))
	testenv.Eventually(t, 10*time.Second, podGate(ns, "gated-1", corev1.ConditionTrue, v1alpha1.IntentReasonBelowHealthyFloor))
	// One returns: above the floor, the other is held again.
	if err := h0.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, notReadyDeadline, podGate(ns, "gated-0", corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed))
	testenv.Eventually(t, 10*time.Second, podGate(ns, "gated-1", corev1.ConditionFalse, health.FailureConnectionRefused))

	testenv.Eventually(t, 10*time.Second, func() error {
		in, err := getIntent(ctx, ns, "gated")
		if err != nil {
			return err
		}
		in.Spec.HealthCheck.ReadinessGate = false
		return k8sClient.Update(ctx, in)
	})
	testenv.Eventually(t, 10*time.Second, podGate(ns, "gated-1", corev1.ConditionTrue, v1alpha1.BackendHealthyNotChecked))
}

// kubeletReady turns the pod's Ready condition True, as the kubelet does
// once every readiness gate is True, leaving its other conditions.
func kubeletReady(t *testing.T, ns, name string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		pod := &corev1.Pod{}
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
			return err
		}
		for i, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady {
				pod.Status.Conditions[i] = corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}
			}
		}
		return k8sClient.Status().Update(context.Background(), pod)
	})
}
