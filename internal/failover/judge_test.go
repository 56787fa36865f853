package failover

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
)

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
