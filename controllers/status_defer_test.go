package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netintent/netintent/api/v1alpha1"
)

// TestDeferStatus: a status write that only reports endpoint health waits
// until such changes have stopped for statusQuiet, or statusMaxDelay after
// the first of them; anything else (a new generation, Ready flipping, no
// write yet) is written at once. What was written before is the status as
// the API server holds it, whoever wrote it: a reconciler that has written
// nothing yet (one just started, or just become the leader) holds back a
// health-only change of a status another wrote.
func TestDeferStatus(t *testing.T) {
	key := types.NamespacedName{Namespace: "shop", Name: "web"}
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	status := func(gen int64, ready metav1.ConditionStatus, healthy int32) v1alpha1.NetworkIntentStatus {
		return v1alpha1.NetworkIntentStatus{
			ObservedGeneration: gen,
			Conditions:         []metav1.Condition{{Type: v1alpha1.IntentConditionReady, Status: ready}},
			Endpoints:          &v1alpha1.EndpointsStatus{Total: 10, Healthy: healthy},
		}
	}
	written := status(2, "True", 10)
	withActive := func(st v1alpha1.NetworkIntentStatus, target string) v1alpha1.NetworkIntentStatus {
		st.ExternalName = &v1alpha1.ExternalNameStatus{ActiveTarget: target}
		return st
	}
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		at   time.Time
		gen  int64
		next v1alpha1.NetworkIntentStatus
		want time.Duration
	}
	never := v1alpha1.NetworkIntentStatus{}
	cases := []struct {
		name string
		// before is the status written before; nil: written.
		before *v1alpha1.NetworkIntentStatus
		steps  []step
	}{
		{"never written", &never, []step{{ms(0), 2, status(2, "True", 9), 0}}},
		{"one health change waits for quiet", nil, []step{
			{ms(0), 2, status(2, "True", 9), statusQuiet},
			{ms(600), 2, status(2, "True", 9), 400 * time.Millisecond}, // the same change again
			{ms(1000), 2, status(2, "True", 9), 0},
		}},
		{"changes in a row push the write back", nil, []step{
			{ms(0), 2, status(2, "True", 9), statusQuiet},
			{ms(500), 2, status(2, "True", 8), statusQuiet},
			{ms(1200), 2, status(2, "True", 7), statusQuiet},
			{ms(2200), 2, status(2, "True", 7), 0},
		}},
		{"changes that go on are written after statusMaxDelay", nil, []step{
			{ms(0), 2, status(2, "True", 9), statusQuiet},
			{ms(900), 2, status(2, "True", 8), statusQuiet},
			{ms(1800), 2, status(2, "True", 7), statusQuiet},
			{ms(2700), 2, status(2, "True", 6), statusQuiet},
			{ms(3600), 2, status(2, "True", 5), statusQuiet},
			{ms(4500), 2, status(2, "True", 4), 500 * time.Millisecond},
			{ms(5000), 2, status(2, "True", 4), 0},
		}},
		{"a new generation", nil, []step{{ms(0), 3, status(3, "True", 9), 0}}},
		{"a generation not yet carried out", nil, []step{{ms(0), 3, status(2, "True", 9), 0}}},
		{"Ready flips", nil, []step{{ms(0), 2, status(2, "False", 0), 0}}},
		{"an ExternalName target moves", nil, []step{
			{ms(0), 2, withActive(status(2, "True", 10), "backup.example.test"), 0},
		}},
		{"Ready flips while health is held", nil, []step{
			{ms(0), 2, status(2, "True", 9), statusQuiet},
			{ms(100), 2, status(2, "False", 0), 0},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A reconciler that has written no status itself.
			r := &IntentReconciler{}
			before := tc.before
			if before == nil {
				before = &written
			}
			for i, st := range tc.steps {
				in := &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Generation: st.gen}, Status: st.next}
				if got := r.deferStatus(key, before, in, st.at); got != st.want {
					t.Fatalf("step %d (at %v): deferStatus = %v, want %v", i, st.at.Sub(t0), got, st.want)
				}
			}
			if _, held := r.statusHeld.Load(key); held {
				t.Error("a status written is still held")
			}
		})
	}
}
