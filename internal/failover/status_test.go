package failover

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
)

func TestObserve(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 700_000_000, time.UTC)
	cut := now.Truncate(time.Second)
	earlier := metav1.NewTime(now.Add(-time.Hour).Truncate(time.Second))
	prior := []v1alpha1.TargetStatus{
		{Host: "steady.example", Healthy: true, LastTransitionTime: &earlier},
		{Host: "broke.example", Healthy: true, LastTransitionTime: &earlier},
		{Host: "down.example", Healthy: false, Message: "Timeout", LastTransitionTime: &earlier},
		{Host: "untimed.example", Healthy: true},
		{Host: "gone.example", Healthy: true, LastTransitionTime: &earlier},
	}
	probes := map[string]Probe{
		"steady.example":  {Healthy: true, Addresses: 2, Passed: 2},
		"broke.example":   {Healthy: false, Message: "ConnectionRefused", Addresses: 2},
		"down.example":    {Healthy: false, Message: "NoAddress"},
		"untimed.example": {Healthy: true, Addresses: 1, Passed: 1},
	}
	hosts := []string{"steady.example", "broke.example", "down.example", "untimed.example", "unprobed.example"}
	statuses, targets := Observe(hosts, probes, prior, now)

	tests := []struct {
		host      string
		healthy   bool
		message   string
		addresses int32
		passing   int32
		since     time.Time
	}{
		// Health unchanged: its time is kept.
		{"steady.example", true, "", 2, 2, earlier.Time},
		// Health changed: now, cut to the second.
		{"broke.example", false, "ConnectionRefused", 2, 0, cut},
		{"down.example", false, "NoAddress", 0, 0, earlier.Time},
		// Known, but without a time: now.
		{"untimed.example", true, "", 1, 1, cut},
		// Without probes: healthy, and new.
		{"unprobed.example", true, "", 0, 0, cut},
	}
	if len(statuses) != len(tests) || len(targets) != len(tests) {
		t.Fatalf("%d statuses and %d targets, want %d of each", len(statuses), len(targets), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			st, tg := statuses[i], targets[i]
			if st.Host != tt.host || st.Healthy != tt.healthy || st.Message != tt.message || st.Addresses != tt.addresses || st.PassingAddresses != tt.passing {
				t.Errorf("status = %+v, want %+v", st, tt)
			}
			if st.LastTransitionTime == nil || !st.LastTransitionTime.Time.Equal(tt.since) {
				t.Errorf("lastTransitionTime = %v, want %v", st.LastTransitionTime, tt.since)
			}
			// Choose counts the second the time was cut to as a whole.
			if tg.Host != tt.host || tg.Healthy != tt.healthy || !tg.Since.Equal(tt.since.Add(time.Second)) {
				t.Errorf("target = %+v, want %s healthy %v since %v", tg, tt.host, tt.healthy, tt.since.Add(time.Second))
			}
		})
	}
}

func TestCondition(t *testing.T) {
	status := func(healthy ...bool) []v1alpha1.TargetStatus {
		out := make([]v1alpha1.TargetStatus, len(healthy))
		for i, h := range healthy {
			out[i] = v1alpha1.TargetStatus{Host: "t", Healthy: h}
		}
		return out
	}
	tests := []struct {
		name     string
		d        Decision
		statuses []v1alpha1.TargetStatus
		healthy  bool
		reason   string
		message  string
	}{
		{"all healthy", Decision{Active: "a"}, status(true, true), true, v1alpha1.IntentReasonAllHealthy, "all 2 targets are healthy; publishing a"},
		{"some down", Decision{Active: "b"}, status(false, true, true), false, v1alpha1.IntentReasonDegraded,
			"2 of 3 targets are healthy; publishing b; see status.externalName.targets"},
		{"all down", Decision{Active: "a", AllDown: true}, status(false, false), false, v1alpha1.IntentReasonNoHealthyTarget,
			"no target passes its probe; a, published last, stays published; see status.externalName.targets for why each fails"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cond := Condition(tt.d, tt.statuses, 7)
			healthy, reason, message := cond.Status == metav1.ConditionTrue, cond.Reason, cond.Message
			if healthy != tt.healthy || reason != tt.reason || message != tt.message {
				t.Errorf("Condition = %v %s %q\nwant %v %s %q", healthy, reason, message, tt.healthy, tt.reason, tt.message)
			}
			if cond.Type != v1alpha1.IntentConditionEndpointsHealthy || cond.ObservedGeneration != 7 {
				t.Errorf("Condition = %+v, want type %s of generation 7", cond, v1alpha1.IntentConditionEndpointsHealthy)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	longAgo := metav1.NewTime(now.Add(-time.Hour))
	recently := metav1.NewTime(now.Add(-10 * time.Second))
	intent := func(policy v1alpha1.FailbackPolicy, annotated, edited bool, aSince *metav1.Time) *v1alpha1.NetworkIntent {
		in := &v1alpha1.NetworkIntent{
			ObjectMeta: metav1.ObjectMeta{Generation: 2},
			Spec: v1alpha1.NetworkIntentSpec{ExternalName: &v1alpha1.ExternalNameSpec{
				Targets:  []v1alpha1.ExternalTarget{{Host: "a.example"}, {Host: "b.example"}},
				Failback: policy,
			}},
			Status: v1alpha1.NetworkIntentStatus{ObservedGeneration: 2, ExternalName: &v1alpha1.ExternalNameStatus{
				ActiveTarget: "b.example",
				Targets: []v1alpha1.TargetStatus{
					{Host: "a.example", Healthy: true, LastTransitionTime: aSince},
					{Host: "b.example", Healthy: true, LastTransitionTime: &longAgo},
				},
			}},
		}
		if annotated {
			in.Annotations = map[string]string{v1alpha1.AnnotationFailbackNow: ""}
		}
		if edited {
			in.Generation = 3
		}
		return in
	}
	healthy := map[string]Probe{"a.example": {Healthy: true}, "b.example": {Healthy: true}}
	tests := []struct {
		name    string
		in      *v1alpha1.NetworkIntent
		probes  map[string]Probe
		want    Decision
		asked   bool
		healthy metav1.ConditionStatus
		reason  string
	}{
		{"automatic fails back once a has been healthy long enough", intent("", false, false, &longAgo), healthy,
			Decision{Active: "a.example", Change: Failback}, false, metav1.ConditionTrue, v1alpha1.IntentReasonAllHealthy},
		{"automatic waits for failbackAfter", intent("", false, false, &recently), healthy,
			Decision{Active: "b.example", Change: Stay, RecheckAfter: v1alpha1.DefaultFailbackAfter - 10*time.Second + time.Second}, false, metav1.ConditionTrue, v1alpha1.IntentReasonAllHealthy},
		{"manual stays", intent(v1alpha1.FailbackManual, false, false, &longAgo), healthy,
			Decision{Active: "b.example", Change: Stay}, false, metav1.ConditionTrue, v1alpha1.IntentReasonAllHealthy},
		{"manual fails back when asked", intent(v1alpha1.FailbackManual, true, false, &recently), healthy,
			Decision{Active: "a.example", Change: Failback}, true, metav1.ConditionTrue, v1alpha1.IntentReasonAllHealthy},
		{"manual fails back when its spec is edited", intent(v1alpha1.FailbackManual, false, true, &recently), healthy,
			Decision{Active: "a.example", Change: Failback}, false, metav1.ConditionTrue, v1alpha1.IntentReasonAllHealthy},
		{"a failing published target fails over", intent("", false, false, &longAgo), map[string]Probe{"a.example": {Healthy: true}, "b.example": {Message: "Timeout"}},
			Decision{Active: "a.example", Change: Failover}, false, metav1.ConditionFalse, v1alpha1.IntentReasonDegraded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := Judge(now, tt.in, tt.probes)
			if j.Decision != tt.want || j.Previous != "b.example" || j.FailbackAsked != tt.asked {
				t.Errorf("Judge = %+v from %s (asked %v), want %+v (asked %v)", j.Decision, j.Previous, j.FailbackAsked, tt.want, tt.asked)
			}
			if j.Status.ActiveTarget != tt.want.Active || len(j.Status.Targets) != 2 {
				t.Errorf("status = %+v, want active %s and two targets", j.Status, tt.want.Active)
			}
			c := j.Condition
			if c.Type != v1alpha1.IntentConditionEndpointsHealthy || c.Status != tt.healthy || c.Reason != tt.reason || c.ObservedGeneration != tt.in.Generation {
				t.Errorf("condition = %+v, want %s %s of generation %d", c, tt.healthy, tt.reason, tt.in.Generation)
			}
		})
	}
}
