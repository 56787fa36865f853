package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netintent/netintent/api/v1alpha1"
)

// TestDeferStatus: a status write that only reports endpoint health waits
// for what remains of statusInterval since the last write; anything else
// (a new generation, Ready flipping, no write yet) is written at once.
func TestDeferStatus(t *testing.T) {
	key := types.NamespacedName{Namespace: "shop", Name: "web"}
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	status := func(gen int64, ready metav1.ConditionStatus) v1alpha1.NetworkIntentStatus {
		return v1alpha1.NetworkIntentStatus{ObservedGeneration: gen, Conditions: []metav1.Condition{{Type: v1alpha1.IntentConditionReady, Status: ready}}}
	}
	cases := []struct {
		name         string
		written      *time.Time
		gen          int64
		before, next v1alpha1.NetworkIntentStatus
		now          time.Time
		want         time.Duration
	}{
		{"never written", nil, 2, status(2, "True"), status(2, "True"), t0, 0},
		{"health only, 300ms after a write", &t0, 2, status(2, "True"), status(2, "True"), t0.Add(300 * time.Millisecond), 700 * time.Millisecond},
		{"health only, after the interval", &t0, 2, status(2, "True"), status(2, "True"), t0.Add(statusInterval), 0},
		{"a new generation", &t0, 3, status(2, "True"), status(3, "True"), t0.Add(100 * time.Millisecond), 0},
		{"a generation not yet carried out", &t0, 3, status(2, "True"), status(2, "True"), t0.Add(100 * time.Millisecond), 0},
		{"Ready flips", &t0, 2, status(2, "True"), status(2, "False"), t0.Add(100 * time.Millisecond), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &IntentReconciler{}
			if tc.written != nil {
				r.statusWritten.Store(key, *tc.written)
			}
			in := &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Generation: tc.gen}, Status: tc.next}
			if got := r.deferStatus(key, &tc.before, in, tc.now); got != tc.want {
				t.Errorf("deferStatus = %v, want %v", got, tc.want)
			}
		})
	}
}
