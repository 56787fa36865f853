package controllers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
)

// TestGateCondition: what the backend-healthy condition becomes from the
// probe states of a pod's addresses, and when it is written.
func TestGateCondition(t *testing.T) {
	then := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	now := metav1.NewTime(then.Add(time.Hour))
	cond := func(status corev1.ConditionStatus, reason string) *corev1.PodCondition {
		return &corev1.PodCondition{Type: v1alpha1.PodConditionBackendHealthy, Status: status, Reason: reason, Message: "before", LastTransitionTime: then}
	}
	passed := health.TargetState{Healthy: true}
	failedOnce := health.TargetState{Healthy: true, Failure: health.FailureTimeout, LastError: "i/o timeout"}
	down := health.TargetState{Healthy: false, Failure: health.FailureConnectionRefused, LastError: "connect: connection refused"}
	http503 := health.TargetState{Healthy: false, Failure: "HTTPStatus 503", LastError: "HTTP status 503"}
	unclassified := health.TargetState{Healthy: false, LastError: "odd"}
	for _, tt := range []struct {
		name       string
		current    *corev1.PodCondition
		states     []health.TargetState
		belowFloor bool
		write      bool
		status     corev1.ConditionStatus
		reason     string
		transition metav1.Time
	}{
		{"new pod, probe passed", nil, []health.TargetState{passed}, false, true, corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed, now},
		{"new pod, healthy but the last probe failed", nil, []health.TargetState{failedOnce}, false, false, "", "", metav1.Time{}},
		{"new pod, unhealthy", nil, []health.TargetState{down}, false, true, corev1.ConditionFalse, health.FailureConnectionRefused, now},
		{"True stays while under the threshold", cond(corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed), []health.TargetState{failedOnce}, false, false, "", "", metav1.Time{}},
		{"True turns False", cond(corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed), []health.TargetState{down}, false, true, corev1.ConditionFalse, health.FailureConnectionRefused, now},
		{"reason without spaces", cond(corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed), []health.TargetState{http503}, false, true, corev1.ConditionFalse, "HTTPStatus503", now},
		{"a failure without a class", nil, []health.TargetState{unclassified}, false, true, corev1.ConditionFalse, gateReasonProbeFailed, now},
		{"same failure, nothing to write", cond(corev1.ConditionFalse, health.FailureConnectionRefused), []health.TargetState{down}, false, false, "", "", metav1.Time{}},
		{"another failure keeps the transition time", cond(corev1.ConditionFalse, health.FailureTimeout), []health.TargetState{down}, false, true, corev1.ConditionFalse, health.FailureConnectionRefused, then},
		{"False turns True", cond(corev1.ConditionFalse, health.FailureTimeout), []health.TargetState{passed}, false, true, corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed, now},
		{"NotChecked is no pass", cond(corev1.ConditionTrue, v1alpha1.BackendHealthyNotChecked), []health.TargetState{failedOnce}, false, false, "", "", metav1.Time{}},
		{"NotChecked turns ProbePassed", cond(corev1.ConditionTrue, v1alpha1.BackendHealthyNotChecked), []health.TargetState{passed}, false, true, corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed, then},
		{"one address of two down", nil, []health.TargetState{passed, down}, false, true, corev1.ConditionFalse, health.FailureConnectionRefused, now},
		{"one address of two unproven", nil, []health.TargetState{passed, failedOnce}, false, false, "", "", metav1.Time{}},
		{"below the floor, True stays True", cond(corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed), []health.TargetState{down}, true, true, corev1.ConditionTrue, v1alpha1.IntentReasonBelowHealthyFloor, then},
		{"below the floor, False turns True", cond(corev1.ConditionFalse, health.FailureConnectionRefused), []health.TargetState{down}, true, true, corev1.ConditionTrue, v1alpha1.IntentReasonBelowHealthyFloor, now},
		{"below the floor, a passing pod is ProbePassed", nil, []health.TargetState{passed}, true, true, corev1.ConditionTrue, v1alpha1.BackendHealthyProbePassed, now},
		{"back above the floor, False", cond(corev1.ConditionTrue, v1alpha1.IntentReasonBelowHealthyFloor), []health.TargetState{down}, false, true, corev1.ConditionFalse, health.FailureConnectionRefused, now},
		{"BelowHealthyFloor is no pass", cond(corev1.ConditionTrue, v1alpha1.IntentReasonBelowHealthyFloor), []health.TargetState{failedOnce}, false, false, "", "", metav1.Time{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, write := gateCondition(tt.current, tt.states, tt.belowFloor, now)
			if write != tt.write {
				t.Fatalf("write = %v, want %v (condition %+v)", write, tt.write, got)
			}
			if !write {
				return
			}
			if got.Type != v1alpha1.PodConditionBackendHealthy || got.Status != tt.status || got.Reason != tt.reason || got.Message == "" || !got.LastTransitionTime.Equal(&tt.transition) {
				t.Errorf("got %+v, want %s %s since %s with a message", got, tt.status, tt.reason, tt.transition)
			}
		})
	}
}
