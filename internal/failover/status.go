package failover

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
)

// Probe is what a target's probes say of it.
type Probe struct {
	Healthy bool
	// Message is the class of the last failure.
	Message string
	// Addresses and Passed count the addresses the last probe dialled and
	// those of them that passed.
	Addresses, Passed int
}

// Observe builds the status of each target of hosts, in priority order,
// from what its probes say (a target without probes counts as healthy) and
// from its status before, prior; and the targets as Choose takes them. A
// target's lastTransitionTime is now when its health changed (or it is new),
// else the one it had.
func Observe(hosts []string, probes map[string]Probe, prior []v1alpha1.TargetStatus, now time.Time) ([]v1alpha1.TargetStatus, []Target) {
	before := make(map[string]v1alpha1.TargetStatus, len(prior))
	for _, t := range prior {
		before[t.Host] = t
	}
	// Status keeps times to the second: the new ones are cut so too, so
	// that a time reads the same before and after it is written.
	changed := metav1.NewTime(now.Truncate(time.Second))
	statuses := make([]v1alpha1.TargetStatus, 0, len(hosts))
	targets := make([]Target, 0, len(hosts))
	for _, host := range hosts {
		ts := v1alpha1.TargetStatus{Host: host, Healthy: true}
		if p, ok := probes[host]; ok {
			ts.Healthy, ts.Message = p.Healthy, p.Message
			ts.Addresses, ts.PassingAddresses = int32(p.Addresses), int32(p.Passed)
		}
		ts.LastTransitionTime = &changed
		if p, ok := before[host]; ok && p.Healthy == ts.Healthy && p.LastTransitionTime != nil {
			ts.LastTransitionTime = p.LastTransitionTime
		}
		statuses = append(statuses, ts)
		// The second the time was cut to is counted whole, so that a
		// failback is never early (it may be up to a second late).
		targets = append(targets, Target{Host: host, Healthy: ts.Healthy, Since: ts.LastTransitionTime.Add(time.Second)})
	}
	return statuses, targets
}

// Condition is an ExternalName intent's EndpointsHealthy condition, of the
// intent's generation, for the decision d over the targets' statuses: True
// only when every target is healthy.
func Condition(d Decision, statuses []v1alpha1.TargetStatus, generation int64) metav1.Condition {
	n := 0
	for _, t := range statuses {
		if t.Healthy {
			n++
		}
	}
	cond := metav1.Condition{Type: v1alpha1.IntentConditionEndpointsHealthy, Status: metav1.ConditionFalse, ObservedGeneration: generation}
	switch {
	case d.AllDown:
		cond.Reason = v1alpha1.IntentReasonNoHealthyTarget
		cond.Message = fmt.Sprintf("no target passes its probe; %s, published last, stays published; see status.externalName.targets for why each fails", d.Active)
	case n == len(statuses):
		cond.Status, cond.Reason = metav1.ConditionTrue, v1alpha1.IntentReasonAllHealthy
		cond.Message = fmt.Sprintf("all %d targets are healthy; publishing %s", n, d.Active)
	default:
		cond.Reason = v1alpha1.IntentReasonDegraded
		cond.Message = fmt.Sprintf("%d of %d targets are healthy; publishing %s; see status.externalName.targets", n, len(statuses), d.Active)
	}
	return cond
}
