package assign

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/ipam"
)

// TestAssignDecisions covers the decisions and their messages without an
// API server.
func TestAssignDecisions(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	pool := func(name string, auto bool, sel *metav1.LabelSelector, addrs ...string) v1alpha1.AddressPool {
		return v1alpha1.AddressPool{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: created},
			Spec:       v1alpha1.AddressPoolSpec{Addresses: addrs, AutoAssign: ptr.To(auto), NamespaceSelector: sel},
		}
	}
	teamA := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	pools := []v1alpha1.AddressPool{
		pool("one", true, nil, "10.0.0.0-10.0.0.1"),
		pool("manual", false, nil, "10.0.1.0/30"),
		pool("team-a", true, teamA, "10.0.2.0/30"),
		pool("v6", true, teamA, "2001:db8::/126"),
		pool("shadow", true, nil, "10.0.0.1/32"),
	}
	p := NewAllocator()
	if _, _, err := p.SetPools(pools); err != nil {
		t.Fatal(err)
	}
	if v, _ := p.Report("shadow"); v.InUse || v.Reason != v1alpha1.AddressPoolReasonOverlap {
		t.Fatalf("shadow pool: %+v", v)
	}

	ask := func(name, address, pool string, family ipam.Family, nsLabels labels.Set, current ...string) Request {
		req := Request{Key: types.NamespacedName{Namespace: "ns", Name: name}, Namespace: "ns", NamespaceLabels: nsLabels, Family: family, Address: address, Pool: pool,
			AddressField: "address", PoolField: "pool"}
		for _, c := range current {
			req.Current = append(req.Current, netip.MustParseAddr(c))
		}
		return req
	}
	plainNS, teamNS := labels.Set{}, labels.Set{"team": "a"}
	steps := []struct {
		req        Request
		addr       string
		reason     string
		msgContain string
	}{
		{ask("x", "", "", ipam.IPv4, plainNS), "10.0.0.0", v1alpha1.AddressReasonAssigned, "from pool one"},
		{ask("y", "", "", ipam.IPv4, plainNS), "10.0.0.1", v1alpha1.AddressReasonAssigned, "from pool one"},
		{ask("z", "", "", ipam.IPv4, plainNS), "", v1alpha1.AddressReasonPoolExhausted, "every IPv4 address of AddressPool one is assigned"},
		// The team namespace also draws from its own pool.
		{ask("t", "", "", ipam.IPv4, teamNS), "10.0.2.0", v1alpha1.AddressReasonAssigned, "from pool team-a"},
		{ask("t6", "", "", ipam.IPv6, teamNS), "2001:db8::", v1alpha1.AddressReasonAssigned, "from pool v6"},
		{ask("p6", "", "", ipam.IPv6, plainNS), "", v1alpha1.AddressReasonNoPool, "no IPv6 addresses"},
		// autoAssign false: only by name or by address.
		{ask("m", "", "manual", ipam.IPv4, plainNS), "10.0.1.0", v1alpha1.AddressReasonAssigned, "from pool manual"},
		{ask("r", "10.0.1.3", "", ipam.IPv4, plainNS), "10.0.1.3", v1alpha1.AddressReasonAssigned, "from pool manual"},
		{ask("r2", "10.0.1.3", "", ipam.IPv4, plainNS), "", v1alpha1.AddressReasonAddressTaken, "assigned to Service ns/r"},
		{ask("r3", "10.9.9.9", "", ipam.IPv4, plainNS), "", v1alpha1.AddressReasonAddressNotInPool, "in no AddressPool in use"},
		{ask("r4", "10.0.2.3", "", ipam.IPv4, plainNS), "", v1alpha1.AddressReasonPoolNotAllowed, "does not select namespace ns"},
		{ask("r5", "10.0.2.3", "manual", ipam.IPv4, teamNS), "", v1alpha1.AddressReasonPoolNotAllowed, "not in pool manual"},
		{ask("n1", "", "team-a", ipam.IPv4, plainNS), "", v1alpha1.AddressReasonPoolNotAllowed, "does not select namespace ns"},
		{ask("n2", "", "shadow", ipam.IPv4, plainNS), "", v1alpha1.AddressReasonNoPool, "is not in use (Overlap)"},
		{ask("n3", "", "missing", ipam.IPv4, plainNS), "", v1alpha1.AddressReasonNoPool, "does not exist"},
		// A Service keeps the address its status shows, even in a pool
		// without autoAssign, and moves when it may no longer use that
		// address's pool.
		{ask("kept", "", "", ipam.IPv4, plainNS, "10.0.1.2"), "10.0.1.2", v1alpha1.AddressReasonAssigned, "from pool manual"},
		{ask("moved", "", "manual", ipam.IPv4, teamNS, "10.0.2.1"), "10.0.1.1", v1alpha1.AddressReasonAssigned, "from pool manual"},
		{ask("t", "", "", ipam.IPv4, plainNS), "", v1alpha1.AddressReasonPoolExhausted, "AddressPool one"},
		{ask("z", "", "", ipam.IPv4, plainNS), "", v1alpha1.AddressReasonPoolExhausted, "AddressPool one"},
		{ask("x", "", "", ipam.IPv4, teamNS), "10.0.0.0", v1alpha1.AddressReasonAssigned, "from pool one"},
	}
	for i, s := range steps {
		out, err := p.Assign(s.req)
		got := ""
		if out.Assigned() {
			got = out.Addr.String()
		}
		cond := Condition(out, err, 0)
		if got != s.addr || cond.Reason != s.reason || !strings.Contains(cond.Message, s.msgContain) {
			t.Errorf("step %d (%s): got %q %s %q; want %q %s containing %q", i, s.req.Key, got, cond.Reason, cond.Message, s.addr, s.reason, s.msgContain)
		}
	}
	// A refused Service holds nothing: t's team-a address went back.
	if held := p.Holdings(types.NamespacedName{Namespace: "ns", Name: "t"}); len(held) != 0 {
		t.Errorf("refused Service still holds %v", held)
	}
	if _, c := p.Report("team-a"); c == nil || c.IPv4.Assigned != 0 {
		t.Errorf("team-a counts %+v, want 0 assigned", c)
	}
}
