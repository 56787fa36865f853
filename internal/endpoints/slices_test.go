package endpoints

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var target = Target{Namespace: "shop", ServiceName: "web", ManagedBy: "test", Owner: metav1.OwnerReference{Name: "web", UID: "u1"}}

func endpointsN(n int, prefix string) []Endpoint {
	var eps []Endpoint
	for i := range n {
		addr := netip.MustParseAddr(fmt.Sprintf("%s.%d.%d", prefix, i/250, i%250+1))
		eps = append(eps, Endpoint{Address: addr, Ready: true, Serving: true, Ports: []Port{{Name: "http", Protocol: corev1.ProtocolTCP, Number: 8080}}})
	}
	return eps
}

// apply turns a plan into the slices that would then exist.
func apply(existing []discoveryv1.EndpointSlice, p Plan) []discoveryv1.EndpointSlice {
	byName := map[string]discoveryv1.EndpointSlice{}
	for _, s := range existing {
		byName[s.Name] = s
	}
	for _, s := range p.Delete {
		delete(byName, s.Name)
	}
	for _, s := range append(p.Create, p.Update...) {
		byName[s.Name] = *s
	}
	var out []discoveryv1.EndpointSlice
	for _, s := range byName {
		out = append(out, s)
	}
	return out
}

func TestReconcile(t *testing.T) {
	v6 := Endpoint{Address: netip.MustParseAddr("2001:db8::5"), Ready: true, Serving: true, Ports: []Port{{Name: "http", Protocol: corev1.ProtocolTCP, Number: 8080}}}
	otherPort := Endpoint{Address: netip.MustParseAddr("10.9.0.1"), Ready: true, Serving: true, Ports: []Port{{Name: "http", Protocol: corev1.ProtocolTCP, Number: 9090}}}
	cases := []struct {
		name                                   string
		eps                                    []Endpoint
		create, update, del, unchanged, slices int
	}{
		{"none", nil, 0, 0, 0, 0, 0},
		{"one", endpointsN(1, "10.1"), 1, 0, 0, 0, 1},
		{"250 make 3 slices", endpointsN(250, "10.1"), 3, 0, 0, 0, 3},
		{"families apart", append(endpointsN(3, "10.1"), v6), 2, 0, 0, 0, 2},
		{"port mappings apart", append(endpointsN(3, "10.1"), otherPort), 2, 0, 0, 0, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Reconcile(target, tc.eps, nil)
			if len(p.Create) != tc.create || len(p.Update) != tc.update || len(p.Delete) != tc.del || p.Unchanged != tc.unchanged {
				t.Fatalf("plan create=%d update=%d delete=%d unchanged=%d", len(p.Create), len(p.Update), len(p.Delete), p.Unchanged)
			}
			now := apply(nil, p)
			if len(now) != tc.slices {
				t.Fatalf("%d slices, want %d", len(now), tc.slices)
			}
			for _, s := range now {
				if len(s.Endpoints) > MaxPerSlice {
					t.Fatalf("slice %s has %d endpoints", s.Name, len(s.Endpoints))
				}
				if s.Labels[discoveryv1.LabelServiceName] != "web" || s.Labels[discoveryv1.LabelManagedBy] != "test" {
					t.Fatalf("labels %v", s.Labels)
				}
			}
			// Nothing changed: nothing to write.
			again := Reconcile(target, tc.eps, now)
			if len(again.Create)+len(again.Update)+len(again.Delete) != 0 || again.Unchanged != tc.slices {
				t.Fatalf("second plan writes: %+v", again)
			}
		})
	}
}

func TestOneFlipRewritesOneSlice(t *testing.T) {
	eps := endpointsN(250, "10.1")
	now := apply(nil, Reconcile(target, eps, nil))
	eps[120].Ready, eps[120].Serving = false, false
	p := Reconcile(target, eps, now)
	if len(p.Update) != 1 || len(p.Create)+len(p.Delete) != 0 || p.Unchanged != 2 {
		t.Fatalf("flip plan: create=%d update=%d delete=%d unchanged=%d", len(p.Create), len(p.Update), len(p.Delete), p.Unchanged)
	}
}

func TestEndpointsStayInTheirSlice(t *testing.T) {
	eps := endpointsN(250, "10.1")
	now := apply(nil, Reconcile(target, eps, nil))
	where := map[string]string{}
	for _, s := range now {
		for _, e := range s.Endpoints {
			where[e.Addresses[0]] = s.Name
		}
	}
	// Remove one from the first slice and add a new one: it takes the freed
	// room, so one slice is rewritten and nothing moves.
	eps = append(eps[1:], Endpoint{Address: netip.MustParseAddr("10.0.0.1"), Ready: true, Serving: true, Ports: eps[0].Ports})
	p := Reconcile(target, eps, now)
	if len(p.Create) != 0 || len(p.Delete) != 0 || len(p.Update) != 1 {
		t.Fatalf("plan: create=%d update=%d delete=%d", len(p.Create), len(p.Update), len(p.Delete))
	}
	for _, s := range apply(now, p) {
		for _, e := range s.Endpoints {
			if old, ok := where[e.Addresses[0]]; ok && old != s.Name {
				t.Fatalf("%s moved from %s to %s", e.Addresses[0], old, s.Name)
			}
		}
	}
}

func TestEmptySlicesAreDeleted(t *testing.T) {
	now := apply(nil, Reconcile(target, endpointsN(150, "10.1"), nil))
	p := Reconcile(target, nil, now)
	if len(p.Delete) != 2 {
		t.Fatalf("delete %d, want 2", len(p.Delete))
	}
}

func TestReconcileLabelsHeadlessSlices(t *testing.T) {
	headless := target
	headless.Headless = true
	eps := endpointsN(3, "10.1")

	p := Reconcile(headless, eps, nil)
	if len(p.Create) != 1 {
		t.Fatalf("plan %+v", p)
	}
	if v, ok := p.Create[0].Labels[corev1.IsHeadlessService]; !ok || v != "" {
		t.Fatalf("labels %v, want %s=\"\"", p.Create[0].Labels, corev1.IsHeadlessService)
	}
	existing := apply(nil, p)
	if p := Reconcile(headless, eps, existing); p.Unchanged != 1 || len(p.Update) != 0 {
		t.Errorf("headless again: %d updates, %d unchanged", len(p.Update), p.Unchanged)
	}

	// No longer headless: the label goes, others' labels stay.
	existing[0].Labels["team"] = "web"
	p = Reconcile(target, eps, existing)
	if len(p.Update) != 1 {
		t.Fatalf("not headless: %d updates, %d unchanged, want the label taken off", len(p.Update), p.Unchanged)
	}
	if _, ok := p.Update[0].Labels[corev1.IsHeadlessService]; ok || p.Update[0].Labels["team"] != "web" {
		t.Errorf("labels after the change %v", p.Update[0].Labels)
	}
	existing = apply(existing, p)
	if p := Reconcile(target, eps, existing); p.Unchanged != 1 || len(p.Update) != 0 {
		t.Errorf("not headless again: %d updates, %d unchanged", len(p.Update), p.Unchanged)
	}
}

// TestSlicesCarryTheTriggerTime: every slice written carries
// endpoints.kubernetes.io/last-change-trigger-time: the probe time that
// decided a flip when a probe dated it, the time the change was seen
// otherwise, the earliest of several; a probe time from before the slice's
// last write dates nothing; a slice left alone keeps what it had.
func TestSlicesCarryTheTriggerTime(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339Nano) }
	tg := target
	tg.Now = t0
	eps := endpointsN(150, "10.1") // two slices: 100 and 50
	slices := apply(nil, Reconcile(tg, eps, nil))
	for _, s := range slices {
		if got := s.Annotations[corev1.EndpointsLastChangeTriggerTime]; got != at(0) {
			t.Fatalf("created slice %s: trigger time %q, want %q", s.Name, got, at(0))
		}
	}
	sliceOf := func(slices []discoveryv1.EndpointSlice, addr string) *discoveryv1.EndpointSlice {
		for i := range slices {
			for _, ep := range slices[i].Endpoints {
				if ep.Addresses[0] == addr {
					return &slices[i]
				}
			}
		}
		t.Fatalf("%s is in no slice", addr)
		return nil
	}

	// Two probe flips in the first slice, at +3s and +2s, reconciled at
	// +5s: the earlier probe dates the write.
	tg.Now = t0.Add(5 * time.Second)
	eps[0].Ready, eps[0].Serving, eps[0].Changed = false, false, t0.Add(3*time.Second)
	eps[1].Ready, eps[1].Serving, eps[1].Changed = false, false, t0.Add(2*time.Second)
	// A dated endpoint whose state did not change dates nothing.
	eps[2].Changed = t0.Add(time.Second)
	p := Reconcile(tg, eps, slices)
	if len(p.Update) != 1 || p.Unchanged != 1 {
		t.Fatalf("plan: update=%d unchanged=%d, want 1 and 1", len(p.Update), p.Unchanged)
	}
	if got := p.Update[0].Annotations[corev1.EndpointsLastChangeTriggerTime]; got != at(2*time.Second) {
		t.Errorf("after two probe flips: trigger time %q, want the earlier probe's %q", got, at(2*time.Second))
	}
	slices = apply(slices, p)
	if got := sliceOf(slices, eps[149].Address.String()).Annotations[corev1.EndpointsLastChangeTriggerTime]; got != at(0) {
		t.Errorf("the slice left alone: trigger time %q, want its own %q", got, at(0))
	}

	// A change no probe dated (a pod turned not ready) is dated when seen;
	// so is one whose probe time is older than the slice's last write.
	tg.Now = t0.Add(9 * time.Second)
	eps[0].Ready, eps[0].Serving = true, true
	eps[0].Changed = t0.Add(time.Second) // before the last write, dated +2s
	eps[3].Ready, eps[3].Serving = false, false
	p = Reconcile(tg, eps, slices)
	if len(p.Update) != 1 {
		t.Fatalf("plan: update=%d, want 1", len(p.Update))
	}
	if got := p.Update[0].Annotations[corev1.EndpointsLastChangeTriggerTime]; got != at(9*time.Second) {
		t.Errorf("undated changes: trigger time %q, want the time seen %q", got, at(9*time.Second))
	}
}
