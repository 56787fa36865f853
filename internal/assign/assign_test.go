package assign

import (
	"fmt"
	"net/netip"
	"slices"
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

var teamA = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}

func addressPool(name string, age int, auto *bool, sel *metav1.LabelSelector, addrs ...string) v1alpha1.AddressPool {
	return v1alpha1.AddressPool{
		ObjectMeta: metav1.ObjectMeta{
			Name:              name,
			Generation:        int64(age + 1),
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, age, 0, time.UTC)),
		},
		Spec: v1alpha1.AddressPoolSpec{Addresses: addrs, AutoAssign: auto, NamespaceSelector: sel},
	}
}

func TestPools(t *testing.T) {
	badSelector := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Near"}}}
	views, usable := Pools([]v1alpha1.AddressPool{
		addressPool("old", 0, nil, nil, "10.0.0.0/24"),
		addressPool("manual", 1, ptr.To(false), teamA, "10.0.1.0/24"),
		addressPool("newer", 2, nil, nil, "10.0.0.128/25"),
		addressPool("selector", 3, nil, badSelector, "10.0.2.0/24"),
		addressPool("reversed", 4, nil, nil, "10.0.3.9-10.0.3.1"),
	})
	var names []string
	for _, u := range usable {
		names = append(names, u.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"manual", "old"}) {
		t.Errorf("usable pools = %v, want [manual old]", names)
	}
	tests := []struct {
		name       string
		inUse      bool
		autoAssign bool
		reason     string
		message    string
		// matchesA and matchesB: a pool in use selects a namespace labelled
		// team=a, and an unlabelled one.
		matchesA bool
		matchesB bool
	}{
		{name: "old", inUse: true, autoAssign: true, matchesA: true, matchesB: true},
		{name: "manual", inUse: true, matchesA: true},
		{name: "newer", autoAssign: true, reason: v1alpha1.AddressPoolReasonOverlap, message: "remove the shared addresses"},
		{name: "selector", autoAssign: true, reason: v1alpha1.AddressPoolReasonInvalid, message: "namespaceSelector is invalid"},
		{name: "reversed", autoAssign: true, reason: v1alpha1.AddressPoolReasonInvalid, message: "fix the pool's addresses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := views[tt.name]
			if v == nil {
				t.Fatal("no view")
			}
			if v.InUse != tt.inUse || v.AutoAssign != tt.autoAssign || v.Reason != tt.reason {
				t.Errorf("view = %+v, want inUse %v autoAssign %v reason %q", *v, tt.inUse, tt.autoAssign, tt.reason)
			}
			if tt.message != "" && !strings.Contains(v.Message, tt.message) {
				t.Errorf("message %q does not contain %q", v.Message, tt.message)
			}
			if v.InUse {
				if got := v.Selector.Matches(labels.Set{"team": "a"}); got != tt.matchesA {
					t.Errorf("selects team a: %v, want %v", got, tt.matchesA)
				}
				if got := v.Selector.Matches(labels.Set{}); got != tt.matchesB {
					t.Errorf("selects an unlabelled namespace: %v, want %v", got, tt.matchesB)
				}
			}
			if v.Generation == 0 {
				t.Error("generation not recorded")
			}
		})
	}
}

func TestEligible(t *testing.T) {
	views, usable := Pools([]v1alpha1.AddressPool{
		addressPool("b-auto", 0, nil, nil, "10.0.0.0/24"),
		addressPool("a-manual", 1, ptr.To(false), nil, "10.0.1.0/24"),
		addressPool("c-team", 2, nil, teamA, "10.0.2.0/24"),
		addressPool("shadow", 3, nil, nil, "10.0.0.0/28"),
	})
	alloc := ipam.NewAllocator()
	if _, err := alloc.SetPools(usable); err != nil {
		t.Fatal(err)
	}
	inUse := alloc.Pools()
	req := func(pool string, nsLabels labels.Set) Request {
		return Request{Namespace: "shop", NamespaceLabels: nsLabels, Pool: pool, PoolField: "the pool field"}
	}
	plain, team := labels.Set{}, labels.Set{"team": "a"}
	tests := []struct {
		name       string
		req        Request
		keep, give []string
		reason     string
		message    string
	}{
		{name: "any pool, plain namespace", req: req("", plain), keep: []string{"a-manual", "b-auto"}, give: []string{"b-auto"}},
		{name: "any pool, team namespace", req: req("", team), keep: []string{"a-manual", "b-auto", "c-team"}, give: []string{"b-auto", "c-team"}},
		{name: "named pool without autoAssign", req: req("a-manual", plain), keep: []string{"a-manual"}, give: []string{"a-manual"}},
		{name: "named pool selecting the namespace", req: req("c-team", team), keep: []string{"c-team"}, give: []string{"c-team"}},
		{name: "named pool missing", req: req("gone", plain), reason: v1alpha1.AddressReasonNoPool,
			message: "AddressPool gone, named by the pool field, does not exist"},
		{name: "named pool not in use", req: req("shadow", plain), reason: v1alpha1.AddressReasonNoPool,
			message: "AddressPool shadow, named by the pool field, is not in use (Overlap)"},
		{name: "named pool not selecting the namespace", req: req("c-team", plain), reason: v1alpha1.AddressReasonPoolNotAllowed,
			message: "does not select namespace shop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep, give, err := Eligible(tt.req, views, inUse)
			if (err == nil) != (tt.reason == "") {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				refusal := Condition(Outcome{}, err, 0)
				if refusal.Reason != tt.reason || !strings.Contains(refusal.Message, tt.message) || refusal.Status != metav1.ConditionFalse || keep != nil || give != nil {
					t.Errorf("refusal = %+v, keep %v give %v; want %s containing %q", refusal, keep, give, tt.reason, tt.message)
				}
				return
			}
			if !slices.Equal(keep, tt.keep) || !slices.Equal(give, tt.give) {
				t.Errorf("keep %v give %v, want keep %v give %v", keep, give, tt.keep, tt.give)
			}
		})
	}
}

func TestRequested(t *testing.T) {
	tests := []struct {
		address string
		want    string // "" when refused
	}{
		{"192.0.2.7", "192.0.2.7"},
		{"2001:db8::7", "2001:db8::7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"fe80::1%eth0", ""},
		{"192.0.2.0/24", ""},
		{"web.example.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			addr, err := Requested(Request{Address: tt.address, AddressField: "the address field"})
			refusal := Condition(Outcome{}, err, 0)
			switch {
			case tt.want == "" && err == nil:
				t.Fatalf("accepted as %s", addr)
			case tt.want == "":
				want := fmt.Sprintf("requested address %q (the address field) is not an IP address; fix the address field", tt.address)
				if refusal.Reason != v1alpha1.AddressReasonAddressNotInPool || refusal.Message != want {
					t.Errorf("refusal = %+v, want %q", refusal, want)
				}
			case err != nil || addr != netip.MustParseAddr(tt.want):
				t.Errorf("Requested = %s, %v; want %s", addr, err, tt.want)
			}
		})
	}
}

func TestClaimRefused(t *testing.T) {
	addr := netip.MustParseAddr("192.0.2.7")
	holder := types.NamespacedName{Namespace: "shop", Name: "web"}
	base := Request{Namespace: "shop", AddressField: "the address field", PoolField: "the pool field"}
	named := base
	named.Pool = "mine"
	tests := []struct {
		name    string
		req     Request
		pool    string
		err     error
		reason  string
		message string
	}{
		{"taken", base, "p", fmt.Errorf("claiming: %w", &ipam.TakenError{Addr: addr, Holder: holder, Pool: "p"}), v1alpha1.AddressReasonAddressTaken,
			"requested address 192.0.2.7 (the address field) is assigned to Service shop/web; request another address, or remove the address field to get any free one"},
		{"outside the named pool", named, "p", ipam.ErrPoolNotAllowed, v1alpha1.AddressReasonPoolNotAllowed,
			"requested address 192.0.2.7 (the address field) is in AddressPool p, not in pool mine named by the pool field; request an address of pool mine, or name pool p"},
		{"pool not selecting the namespace", base, "p", ipam.ErrPoolNotAllowed, v1alpha1.AddressReasonPoolNotAllowed,
			"requested address 192.0.2.7 (the address field) is in AddressPool p, whose namespaceSelector does not select namespace shop; label the namespace to match, or request an address of another pool"},
		{"avoided by its pool", base, "p", ipam.ErrNotInAnyPool, v1alpha1.AddressReasonAddressNotInPool,
			"requested address 192.0.2.7 (the address field) is in AddressPool p, which avoids addresses ending in .0 and .255; request another address"},
		{"in no pool", base, "", ipam.ErrNotInAnyPool, v1alpha1.AddressReasonAddressNotInPool,
			"requested address 192.0.2.7 (the address field) is in no AddressPool in use; request an address inside a pool, or remove the address field to get any free one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ClaimRefused(tt.req, addr, tt.pool, tt.err)
			if got.Reason != tt.reason || got.Message != tt.message {
				t.Errorf("ClaimRefused = %+v\nwant %s %q", got, tt.reason, tt.message)
			}
		})
	}
}

func TestOutcomes(t *testing.T) {
	req := Request{Namespace: "shop", PoolField: "the pool field"}
	tests := []struct {
		name    string
		got     Outcome
		err     error
		reason  string
		message string
	}{
		{"given", Given(netip.MustParseAddr("2001:db8::1"), "v6"), nil, v1alpha1.AddressReasonAssigned, "address 2001:db8::1 from pool v6"},
		{"no pool to give", Outcome{}, NoPoolToGive(req), v1alpha1.AddressReasonNoPool,
			"no AddressPool in use with autoAssign selects namespace shop; create one whose namespaceSelector selects it, or name a pool with the pool field"},
		{"exhausted", Outcome{}, AllocateRefused(req, ipam.IPv4, []string{"a", "b"}, fmt.Errorf("allocating: %w", ipam.ErrPoolExhausted)), v1alpha1.AddressReasonPoolExhausted,
			"every IPv4 address of AddressPool a, b is assigned; add addresses to a pool, delete a LoadBalancer Service that holds one, or name another pool with the pool field; the Service gets an address as soon as one is free"},
		{"no address of the family", Outcome{}, AllocateRefused(req, ipam.IPv6, []string{"a"}, ipam.ErrNoEligiblePool), v1alpha1.AddressReasonNoPool,
			"no IPv6 addresses in AddressPool a that namespace shop may use; add IPv6 addresses to a pool, or change the Service's ipFamilies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cond := Condition(tt.got, tt.err, 3)
			if cond.Reason != tt.reason || cond.Message != tt.message || cond.Type != v1alpha1.ServiceConditionAddressAssigned || cond.ObservedGeneration != 3 {
				t.Errorf("got %+v\nwant %s %q", cond, tt.reason, tt.message)
			}
			if tt.got.Assigned() != (tt.reason == v1alpha1.AddressReasonAssigned) || (cond.Status == metav1.ConditionTrue) != tt.got.Assigned() {
				t.Errorf("Assigned() = %v, condition %s", tt.got.Assigned(), cond.Status)
			}
		})
	}
}

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
