package endpoints

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/netintent/netintent/api/v1alpha1"
)

// A dual-stack pod's two addresses are judged apart: its failing IPv6
// address leaves traffic, its IPv4 address stays, and status names the
// family that is out.
func TestJudgeEachFamilyOnItsOwn(t *testing.T) {
	cands := []Candidate{cand("10.0.0.1", true, false), cand("fd00::1", true, false), cand("10.0.0.2", true, false), cand("fd00::2", true, false)}
	cands[1].Pod, cands[3].Pod = "p-10.0.0.1", "p-10.0.0.2"
	failing := map[string]bool{"fd00::1": true}
	v := Judge(cands, func(c Candidate) *ProbeResult {
		return &ProbeResult{Healthy: !failing[c.Address.String()], Err: "ConnectionRefused"}
	}, false, 0)
	ready := map[string]bool{}
	for _, ep := range v.Endpoints {
		ready[ep.Address.String()] = ep.Ready
	}
	want := map[string]bool{"10.0.0.1": true, "fd00::1": false, "10.0.0.2": true, "fd00::2": true}
	for a, w := range want {
		if ready[a] != w {
			t.Errorf("%s ready = %v, want %v", a, ready[a], w)
		}
	}
	if len(v.Unhealthy) != 1 || v.Unhealthy[0] != (v1alpha1.UnhealthyEndpoint{Address: "fd00::1", Pod: "p-10.0.0.1", Family: corev1.IPv6Protocol, Reason: v1alpha1.EndpointReasonProbeFailed, Message: "ConnectionRefused"}) {
		t.Errorf("unhealthy = %+v", v.Unhealthy)
	}
	if got := v.Families[corev1.IPv6Protocol]; got != (FamilyCount{Total: 2, Healthy: 1}) {
		t.Errorf("IPv6 counts = %+v", got)
	}
}

// The floor counts each family apart: every IPv6 address failing holds
// the IPv6 floor (all stay in traffic) while IPv4's healthy backends are
// judged as usual.
func TestFloorPerFamily(t *testing.T) {
	cands := []Candidate{cand("10.0.0.1", true, false), cand("10.0.0.2", true, false), cand("fd00::1", true, false), cand("fd00::2", true, false)}
	failing := map[string]bool{"10.0.0.2": true, "fd00::1": true, "fd00::2": true}
	v := Judge(cands, func(c Candidate) *ProbeResult {
		return &ProbeResult{Healthy: !failing[c.Address.String()], Err: "Timeout"}
	}, false, 50)
	if !slices.Equal(v.BelowFloorFamilies, []corev1.IPFamily{corev1.IPv6Protocol}) {
		t.Fatalf("below floor = %v, want IPv6 only (IPv4 has 1 of 2 healthy, at the 50%% floor)", v.BelowFloorFamilies)
	}
	ready := map[string]bool{}
	for _, ep := range v.Endpoints {
		ready[ep.Address.String()] = ep.Ready
	}
	want := map[string]bool{"10.0.0.1": true, "10.0.0.2": false, "fd00::1": true, "fd00::2": true}
	for a, w := range want {
		if ready[a] != w {
			t.Errorf("%s ready = %v, want %v", a, ready[a], w)
		}
	}
	rep := Summarize(v, nil, 50)
	if rep.Reason != v1alpha1.IntentReasonBelowHealthyFloor || rep.Message == "" || !strings.Contains(rep.Message, "only 0 of 2 IPv6 endpoints are healthy") {
		t.Errorf("report %s: %s", rep.Reason, rep.Message)
	}
}

// A family without endpoints gets one placeholder slice, with no ports,
// as the EndpointSlice controller writes; it goes once the family has
// endpoints, and a family the Service no longer has loses its slices.
func TestPlaceholderPerFamily(t *testing.T) {
	dual := target
	dual.Families = []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}
	v4 := endpointsN(2, "10.1")

	p := Reconcile(dual, v4, nil)
	slicesNow := apply(nil, p)
	byType := map[discoveryv1.AddressType][]discoveryv1.EndpointSlice{}
	for _, s := range slicesNow {
		byType[s.AddressType] = append(byType[s.AddressType], s)
	}
	if len(byType[discoveryv1.AddressTypeIPv4]) != 1 || len(byType[discoveryv1.AddressTypeIPv6]) != 1 {
		t.Fatalf("slices by family: %d IPv4, %d IPv6; want one of each", len(byType[discoveryv1.AddressTypeIPv4]), len(byType[discoveryv1.AddressTypeIPv6]))
	}
	ph := byType[discoveryv1.AddressTypeIPv6][0]
	if len(ph.Endpoints) != 0 || len(ph.Ports) != 0 {
		t.Fatalf("IPv6 placeholder has %d endpoints and %d ports", len(ph.Endpoints), len(ph.Ports))
	}

	// Nothing changed: no write.
	if again := Reconcile(dual, v4, slicesNow); len(again.Create)+len(again.Update)+len(again.Delete) != 0 {
		t.Fatalf("second plan writes: %d creates, %d updates, %d deletes", len(again.Create), len(again.Update), len(again.Delete))
	}

	// IPv6 endpoints arrive: the placeholder goes, a slice with ports comes.
	v6 := Endpoint{Address: netip.MustParseAddr("fd00::5"), Ready: true, Serving: true, Ports: v4[0].Ports}
	p = Reconcile(dual, append(v4, v6), slicesNow)
	slicesNow = apply(slicesNow, p)
	for _, s := range slicesNow {
		if s.AddressType == discoveryv1.AddressTypeIPv6 && len(s.Endpoints) != 1 {
			t.Errorf("IPv6 slice %s has %d endpoints, want 1 (placeholder gone)", s.Name, len(s.Endpoints))
		}
	}

	// The Service drops IPv6: its slices go.
	single := target
	single.Families = []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4}
	p = Reconcile(single, v4, slicesNow)
	slicesNow = apply(slicesNow, p)
	for _, s := range slicesNow {
		if s.AddressType == discoveryv1.AddressTypeIPv6 {
			t.Errorf("IPv6 slice %s left after the family was dropped", s.Name)
		}
	}

	// No endpoints at all: one placeholder, of the Service's family.
	p = Reconcile(single, nil, slicesNow)
	slicesNow = apply(slicesNow, p)
	if len(slicesNow) != 1 || slicesNow[0].AddressType != discoveryv1.AddressTypeIPv4 || len(slicesNow[0].Endpoints) != 0 {
		t.Errorf("slices with no endpoints: %+v", slicesNow)
	}
}
