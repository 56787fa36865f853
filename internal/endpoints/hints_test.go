package endpoints

import (
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/netintent/netintent/api/v1alpha1"
)

// onNode is a ready endpoint of a pod on node, in zone.
func onNode(addr, node, zone string, ready bool) Endpoint {
	return Endpoint{
		Address: netip.MustParseAddr(addr), Ready: ready, Serving: ready, NodeName: node, Zone: zone,
		Ports:     []Port{{Name: "http", Protocol: corev1.ProtocolTCP, Number: 8080}},
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "p-" + addr},
	}
}

func TestHints(t *testing.T) {
	a1 := onNode("10.1.0.1", "n1", "zone-a", true)
	a2 := onNode("10.1.0.2", "n2", "zone-a", true)
	b1 := onNode("10.1.0.3", "n3", "zone-b", true)
	b1Down := onNode("10.1.0.3", "n3", "zone-b", false)
	noZone := onNode("10.1.0.4", "n4", "", true)
	noZoneDown := onNode("10.1.0.4", "n4", "", false)
	static := Endpoint{Address: netip.MustParseAddr("192.0.2.10"), Ready: true, Serving: true}
	staticDown := Endpoint{Address: netip.MustParseAddr("192.0.2.10")}
	none := [2]string{}
	cases := []struct {
		name     string
		dist     v1alpha1.TrafficDistribution
		eps      []Endpoint
		want     [][2]string // zone and node hint of each endpoint
		withheld string
	}{
		{"not asked", "", []Endpoint{a1, b1}, [][2]string{none, none}, ""},
		{"PreferClose", v1alpha1.TrafficDistributionPreferClose, []Endpoint{a1, a2, b1}, [][2]string{{"zone-a", ""}, {"zone-a", ""}, {"zone-b", ""}}, ""},
		{"PreferSameZone", v1alpha1.TrafficDistributionPreferSameZone, []Endpoint{a1, b1}, [][2]string{{"zone-a", ""}, {"zone-b", ""}}, ""},
		{"PreferSameNode hints the node too", v1alpha1.TrafficDistributionPreferSameNode, []Endpoint{a1, b1}, [][2]string{{"zone-a", "n1"}, {"zone-b", "n3"}}, ""},
		{"one zone", v1alpha1.TrafficDistributionPreferSameZone, []Endpoint{a1, a2}, [][2]string{{"zone-a", ""}, {"zone-a", ""}}, ""},
		{"a not-ready endpoint gets no hint", v1alpha1.TrafficDistributionPreferSameZone, []Endpoint{a1, a2, onNode("10.1.0.9", "n1", "zone-a", false), b1},
			[][2]string{{"zone-a", ""}, {"zone-a", ""}, none, {"zone-b", ""}}, ""},
		{"a zone with no ready endpoint withholds every hint", v1alpha1.TrafficDistributionPreferSameZone, []Endpoint{a1, a2, b1Down},
			[][2]string{none, none, none}, "zone zone-b has no ready endpoint"},
		{"two such zones are named", v1alpha1.TrafficDistributionPreferSameNode, []Endpoint{a1, b1Down, onNode("10.1.0.5", "n5", "zone-c", false)},
			[][2]string{none, none, none}, "zones zone-b, zone-c have no ready endpoint"},
		{"a ready endpoint without a zone withholds every hint", v1alpha1.TrafficDistributionPreferSameZone, []Endpoint{a1, b1, noZone},
			[][2]string{none, none, none}, "endpoint 10.1.0.4 has no zone: its node n4 has no topology.kubernetes.io/zone label"},
		{"a not-ready endpoint without a zone does not count", v1alpha1.TrafficDistributionPreferSameZone, []Endpoint{a1, b1, noZoneDown},
			[][2]string{{"zone-a", ""}, {"zone-b", ""}, none}, ""},
		{"a static backend in traffic withholds every hint", v1alpha1.TrafficDistributionPreferSameZone, []Endpoint{a1, b1, static},
			[][2]string{none, none, none}, "endpoint 192.0.2.10 has no zone: a static backend is on no node"},
		{"a static backend out of traffic does not count", v1alpha1.TrafficDistributionPreferSameZone, []Endpoint{a1, b1, staticDown},
			[][2]string{{"zone-a", ""}, {"zone-b", ""}, none}, ""},
		{"nothing ready, nothing to steer", v1alpha1.TrafficDistributionPreferSameZone, []Endpoint{b1Down}, [][2]string{none}, ""},
		{"stale hints are cleared", "", []Endpoint{func() Endpoint { e := a1; e.HintZone, e.HintNode = "zone-a", "n1"; return e }()}, [][2]string{none}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]Endpoint(nil), tc.eps...)
			got := Hints(tc.dist, tc.eps)
			if got.Withheld != tc.withheld {
				t.Errorf("withheld %q, want %q", got.Withheld, tc.withheld)
			}
			if len(got.Endpoints) != len(tc.want) {
				t.Fatalf("%d endpoints, want %d", len(got.Endpoints), len(tc.want))
			}
			for i, ep := range got.Endpoints {
				if h := [2]string{ep.HintZone, ep.HintNode}; h != tc.want[i] {
					t.Errorf("endpoint %s hinted %q, want %q", ep.Address, h, tc.want[i])
				}
			}
			if !reflect.DeepEqual(in, tc.eps) {
				t.Error("Hints changed its argument")
			}
		})
	}
}

// TestHintsInSlices: the hints reach the published endpoints as
// hints.forZones and hints.forNodes, and a change of hints alone rewrites
// the slice.
func TestHintsInSlices(t *testing.T) {
	eps := []Endpoint{onNode("10.1.0.1", "n1", "zone-a", true), onNode("10.1.0.3", "n3", "zone-b", true)}
	plain := apply(nil, Reconcile(target, eps, nil))
	hinted := Hints(v1alpha1.TrafficDistributionPreferSameNode, eps)
	p := Reconcile(target, hinted.Endpoints, plain)
	if len(p.Update) != 1 || len(p.Create)+len(p.Delete) != 0 {
		t.Fatalf("plan %d create, %d update, %d delete; want one update", len(p.Create), len(p.Update), len(p.Delete))
	}
	want := map[string]*discoveryv1.EndpointHints{
		"10.1.0.1": {ForZones: []discoveryv1.ForZone{{Name: "zone-a"}}, ForNodes: []discoveryv1.ForNode{{Name: "n1"}}},
		"10.1.0.3": {ForZones: []discoveryv1.ForZone{{Name: "zone-b"}}, ForNodes: []discoveryv1.ForNode{{Name: "n3"}}},
	}
	for _, ep := range p.Update[0].Endpoints {
		if !equality.Semantic.DeepEqual(ep.Hints, want[ep.Addresses[0]]) {
			t.Errorf("%s hints %+v, want %+v", ep.Addresses[0], ep.Hints, want[ep.Addresses[0]])
		}
	}
	back := Reconcile(target, Hints("", eps).Endpoints, apply(plain, p))
	if len(back.Update) != 1 {
		t.Fatalf("dropping the hints: %d updates, want 1", len(back.Update))
	}
	for _, ep := range back.Update[0].Endpoints {
		if ep.Hints != nil {
			t.Errorf("%s keeps hints %+v", ep.Addresses[0], ep.Hints)
		}
	}
	if again := Reconcile(target, hinted.Endpoints, apply(plain, p)); again.Unchanged != 1 || len(again.Update) != 0 {
		t.Errorf("same hints again: %d unchanged, %d updates; want 1 unchanged", again.Unchanged, len(again.Update))
	}
}
