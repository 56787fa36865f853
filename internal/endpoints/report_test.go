package endpoints

import (
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
)

func TestSummarize(t *testing.T) {
	ep := func(addr string, ready bool) Endpoint {
		return Endpoint{Address: netip.MustParseAddr(addr), Ready: ready}
	}
	out := func(n int, reason v1alpha1.EndpointReason) []v1alpha1.UnhealthyEndpoint {
		list := make([]v1alpha1.UnhealthyEndpoint, n)
		for i := range list {
			list[i] = v1alpha1.UnhealthyEndpoint{Address: fmt.Sprintf("10.0.1.%d", i), Reason: reason, Message: fmt.Sprintf("%s %d", reason, i)}
		}
		return list
	}
	tests := []struct {
		name        string
		v           Verdict
		excluded    []v1alpha1.UnhealthyEndpoint
		healthy     bool
		reason      string
		message     string
		summary     string
		ready       int
		unhealthy   int
		firstListed string
	}{
		{
			name: "all healthy", v: Verdict{Endpoints: []Endpoint{ep("10.0.0.1", true), ep("10.0.0.2", true)}, Total: 2, Healthy: 2},
			healthy: true, reason: v1alpha1.IntentReasonAllHealthy, message: "all 2 endpoints are healthy", summary: "2/2", ready: 2,
		},
		{
			name: "no backends", reason: v1alpha1.IntentReasonNoBackends, summary: "0/0",
			message: "no backends: no running pod with an IP matches the selector, and no static backends are listed",
		},
		{
			name: "every backend left out", excluded: out(2, "NoSuchPort"),
			reason: v1alpha1.IntentReasonNoBackends, message: "no usable backends: NoSuchPort 0", summary: "0/0", unhealthy: 2, firstListed: "10.0.1.0",
		},
		{
			name: "degraded",
			v: Verdict{Endpoints: []Endpoint{ep("10.0.0.1", true), ep("10.0.0.2", false)}, Total: 2, Healthy: 1,
				Unhealthy: []v1alpha1.UnhealthyEndpoint{{Address: "10.0.0.2", Reason: "ProbeFailed"}}},
			excluded: out(1, "FamilyNotServed"),
			reason:   v1alpha1.IntentReasonDegraded, message: "1 of 2 endpoints are healthy; the others are out of traffic (see status.endpoints.unhealthy)",
			summary: "1/2", ready: 1, unhealthy: 2, firstListed: "10.0.0.2",
		},
		{
			name: "below the floor",
			v: Verdict{Endpoints: []Endpoint{ep("10.0.0.1", true), ep("10.0.0.2", true), ep("10.0.0.3", true)}, Total: 3, Healthy: 1, BelowFloor: true,
				Unhealthy: out(2, "ProbeFailed")},
			reason:  v1alpha1.IntentReasonBelowHealthyFloor,
			message: "only 1 of 3 endpoints are healthy, below minHealthyPercent 50%: every pod-ready endpoint stays in traffic; see status.endpoints.unhealthy",
			summary: "1/3", ready: 3, unhealthy: 2, firstListed: "10.0.1.0",
		},
		{
			name: "listing bounded", v: Verdict{Total: 12, Healthy: 0, Unhealthy: out(12, "NotReady")}, excluded: out(3, "NoSuchPort"),
			reason: v1alpha1.IntentReasonDegraded, message: "0 of 12 endpoints are healthy; the others are out of traffic (see status.endpoints.unhealthy)",
			summary: "0/12", unhealthy: MaxUnhealthyListed, firstListed: "10.0.1.0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Summarize(tt.v, tt.excluded, 50, 4)
			c := r.Condition
			if healthy := c.Status == metav1.ConditionTrue; healthy != tt.healthy || c.Reason != tt.reason || c.Message != tt.message {
				t.Errorf("condition = %+v\nwant %v %s %q", c, tt.healthy, tt.reason, tt.message)
			}
			if c.Type != v1alpha1.IntentConditionEndpointsHealthy || c.ObservedGeneration != 4 {
				t.Errorf("condition = %+v, want type %s of generation 4", c, v1alpha1.IntentConditionEndpointsHealthy)
			}
			st := r.Status
			if st == nil || st.Summary != tt.summary || int(st.Total) != tt.v.Total || int(st.Healthy) != tt.v.Healthy || len(st.Unhealthy) != tt.unhealthy {
				t.Fatalf("status = %+v, want summary %s and %d unhealthy", st, tt.summary, tt.unhealthy)
			}
			if tt.unhealthy > 0 && st.Unhealthy[0].Address != tt.firstListed {
				t.Errorf("first unhealthy listed = %s, want %s", st.Unhealthy[0].Address, tt.firstListed)
			}
			if r.Ready != tt.ready {
				t.Errorf("ready = %d, want %d", r.Ready, tt.ready)
			}
		})
	}
}
