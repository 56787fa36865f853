package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/failover"
	"github.com/netintent/netintent/internal/health"
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

// reconcileTargets is the phase of an ExternalName intent's targets: it
// feeds them to the prober, judges them with failover.Judge, and records
// the judgement (each target's health, the target to publish, which the
// Service phase then publishes, and EndpointsHealthy). It sends an event
// and counts each move, and removes the failback-now annotation once acted
// on; a failure there leaves the status as it was (errStatusKept), so that
// the move is decided and recorded again.
func (r *IntentReconciler) reconcileTargets(ctx context.Context, s *intentScope) (ctrl.Result, error) {
	in := s.in
	key := client.ObjectKeyFromObject(in)
	if in.Spec.Exposure != v1alpha1.ExposureExternalName {
		if in.Status.ExternalName != nil {
			// It was an ExternalName intent until now.
			in.Status.ExternalName = nil
			forgetTargetMetrics(in)
		}
		return ctrl.Result{}, nil
	}
	j := failover.Judge(time.Now(), in, r.probeTargets(key, in))
	in.Status.ExternalName = &j.Status
	s.externalName, s.recheck = j.Decision.Active, j.Decision.RecheckAfter
	r.announceMove(in, j)
	if j.Decision.AllDown && !conditionIs(in, v1alpha1.IntentConditionEndpointsHealthy, v1alpha1.IntentReasonNoHealthyTarget) {
		r.Recorder.Eventf(in, nil, corev1.EventTypeWarning, v1alpha1.IntentReasonNoHealthyTarget, "Publish",
			"No ExternalName target passes its probes; %s stays published", j.Decision.Active)
	}
	meta.SetStatusCondition(&in.Status.Conditions, j.Condition)
	if j.FailbackAsked {
		if err := r.removeFailbackNow(ctx, in); err != nil {
			return ctrl.Result{}, errStatusKept{err}
		}
	}
	return ctrl.Result{}, nil
}

// probeTargets hands the intent's probed targets to the prober and returns
// what their probes say, by host.
func (r *IntentReconciler) probeTargets(key types.NamespacedName, in *v1alpha1.NetworkIntent) map[string]failover.Probe {
	probed := externalTargets(in)
	if len(probed) == 0 {
		r.Prober.Remove(key)
		return nil
	}
	r.Prober.Set(key, probed)
	states := r.Prober.Status(key)
	probes := make(map[string]failover.Probe, len(states))
	for host, st := range states {
		probes[host] = failover.Probe{Healthy: st.Healthy, Message: targetMessage(st), Addresses: st.Addresses, Passed: st.Passed}
	}
	return probes
}

// announceMove sends the event and counts the move of a failover or a
// failback. A status write that conflicts brings the intent back with the
// old status, and the same move decided again: each move is announced once.
func (r *IntentReconciler) announceMove(in *v1alpha1.NetworkIntent, j failover.Judgement) {
	d, previous := j.Decision, j.Previous
	if announced, _ := r.published.Swap(client.ObjectKeyFromObject(in), d.Active); announced == d.Active {
		return
	}
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

// errStatusKept is the error of a phase whose failure must leave the
// intent's status as it was: the status is not written.
type errStatusKept struct{ error }

func (e errStatusKept) Unwrap() error { return e.error }

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
