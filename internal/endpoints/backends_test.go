package endpoints

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
)

func cand(addr string, podReady, terminating bool) Candidate {
	return Candidate{Endpoint: Endpoint{Address: netip.MustParseAddr(addr), Terminating: terminating}, PodReady: podReady, Pod: "p-" + addr}
}

func TestJudge(t *testing.T) {
	failing := map[string]bool{}
	probe := func(c Candidate) *ProbeResult {
		if failing[c.Address.String()] {
			return &ProbeResult{Healthy: false, Err: "connection refused"}
		}
		return &ProbeResult{Healthy: true}
	}
	cases := []struct {
		name                 string
		cands                []Candidate
		failing              []string
		ignoreReadiness      bool
		floor                int32
		total, healthy       int
		belowFloor           bool
		ready, serving       []bool
		firstUnhealthyReason v1alpha1.EndpointReason
	}{
		{"all healthy", []Candidate{cand("10.0.0.1", true, false), cand("10.0.0.2", true, false)}, nil, false, 0, 2, 2, false, []bool{true, true}, []bool{true, true}, ""},
		{"pod not ready", []Candidate{cand("10.0.0.1", false, false), cand("10.0.0.2", true, false)}, nil, false, 0, 2, 1, false, []bool{false, true}, []bool{false, true}, v1alpha1.EndpointReasonNotReady},
		{"readiness ignored", []Candidate{cand("10.0.0.1", false, false)}, nil, true, 0, 1, 1, false, []bool{true}, []bool{true}, ""},
		{"probe fails", []Candidate{cand("10.0.0.1", true, false), cand("10.0.0.2", true, false)}, []string{"10.0.0.1"}, false, 0, 2, 1, false, []bool{false, true}, []bool{false, true}, v1alpha1.EndpointReasonProbeFailed},
		{"terminating serves, never ready", []Candidate{cand("10.0.0.1", true, true), cand("10.0.0.2", true, false)}, nil, false, 0, 1, 1, false, []bool{false, true}, []bool{true, true}, ""},
		{"terminating and failing stops serving", []Candidate{cand("10.0.0.1", true, true)}, []string{"10.0.0.1"}, false, 0, 0, 0, false, []bool{false}, []bool{false}, ""},
		{"below floor fails open", []Candidate{cand("10.0.0.1", true, false), cand("10.0.0.2", true, false), cand("10.0.0.3", false, false)}, []string{"10.0.0.1", "10.0.0.2"}, false, 50, 3, 0, true, []bool{true, true, false}, []bool{true, true, false}, v1alpha1.EndpointReasonProbeFailed},
		{"at floor prunes", []Candidate{cand("10.0.0.1", true, false), cand("10.0.0.2", true, false)}, []string{"10.0.0.1"}, false, 50, 2, 1, false, []bool{false, true}, []bool{false, true}, v1alpha1.EndpointReasonProbeFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clear(failing)
			for _, a := range tc.failing {
				failing[a] = true
			}
			v := Judge(tc.cands, probe, tc.ignoreReadiness, tc.floor)
			if v.Total != tc.total || v.Healthy != tc.healthy || v.BelowFloor != tc.belowFloor {
				t.Fatalf("total %d healthy %d belowFloor %v", v.Total, v.Healthy, v.BelowFloor)
			}
			for i, ep := range v.Endpoints {
				if ep.Ready != tc.ready[i] || ep.Serving != tc.serving[i] {
					t.Fatalf("endpoint %s ready %v serving %v, want %v %v", ep.Address, ep.Ready, ep.Serving, tc.ready[i], tc.serving[i])
				}
			}
			if tc.firstUnhealthyReason != "" && (len(v.Unhealthy) == 0 || v.Unhealthy[0].Reason != tc.firstUnhealthyReason) {
				t.Fatalf("unhealthy %+v, want first reason %s", v.Unhealthy, tc.firstUnhealthyReason)
			}
		})
	}
}

func TestJudgeNamesFailureClassAndForbiddenTargets(t *testing.T) {
	cands := []Candidate{cand("10.0.0.1", true, false), cand("10.0.0.2", true, false), cand("10.0.0.3", false, false)}
	results := map[string]*ProbeResult{
		"10.0.0.1": {Err: "HTTPStatus 503"},
		"10.0.0.2": {Err: "ForbiddenTarget", Forbidden: "outside the allowed ranges"},
		"10.0.0.3": {Err: "ForbiddenTarget", Forbidden: "loopback"}, // pod not ready: that comes first
	}
	v := Judge(cands, func(c Candidate) *ProbeResult { return results[c.Address.String()] }, false, 0)
	want := []v1alpha1.UnhealthyEndpoint{
		{Address: "10.0.0.1", Pod: "p-10.0.0.1", Family: corev1.IPv4Protocol, Reason: v1alpha1.EndpointReasonProbeFailed, Message: "HTTPStatus 503"},
		{Address: "10.0.0.2", Pod: "p-10.0.0.2", Family: corev1.IPv4Protocol, Reason: v1alpha1.EndpointReasonForbiddenTarget, Message: "the prober never dials this address: it is outside the allowed ranges"},
		{Address: "10.0.0.3", Pod: "p-10.0.0.3", Family: corev1.IPv4Protocol, Reason: v1alpha1.EndpointReasonNotReady, Message: "pod is not Ready"},
	}
	if len(v.Unhealthy) != len(want) {
		t.Fatalf("unhealthy %+v", v.Unhealthy)
	}
	for i := range want {
		if v.Unhealthy[i] != want[i] {
			t.Errorf("unhealthy[%d] = %+v, want %+v", i, v.Unhealthy[i], want[i])
		}
	}
	for _, ep := range v.Endpoints {
		if ep.Ready || ep.Serving {
			t.Errorf("%s in traffic", ep.Address)
		}
	}
}

func TestFromPods(t *testing.T) {
	in := &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
	in.Spec.Ports = []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromString("http"))}, {Name: "admin", Port: 9000}}
	pod := func(name, ip string, port int32, ready bool) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}}
		p.Spec.NodeName = "node-a"
		p.Spec.Containers = []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 1}}}}
		if port != 0 {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "http", ContainerPort: port})
		}
		if ip != "" {
			p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		}
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
		return p
	}
	term := pod("d", "10.0.0.4", 8080, true)
	term.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	pods := []corev1.Pod{pod("a", "10.0.0.1", 8080, true), pod("b", "10.0.0.2", 0, true), pod("c", "", 8080, true), term, pod("e", "10.0.0.5", 8081, false)}
	cands, excluded := FromPods(in, pods, map[string]string{"node-a": "zone-1"})
	if len(cands) != 3 {
		t.Fatalf("%d candidates, want 3 (a, d, e)", len(cands))
	}
	if len(excluded) != 1 || excluded[0].Pod != "b" || excluded[0].Reason != v1alpha1.EndpointReasonNoSuchPort {
		t.Fatalf("excluded %+v", excluded)
	}
	a := cands[0]
	if a.Ports[0].Number != 8080 || a.Ports[1].Number != 9000 || a.Zone != "zone-1" || a.NodeName != "node-a" || a.TargetRef.Name != "a" || !a.PodReady {
		t.Fatalf("candidate a %+v", a)
	}
	if !cands[1].Terminating || cands[2].PodReady || cands[2].Ports[0].Number != 8081 {
		t.Fatalf("candidates d, e: %+v %+v", cands[1], cands[2])
	}
}

func TestFromBackends(t *testing.T) {
	in := &v1alpha1.NetworkIntent{}
	in.Spec.Ports = []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromString("http"))}}
	in.Spec.Backends = []v1alpha1.Backend{{Address: "192.0.2.10", Port: ptr.To[int32](8443)}, {Address: "2001:db8::10"}}
	cands, excluded := FromBackends(in)
	if len(cands) != 1 || cands[0].Ports[0].Number != 8443 || !cands[0].PodReady {
		t.Fatalf("candidates %+v", cands)
	}
	if len(excluded) != 1 || excluded[0].Reason != v1alpha1.EndpointReasonNoSuchPort {
		t.Fatalf("excluded %+v", excluded)
	}
}

func TestServedFamilies(t *testing.T) {
	pod := func(addr string) Candidate { return cand(addr, true, false) }
	static := func(addr string) Candidate {
		return Candidate{Endpoint: Endpoint{Address: netip.MustParseAddr(addr)}, PodReady: true}
	}
	// A dual-stack pod, an IPv6-only pod, a mapped IPv4 static backend and
	// an IPv6 one.
	cands := []Candidate{pod("10.0.0.1"), pod("fd00::1"), pod("fd00::2"), static("::ffff:192.0.2.10"), static("2001:db8::10")}
	cands[1].Pod = cands[0].Pod
	v4, v6 := corev1.IPv4Protocol, corev1.IPv6Protocol
	tests := []struct {
		name     string
		families []corev1.IPFamily
		kept     []string
		excluded []string
	}{
		{"unknown: all", nil, []string{"10.0.0.1", "fd00::1", "fd00::2", "::ffff:192.0.2.10", "2001:db8::10"}, nil},
		{"IPv4", []corev1.IPFamily{v4}, []string{"10.0.0.1", "::ffff:192.0.2.10"}, []string{"2001:db8::10"}},
		{"IPv6", []corev1.IPFamily{v6}, []string{"fd00::1", "fd00::2", "2001:db8::10"}, []string{"::ffff:192.0.2.10"}},
		{"dual stack", []corev1.IPFamily{v6, v4}, []string{"10.0.0.1", "fd00::1", "fd00::2", "::ffff:192.0.2.10", "2001:db8::10"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kept, excluded := ServedFamilies(cands, tt.families)
			var gotKept, gotExcluded []string
			for _, c := range kept {
				gotKept = append(gotKept, c.Address.String())
			}
			for _, u := range excluded {
				if u.Reason != v1alpha1.EndpointReasonFamilyNotServed || u.Message == "" {
					t.Errorf("excluded %+v", u)
				}
				gotExcluded = append(gotExcluded, u.Address)
			}
			if fmt.Sprint(gotKept) != fmt.Sprint(tt.kept) || fmt.Sprint(gotExcluded) != fmt.Sprint(tt.excluded) {
				t.Errorf("kept %v excluded %v, want %v and %v", gotKept, gotExcluded, tt.kept, tt.excluded)
			}
		})
	}
}
