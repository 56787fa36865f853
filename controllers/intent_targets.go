package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/failover"
	"github.com/netintent/netintent/internal/health"
)

// ReasonNoHealthyTarget says no ExternalName target passes its probe; the
// target published last stays.
const ReasonNoHealthyTarget = "NoHealthyTarget"

// Events of an ExternalName alias moving.
const (
	eventTargetFailover = "TargetFailover"
	eventTargetFailback = "TargetFailback"
)

// defaultHTTPTargetPort is the port an HTTP probe of an external target uses
// when it names none.
const defaultHTTPTargetPort = 80

var (
	failoversTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netintent_externalname_failovers_total",
		Help: "Times an ExternalName intent's alias moved away from a target that failed its probes (or left the list).",
	}, []string{"namespace", "intent"})
	failbacksTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netintent_externalname_failbacks_total",
		Help: "Times an ExternalName intent's alias returned to a higher-priority target, automatically or when asked.",
	}, []string{"namespace", "intent"})
)

func init() {
	metrics.Registry.MustRegister(failoversTotal, failbacksTotal)
}

// forgetTargetMetrics drops the intent's failover counters.
func forgetTargetMetrics(in *v1alpha1.NetworkIntent) {
	labels := prometheus.Labels{"namespace": in.Namespace, "intent": in.Name}
	failoversTotal.DeletePartialMatch(labels)
	failbacksTotal.DeletePartialMatch(labels)
}

// targetMessage is what status says of a target's last probe: the class of
// its failure, not the raw error.
func targetMessage(st health.TargetState) string {
	if st.Forbidden != "" {
		return st.Failure + ": the name resolves to an address the prober never dials, " + st.Forbidden
	}
	return st.Failure
}

// judgeTargets health-checks an ExternalName intent's targets and returns
// the one to publish, as failover.Choose decides from their health, the
// target published before (status.externalName.activeTarget, so it
// survives restarts) and the failback policy; and, when an automatic
// failback is pending, how long until it falls due. It records each
// target's health in status, sets EndpointsHealthy, sends an event and
// counts each move, and removes the failback-now annotation once acted on.
func (r *IntentReconciler) judgeTargets(ctx context.Context, key types.NamespacedName, in *v1alpha1.NetworkIntent) (string, time.Duration, error) {
	spec := in.Spec.ExternalName
	targets := spec.Targets
	// A target new to the prober (after a restart or on becoming leader)
	// starts from the health status last published, so the alias does not
	// move back to a failed target before its probes pass.
	prior := map[string]v1alpha1.TargetStatus{}
	previous := ""
	if st := in.Status.ExternalName; st != nil {
		previous = st.ActiveTarget
		for _, t := range st.Targets {
			prior[t.Host] = t
		}
	}
	var probed []health.Target
	for _, t := range targets {
		if spec, ok := health.SpecFor(t.ProbeHandler, in.Spec.HealthCheck, defaultHTTPTargetPort); ok {
			p, known := prior[t.Host]
			probed = append(probed, health.Target{ID: t.Host, Address: t.Host, Spec: spec, StartUnhealthy: known && !p.Healthy})
		}
	}
	var states map[string]health.TargetState
	if len(probed) == 0 {
		r.Prober.Remove(key.String())
	} else {
		r.Prober.Set(key.String(), probed)
		states = r.Prober.Status(key.String())
	}

	// Status keeps times to the second: keep the new ones so too, so
	// that a time reads the same before and after it is written.
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	status := &v1alpha1.ExternalNameStatus{}
	choices := make([]failover.Target, 0, len(targets))
	healthy := 0
	for _, t := range targets {
		ts := v1alpha1.TargetStatus{Host: t.Host, Healthy: true}
		if st, ok := states[t.Host]; ok {
			ts.Healthy, ts.Message = st.Healthy, targetMessage(st)
			ts.Addresses, ts.PassingAddresses = int32(st.Addresses), int32(st.Passed)
		}
		ts.LastTransitionTime = &now
		if p, ok := prior[t.Host]; ok && p.Healthy == ts.Healthy && p.LastTransitionTime != nil {
			ts.LastTransitionTime = p.LastTransitionTime
		}
		if ts.Healthy {
			healthy++
		}
		status.Targets = append(status.Targets, ts)
		// The second the time was cut to is counted whole, so that a
		// failback is never early (it may be up to a second late).
		choices = append(choices, failover.Target{Host: t.Host, Healthy: ts.Healthy, Since: ts.LastTransitionTime.Add(time.Second)})
	}

	policy := failover.Policy{Manual: spec.Failback == v1alpha1.FailbackManual, After: v1alpha1.DefaultFailbackAfter}
	if spec.FailbackAfter != nil {
		policy.After = spec.FailbackAfter.Duration
	}
	_, asked := in.Annotations[v1alpha1.AnnotationFailbackNow]
	// An edit of a Manual intent's spec is a request to judge afresh.
	edited := policy.Manual && in.Generation != in.Status.ObservedGeneration
	d := failover.Choose(choices, previous, policy, time.Now(), asked || edited)
	status.ActiveTarget = d.Active
	in.Status.ExternalName = status

	// A status write that conflicts brings the intent back with the old
	// status, and the same move decided again: announce each move once.
	if announced, _ := r.published.Swap(key, d.Active); announced != d.Active {
		switch d.Change {
		case failover.Failover:
			failoversTotal.WithLabelValues(in.Namespace, in.Name).Inc()
			r.Recorder.Eventf(in, nil, corev1.EventTypeWarning, eventTargetFailover, "Publish",
				"ExternalName target changed from %s to %s: %s fails its probes or is no longer listed", previous, d.Active, previous)
		case failover.Failback:
			failbacksTotal.WithLabelValues(in.Namespace, in.Name).Inc()
			r.Recorder.Eventf(in, nil, corev1.EventTypeNormal, eventTargetFailback, "Publish",
				"ExternalName target returned from %s to %s, a higher-priority target that passes its probes", previous, d.Active)
		}
	}

	switch {
	case d.AllDown:
		if !conditionIs(in, ConditionEndpointsHealthy, ReasonNoHealthyTarget) {
			r.Recorder.Eventf(in, nil, corev1.EventTypeWarning, ReasonNoHealthyTarget, "Publish",
				"No ExternalName target passes its probes; %s stays published", d.Active)
		}
		setCondition(in, ConditionEndpointsHealthy, false, ReasonNoHealthyTarget,
			"no target passes its probe; %s, published last, stays published; see status.externalName.targets for why each fails", d.Active)
	case healthy == len(targets):
		setCondition(in, ConditionEndpointsHealthy, true, ReasonAllHealthy, "all %d targets are healthy; publishing %s", len(targets), d.Active)
	default:
		setCondition(in, ConditionEndpointsHealthy, false, ReasonDegraded,
			"%d of %d targets are healthy; publishing %s; see status.externalName.targets", healthy, len(targets), d.Active)
	}

	if asked {
		if err := r.removeFailbackNow(ctx, in); err != nil {
			return d.Active, d.RecheckAfter, err
		}
	}
	return d.Active, d.RecheckAfter, nil
}

// removeFailbackNow removes the failback-now annotation, acted on. The
// patch goes through a copy, so that the status computed in in is kept.
func (r *IntentReconciler) removeFailbackNow(ctx context.Context, in *v1alpha1.NetworkIntent) error {
	cp := in.DeepCopy()
	patch := client.MergeFromWithOptions(cp.DeepCopy(), client.MergeFromWithOptimisticLock{})
	delete(cp.Annotations, v1alpha1.AnnotationFailbackNow)
	if err := r.Client.Patch(ctx, cp, patch); err != nil {
		return fmt.Errorf("removing the %s annotation: %w", v1alpha1.AnnotationFailbackNow, err)
	}
	in.Annotations = cp.Annotations
	in.ResourceVersion = cp.ResourceVersion
	return nil
}
