package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/endpoints"
	"github.com/netintent/netintent/internal/health"
)

// Reasons of the pod condition v1alpha1.PodConditionBackendHealthy besides
// the failure classes of the active checks.
const (
	// gateReasonProbeFailed stands for a failure without a class.
	gateReasonProbeFailed = "ProbeFailed"
)

// +kubebuilder:rbac:groups="",resources=pods/status,verbs=patch

// writeReadinessGates sets each pod's backend-healthy condition from the
// probe states of its addresses, writing only the pods whose condition
// changes. Below the healthy floor no pod is held: as the slices publish
// every pod-ready endpoint then, the gate fails open too, or it would make
// the pods not Ready and leave the floor nothing to publish.
func (r *IntentReconciler) writeReadinessGates(ctx context.Context, pods []corev1.Pod, cands []endpoints.Candidate, states map[string]health.TargetState, belowFloor bool) error {
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
		cond, write := gateCondition(currentGate(pod), sts, belowFloor, now)
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
// thresholds say unhealthy, and below the floor (belowFloor) not at all:
// it is True with reason BelowHealthyFloor. The message follows the status
// and reason: a failure's error text alone changing writes nothing.
func gateCondition(current *corev1.PodCondition, states []health.TargetState, belowFloor bool, now metav1.Time) (corev1.PodCondition, bool) {
	wasTrue := current != nil && current.Status == corev1.ConditionTrue && current.Reason == v1alpha1.BackendHealthyProbePassed
	cond := corev1.PodCondition{Type: v1alpha1.PodConditionBackendHealthy, Status: corev1.ConditionTrue, Reason: v1alpha1.BackendHealthyProbePassed, Message: "the active health check passes"}
	for _, st := range states {
		if !st.Healthy {
			reason := strings.ReplaceAll(st.Failure, " ", "")
			if reason == "" {
				reason = gateReasonProbeFailed
			}
			cond.Status, cond.Reason = corev1.ConditionFalse, reason
			cond.Message = "the active health check fails: " + st.LastError
			if belowFloor {
				cond.Status, cond.Reason = corev1.ConditionTrue, v1alpha1.IntentReasonBelowHealthyFloor
				cond.Message = "the active health check fails, but fewer backends than healthCheck.minHealthyPercent are healthy, so no pod is held out (fail open): " + st.LastError
			}
			break
		}
	}
	for _, st := range states {
		if cond.Reason == v1alpha1.BackendHealthyProbePassed && st.Failure != "" && !wasTrue {
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

// ReadinessGateReconciler releases the gated pods that no intent checks: a
// pod that carries the readiness gate (the admission policy adds it to
// every pod of an opted-in namespace) and that no intent with
// healthCheck.readinessGate selects gets the condition True at once, with
// reason NotChecked, so that the gate holds only pods the operator checks.
// That includes the pods of an intent that drops the opt-in or is deleted:
// they are no longer held by its last verdict. The intents' reconciler
// writes the condition of every other gated pod.
type ReadinessGateReconciler struct {
	Client client.Client
	// intentStore is the intent informer's store (nil: intents are listed
	// through Client).
	intentStore toolscache.Indexer
}

var _ reconcile.Reconciler = &ReadinessGateReconciler{}

// Reconcile releases one gated pod when no intent checks it.
func (r *ReadinessGateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !hasReadinessGate(pod) || !pod.DeletionTimestamp.IsZero() || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return ctrl.Result{}, nil
	}
	if cur := currentGate(pod); cur != nil && cur.Status == corev1.ConditionTrue {
		return ctrl.Result{}, nil
	}
	selecting, err := intentsSelectingLabels(ctx, r.Client, r.intentStore, pod.Namespace, pod.Labels)
	if err != nil {
		return ctrl.Result{}, err
	}
	for _, name := range selecting {
		in := &v1alpha1.NetworkIntent{}
		if err := r.Client.Get(ctx, name, in); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return ctrl.Result{}, fmt.Errorf("reading intent %s: %w", name, err)
		}
		if checksGate(in, pod) {
			return ctrl.Result{}, nil
		}
	}
	return ctrl.Result{}, applyGate(ctx, r.Client, pod, corev1.PodCondition{
		Type: v1alpha1.PodConditionBackendHealthy, Status: corev1.ConditionTrue, Reason: v1alpha1.BackendHealthyNotChecked,
		Message:            "no NetworkIntent with healthCheck.readinessGate selects this pod, so nothing holds it",
		LastTransitionTime: metav1.Now(),
	})
}

// checksGate says whether the intent writes the pod's backend-healthy
// condition: it opts in, has an active probe and selects the pod.
func checksGate(in *v1alpha1.NetworkIntent, pod *corev1.Pod) bool {
	hc := in.Spec.HealthCheck
	if hc == nil || !hc.ReadinessGate || (hc.HTTP == nil && hc.TCP == nil && hc.GRPC == nil) ||
		in.Spec.Selector == nil || in.Spec.Exposure == v1alpha1.ExposureExternalName || !in.DeletionTimestamp.IsZero() {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(in.Spec.Selector)
	return err == nil && sel.Matches(labels.Set(pod.Labels))
}

// hasReadinessGate says whether the pod lists the operator's readiness gate.
func hasReadinessGate(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Spec.ReadinessGates, func(g corev1.PodReadinessGate) bool {
		return g.ConditionType == v1alpha1.PodConditionBackendHealthy
	})
}

// SetupWithManager registers the reconciler, on the leader only. It
// watches the gated pods, and the intents' specs and deletions (not their
// status), whose changes (a selector, the opt-in) may leave a gated pod of
// their namespace unchecked.
func (r *ReadinessGateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	var err error
	if r.intentStore, err = intentStore(context.Background(), mgr); err != nil {
		return err
	}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("readiness-gate").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(obj client.Object) bool {
			pod, ok := obj.(*corev1.Pod)
			return ok && hasReadinessGate(pod)
		}))).
		Watches(&v1alpha1.NetworkIntent{}, handler.EnqueueRequestsFromMapFunc(r.gatedPods),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionPredicate()))).
		Complete(r)
	if err != nil {
		return fmt.Errorf("setting up the readiness gate: %w", err)
	}
	return nil
}

// gatedPods are the gated pods of the intent's namespace whose condition
// is not True.
func (r *ReadinessGateReconciler) gatedPods(ctx context.Context, obj client.Object) []reconcile.Request {
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(obj.GetNamespace())); err != nil {
		logf.FromContext(ctx).Error(err, "Listing pods for an intent", "intent", klog.KObj(obj))
		return nil
	}
	var reqs []reconcile.Request
	for i := range pods.Items {
		pod := &pods.Items[i]
		if cur := currentGate(pod); hasReadinessGate(pod) && (cur == nil || cur.Status != corev1.ConditionTrue) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(pod)})
		}
	}
	return reqs
}
