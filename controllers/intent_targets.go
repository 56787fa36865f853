package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/failover"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/intent"
)

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
	previous := ""
	var before []v1alpha1.TargetStatus
	if st := in.Status.ExternalName; st != nil {
		previous, before = st.ActiveTarget, st.Targets
	}
	probed := externalTargets(in)
	var states map[string]health.TargetState
	if len(probed) == 0 {
		r.Prober.Remove(key)
	} else {
		r.Prober.Set(key, probed)
		states = r.Prober.Status(key)
	}

	hosts := make([]string, 0, len(targets))
	for _, t := range targets {
		hosts = append(hosts, t.Host)
	}
	probes := make(map[string]failover.Probe, len(states))
	for host, st := range states {
		probes[host] = failover.Probe{Healthy: st.Healthy, Message: targetMessage(st), Addresses: st.Addresses, Passed: st.Passed}
	}
	statuses, choices := failover.Observe(hosts, probes, before, time.Now())

	policy := failover.Policy{Manual: spec.Failback == v1alpha1.FailbackManual, After: v1alpha1.DefaultFailbackAfter}
	if spec.FailbackAfter != nil {
		policy.After = spec.FailbackAfter.Duration
	}
	_, asked := in.Annotations[v1alpha1.AnnotationFailbackNow]
	// An edit of a Manual intent's spec is a request to judge afresh.
	edited := policy.Manual && in.Generation != in.Status.ObservedGeneration
	d := failover.Choose(choices, previous, policy, time.Now(), asked || edited)
	in.Status.ExternalName = &v1alpha1.ExternalNameStatus{ActiveTarget: d.Active, Targets: statuses}

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

	healthy, reason, msg := failover.Condition(d, statuses)
	if d.AllDown && !conditionIs(in, v1alpha1.IntentConditionEndpointsHealthy, v1alpha1.IntentReasonNoHealthyTarget) {
		r.Recorder.Eventf(in, nil, corev1.EventTypeWarning, v1alpha1.IntentReasonNoHealthyTarget, "Publish",
			"No ExternalName target passes its probes; %s stays published", d.Active)
	}
	intent.SetCondition(in, v1alpha1.IntentConditionEndpointsHealthy, healthy, reason, "%s", msg)

	if asked {
		if err := r.removeFailbackNow(ctx, in); err != nil {
			return d.Active, d.RecheckAfter, err
		}
	}
	return d.Active, d.RecheckAfter, nil
}

// externalTargets are the probed targets of an ExternalName intent. A
// target new to the prober (after a restart, or on a replica that has just
// started) starts from the health status last published, so the alias does
// not move back to a failed target before its probes pass.
func externalTargets(in *v1alpha1.NetworkIntent) []health.Target {
	failed := map[string]bool{}
	if st := in.Status.ExternalName; st != nil {
		for _, t := range st.Targets {
			failed[t.Host] = !t.Healthy
		}
	}
	var probed []health.Target
	for _, t := range in.Spec.ExternalName.Targets {
		if spec, ok := probeSpec(t.ProbeHandler, in.Spec.HealthCheck, defaultHTTPTargetPort); ok {
			probed = append(probed, health.Target{ID: t.Host, Address: t.Host, Spec: spec, StartUnhealthy: failed[t.Host]})
		}
	}
	return probed
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
