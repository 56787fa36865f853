package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
)

// ReasonAllTargetsUnhealthy says no ExternalName target passes its probe.
const ReasonAllTargetsUnhealthy = "AllTargetsUnhealthy"

// defaultHTTPTargetPort is the port an HTTP probe of an external target uses
// when it names none.
const defaultHTTPTargetPort = 80

// targetMessage is what status says of a target's last probe: the class of
// its failure, not the raw error.
func targetMessage(st health.TargetState) string {
	if st.Forbidden != "" {
		return st.Failure + ": the name resolves to an address the prober never dials, " + st.Forbidden
	}
	return st.Failure
}

// judgeTargets health-checks an ExternalName intent's targets and returns
// the one to publish: the first healthy one in priority order, or the first
// one when none is healthy (an alias to a failing host beats no alias). It
// records each target's health in status and sets EndpointsHealthy.
func (r *IntentReconciler) judgeTargets(key types.NamespacedName, in *v1alpha1.NetworkIntent) string {
	targets := in.Spec.ExternalName.Targets
	// A target new to the prober (after a restart or on becoming leader)
	// starts from the health status last published, so the alias does not
	// move back to a failed target before its probes pass.
	failed := map[string]bool{}
	if st := in.Status.ExternalName; st != nil {
		for _, t := range st.Targets {
			failed[t.Host] = !t.Healthy
		}
	}
	var probed []health.Target
	for _, t := range targets {
		if spec, ok := health.SpecFor(t.ProbeHandler, in.Spec.HealthCheck, defaultHTTPTargetPort); ok {
			probed = append(probed, health.Target{ID: t.Host, Address: t.Host, Spec: spec, StartUnhealthy: failed[t.Host]})
		}
	}
	var states map[string]health.TargetState
	if len(probed) == 0 {
		r.Prober.Remove(key.String())
	} else {
		r.Prober.Set(key.String(), probed)
		states = r.Prober.Status(key.String())
	}

	status := &v1alpha1.ExternalNameStatus{}
	healthy := 0
	for _, t := range targets {
		ts := v1alpha1.TargetStatus{Host: t.Host, Healthy: true}
		if st, ok := states[t.Host]; ok {
			ts.Healthy, ts.Message = st.Healthy, targetMessage(st)
		}
		if ts.Healthy {
			healthy++
			if status.ActiveTarget == "" {
				status.ActiveTarget = t.Host
			}
		}
		status.Targets = append(status.Targets, ts)
	}
	if status.ActiveTarget == "" {
		status.ActiveTarget = targets[0].Host
	}
	previous := ""
	if in.Status.ExternalName != nil {
		previous = in.Status.ExternalName.ActiveTarget
	}
	if previous != "" && previous != status.ActiveTarget {
		r.Recorder.Eventf(in, nil, corev1.EventTypeWarning, "TargetFailover", "Publish",
			"ExternalName target changed from %s to %s", previous, status.ActiveTarget)
	}
	in.Status.ExternalName = status

	switch {
	case healthy == len(targets):
		setCondition(in, ConditionEndpointsHealthy, true, ReasonAllHealthy, "all %d targets are healthy; publishing %s", len(targets), status.ActiveTarget)
	case healthy == 0:
		setCondition(in, ConditionEndpointsHealthy, false, ReasonAllTargetsUnhealthy,
			"no target passes its probe; publishing the first, %s; see status.externalName.targets", status.ActiveTarget)
	default:
		setCondition(in, ConditionEndpointsHealthy, false, ReasonDegraded,
			"%d of %d targets are healthy; publishing %s; see status.externalName.targets", healthy, len(targets), status.ActiveTarget)
	}
	return status.ActiveTarget
}
