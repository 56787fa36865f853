package failover

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
)

// Judgement is what Judge makes of an ExternalName intent's targets.
type Judgement struct {
	// Status is the intent's status.externalName: the target to publish
	// and each target's health.
	Status v1alpha1.ExternalNameStatus
	// Condition is the intent's EndpointsHealthy condition.
	Condition metav1.Condition
	// Previous is the target published before ("" for none); Decision
	// says how the alias moves from it, and when an automatic failback
	// falls due.
	Previous string
	Decision Decision
	// FailbackAsked: the intent carries the failback-now annotation, acted
	// on here; the caller removes it.
	FailbackAsked bool
}

// Judge judges an ExternalName intent's targets at now, from what their
// probes say (by host; a target without probes counts as healthy), the
// target published before (status.externalName.activeTarget, so it survives
// restarts) and the intent's failback policy. A person asks for a failback
// with the failback-now annotation; an edit of a Manual intent's spec asks
// for one too.
func Judge(now time.Time, in *v1alpha1.NetworkIntent, probes map[string]Probe) Judgement {
	spec := in.Spec.ExternalName
	var j Judgement
	var prior []v1alpha1.TargetStatus
	if st := in.Status.ExternalName; st != nil {
		j.Previous, prior = st.ActiveTarget, st.Targets
	}
	hosts := make([]string, 0, len(spec.Targets))
	for _, t := range spec.Targets {
		hosts = append(hosts, t.Host)
	}
	statuses, choices := Observe(hosts, probes, prior, now)
	policy := Policy{Manual: spec.Failback == v1alpha1.FailbackManual, After: v1alpha1.DefaultFailbackAfter}
	if spec.FailbackAfter != nil {
		policy.After = spec.FailbackAfter.Duration
	}
	_, j.FailbackAsked = in.Annotations[v1alpha1.AnnotationFailbackNow]
	edited := policy.Manual && in.Generation != in.Status.ObservedGeneration
	j.Decision = Choose(choices, j.Previous, policy, now, j.FailbackAsked || edited)
	j.Status = v1alpha1.ExternalNameStatus{ActiveTarget: j.Decision.Active, Targets: statuses}
	j.Condition = Condition(j.Decision, statuses, in.Generation)
	return j
}
