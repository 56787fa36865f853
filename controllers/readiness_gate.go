package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/endpoints"
	"github.com/netintent/netintent/internal/health"
)

// Reasons of the pod condition v1alpha1.PodConditionBackendHealthy besides
// the failure classes of the active checks.
const (
	// gateReasonProbePassed: the intent's active check passes on the pod.
	gateReasonProbePassed = "ProbePassed"
	// gateReasonProbeFailed stands for a failure without a class.
	gateReasonProbeFailed = "ProbeFailed"
	// gateReasonNotChecked: no intent with healthCheck.readinessGate
	// selects the gated pod, so nothing holds it.
	gateReasonNotChecked = "NotChecked"
)

// +kubebuilder:rbac:groups="",resources=pods/status,verbs=patch

// writeReadinessGates sets each pod's backend-healthy condition from the
// probe states of its addresses, writing only the pods whose condition
// changes.
func (r *IntentReconciler) writeReadinessGates(ctx context.Context, pods []corev1.Pod, cands []endpoints.Candidate, states map[string]health.TargetState) error {
	byPod := map[string][]health.TargetState{}
	unprobed := map[string]bool{}
	for _, c := range cands {
		if c.Pod == "" || c.Terminating {
			continue
		}
		st, ok := states[c.Address.String()]
		if !ok || st.LastProbe.IsZero() {
			unprobed[c.Pod] = true
			continue
		}
		byPod[c.Pod] = append(byPod[c.Pod], st)
	}
	now := metav1.NewTime(time.Now())
	for i := range pods {
		pod := &pods[i]
		sts := byPod[pod.Name]
		if unprobed[pod.Name] || len(sts) == 0 {
			continue
		}
		cond, write := gateCondition(currentGate(pod), sts, now)
		if !write {
			continue
		}
		if err := applyGate(ctx, r.Client, pod, cond); err != nil {
			return err
		}
	}
	return nil
}

// gateCondition is the backend-healthy condition a pod should carry given
// the probe states of its addresses (each probed at least once), and
// whether that differs from current (nil: none) so that it must be written.
// The pod is healthy when every address is. A pod whose condition is not
// True yet turns True only on a passing last probe, not on a target that is
// healthy for want of failures; a True one turns False only when the
// thresholds say unhealthy. The message follows the status and reason: a
// failure's error text alone changing writes nothing.
func gateCondition(current *corev1.PodCondition, states []health.TargetState, now metav1.Time) (corev1.PodCondition, bool) {
	wasTrue := current != nil && current.Status == corev1.ConditionTrue
	cond := corev1.PodCondition{Type: v1alpha1.PodConditionBackendHealthy, Status: corev1.ConditionTrue, Reason: gateReasonProbePassed, Message: "the active health check passes"}
	for _, st := range states {
		if !st.Healthy {
			reason := strings.ReplaceAll(st.Failure, " ", "")
			if reason == "" {
				reason = gateReasonProbeFailed
			}
			cond.Status, cond.Reason = corev1.ConditionFalse, reason
			cond.Message = "the active health check fails: " + st.LastError
			break
		}
	}
	for _, st := range states {
		if cond.Status == corev1.ConditionTrue && st.Failure != "" && !wasTrue {
			// Healthy only for not having failed often enough: no
			// verdict yet.
			return cond, false
		}
	}
	if current != nil && current.Status == cond.Status && current.Reason == cond.Reason {
		return cond, false
	}
	cond.LastTransitionTime = now
	if current != nil && current.Status == cond.Status {
		cond.LastTransitionTime = current.LastTransitionTime
	}
	return cond, true
}

// currentGate is the pod's backend-healthy condition, nil when it has none.
func currentGate(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == v1alpha1.PodConditionBackendHealthy {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// applyGate writes the condition into the pod's status with server-side
// apply: the pod's conditions are a map keyed by type, so the apply owns
// this one condition and leaves the kubelet's and any other writer's as
// they are, and needs no resourceVersion to be safe against them. The UID
// precondition keeps it off a pod of the same name created since.
func applyGate(ctx context.Context, c client.Client, pod *corev1.Pod, cond corev1.PodCondition) error {
	ac := corev1ac.Pod(pod.Name, pod.Namespace).
		WithUID(pod.UID).
		WithStatus(corev1ac.PodStatus().WithConditions(corev1ac.PodCondition().
			WithType(cond.Type).
			WithStatus(cond.Status).
			WithReason(cond.Reason).
			WithMessage(cond.Message).
			WithLastTransitionTime(cond.LastTransitionTime)))
	if err := c.Status().Apply(ctx, ac, client.FieldOwner(v1alpha1.PodConditionFieldOwner), client.ForceOwnership); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("setting condition %s of pod %s: %w", cond.Type, pod.Name, err)
	}
	return nil
}
