package ipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// model is a naive allocator that lists every address of its (small) pools.
// TestAllocatorAgainstModel runs random operations on both and compares.
type model struct {
	pools  []modelPool
	holder map[netip.Addr]types.NamespacedName
	poolOf map[netip.Addr]string
	owned  map[types.NamespacedName][2]netip.Addr
}

type modelPool struct {
	Pool
	addrs [2][]netip.Addr // the addresses it gives, ascending
}

func newModel() *model {
	return &model{holder: map[netip.Addr]types.NamespacedName{}, poolOf: map[netip.Addr]string{}, owned: map[types.NamespacedName][2]netip.Addr{}}
}

func modelGives(p Pool, addr netip.Addr) bool {
	if p.AvoidBuggyIPs && addr.Is4() {
		last := addr.As4()[3]
		return last != 0 && last != 255
	}
	return true
}

func (m *model) setPools(pools []Pool) []Assignment {
	m.pools = nil
	for _, p := range pools {
		mp := modelPool{Pool: p}
		for _, r := range p.Ranges {
			for addr := r.First; addr.IsValid() && addr.Compare(r.Last) <= 0; addr = addr.Next() {
				if modelGives(p, addr) {
					fi, _ := famIndex(FamilyOf(addr))
					mp.addrs[fi] = append(mp.addrs[fi], addr)
				}
			}
		}
		m.pools = append(m.pools, mp)
	}
	var orphans []Assignment
	for addr, owner := range m.holder {
		if p := m.find(addr); p != nil && modelGives(p.Pool, addr) {
			m.poolOf[addr] = p.Name
			continue
		}
		orphans = append(orphans, Assignment{Owner: owner, Addr: addr, Pool: m.poolOf[addr]})
		m.drop(addr)
	}
	slices.SortFunc(orphans, func(x, y Assignment) int {
		if x.Owner != y.Owner {
			if x.Owner.String() < y.Owner.String() {
				return -1
			}
			return 1
		}
		return x.Addr.Compare(y.Addr)
	})
	return orphans
}

func (m *model) find(addr netip.Addr) *modelPool {
	for i, p := range m.pools {
		for _, r := range p.Ranges {
			if r.Contains(addr) {
				return &m.pools[i]
			}
		}
	}
	return nil
}

func (m *model) drop(addr netip.Addr) {
	owner := m.holder[addr]
	held := m.owned[owner]
	for fi := range held {
		if held[fi] == addr {
			held[fi] = netip.Addr{}
		}
	}
	if held[0].IsValid() || held[1].IsValid() {
		m.owned[owner] = held
	} else {
		delete(m.owned, owner)
	}
	delete(m.holder, addr)
	delete(m.poolOf, addr)
}

func (m *model) give(owner types.NamespacedName, addr netip.Addr, pool string) {
	fi, _ := famIndex(FamilyOf(addr))
	if old := m.owned[owner][fi]; old.IsValid() {
		m.drop(old)
	}
	held := m.owned[owner]
	held[fi] = addr
	m.owned[owner] = held
	m.holder[addr] = owner
	m.poolOf[addr] = pool
}

func (m *model) claim(owner types.NamespacedName, addr netip.Addr, eligible []string) error {
	p := m.find(addr)
	switch {
	case p == nil || !modelGives(p.Pool, addr):
		return ErrNotInAnyPool
	case !slices.Contains(eligible, p.Name):
		return ErrPoolNotAllowed
	case m.holder[addr] == owner:
		return nil
	case m.holder[addr] != (types.NamespacedName{}):
		return ErrTaken
	}
	m.give(owner, addr, p.Name)
	return nil
}

func (m *model) allocate(owner types.NamespacedName, f Family, eligible []string) (netip.Addr, error) {
	fi, _ := famIndex(f)
	if cur := m.owned[owner][fi]; cur.IsValid() && slices.Contains(eligible, m.poolOf[cur]) {
		return cur, nil
	}
	hasFamily := false
	for _, name := range eligible {
		for _, p := range m.pools {
			if p.Name != name || len(p.addrs[fi]) == 0 {
				continue
			}
			hasFamily = true
			for _, addr := range p.addrs[fi] {
				if m.holder[addr] == (types.NamespacedName{}) {
					m.give(owner, addr, p.Name)
					return addr, nil
				}
			}
		}
	}
	if !hasFamily {
		return netip.Addr{}, ErrNoEligiblePool
	}
	return netip.Addr{}, ErrPoolExhausted
}

func (m *model) release(owner types.NamespacedName) []netip.Addr {
	var out []netip.Addr
	for _, addr := range m.owned[owner] {
		if addr.IsValid() {
			out = append(out, addr)
			m.drop(addr)
		}
	}
	return out
}

func sentinel(err error) error {
	for _, s := range []error{ErrNotInAnyPool, ErrPoolNotAllowed, ErrTaken, ErrPoolExhausted, ErrNoEligiblePool} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

func TestAllocatorAgainstModel(t *testing.T) {
	poolSets := [][]Pool{
		{
			parsed(t, avoiding(spec("p1", "10.0.0.250-10.0.1.5", "10.0.3.0/30", "10.0.1.255-10.0.2.0"))),
			parsed(t, spec("p2", "2001:db8::/126", "10.0.2.8/29")),
			parsed(t, spec("p3", "2001:db8::10-2001:db8::13", "10.0.0.240/29")),
		},
		{
			parsed(t, spec("p1", "10.0.0.248-10.0.1.2")),
			parsed(t, spec("p2", "2001:db8::/126", "10.0.2.8/29")),
			parsed(t, avoiding(spec("p4", "2001:db8::4/126", "10.0.3.0/29", "10.0.1.254-10.0.2.1"))),
		},
	}
	var candidates []netip.Addr
	for _, r := range []string{"10.0.0.236-10.0.1.8", "10.0.1.250-10.0.2.20", "10.0.3.0/28", "2001:db8::-2001:db8::20"} {
		rg := mustRange(t, r)
		for addr := rg.First; addr.Compare(rg.Last) <= 0; addr = addr.Next() {
			candidates = append(candidates, addr)
		}
	}
	poolNames := []string{"p1", "p2", "p3", "p4", "nope"}

	rng := rand.New(rand.NewPCG(1, 2))
	a, m := NewAllocator(), newModel()
	set := 0
	if _, err := a.SetPools(poolSets[set]); err != nil {
		t.Fatal(err)
	}
	m.setPools(poolSets[set])
	owner := func() types.NamespacedName { return key(fmt.Sprintf("ns/o%d", rng.IntN(40))) }
	family := func() Family { return []Family{IPv4, IPv6}[rng.IntN(2)] }
	eligible := func() []string {
		names := slices.Clone(poolNames)
		rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		return names[:rng.IntN(len(names)+1)]
	}
	for i := range 20000 {
		var desc, got, want string
		switch op := rng.IntN(100); {
		case op < 40:
			o, f, e := owner(), family(), eligible()
			desc = fmt.Sprintf("Allocate(%s, %s, %v)", o, f, e)
			addr, err := a.Allocate(o, f, e)
			maddr, merr := m.allocate(o, f, e)
			got, want = fmt.Sprint(addr, sentinel(err)), fmt.Sprint(maddr, merr)
		case op < 70:
			o, addr, e := owner(), candidates[rng.IntN(len(candidates))], eligible()
			desc = fmt.Sprintf("Claim(%s, %s, %v)", o, addr, e)
			got, want = fmt.Sprint(sentinel(a.Claim(o, addr, e))), fmt.Sprint(m.claim(o, addr, e))
		case op < 90:
			o := owner()
			desc = "Release(" + o.String() + ")"
			got, want = fmt.Sprint(a.Release(o)), fmt.Sprint(m.release(o))
		case op < 97:
			o, f := owner(), family()
			desc = fmt.Sprintf("ReleaseFamily(%s, %s)", o, f)
			addr, ok := a.ReleaseFamily(o, f)
			fi, _ := famIndex(f)
			maddr := m.owned[o][fi]
			if maddr.IsValid() {
				m.drop(maddr)
			}
			got, want = fmt.Sprint(addr, ok), fmt.Sprint(maddr, maddr.IsValid())
		default:
			set = 1 - set
			desc = fmt.Sprintf("SetPools(set %d)", set)
			orphans, err := a.SetPools(poolSets[set])
			if err != nil {
				t.Fatal(err)
			}
			got, want = fmt.Sprint(orphans), fmt.Sprint(m.setPools(poolSets[set]))
		}
		if got != want {
			t.Fatalf("op %d %s = %s, model says %s", i, desc, got, want)
		}
		checkInvariants(t, a)
		compareWithModel(t, i, a, m)
	}
}

func compareWithModel(t *testing.T, i int, a *Allocator, m *model) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.addrs) != len(m.holder) {
		t.Fatalf("op %d: %d addresses assigned, model has %d", i, len(a.addrs), len(m.holder))
	}
	for addr, h := range a.addrs {
		if m.holder[addr] != h.owner || m.poolOf[addr] != h.pool {
			t.Fatalf("op %d: %s held by %s in %s, model says %s in %s", i, addr, h.owner, h.pool, m.holder[addr], m.poolOf[addr])
		}
	}
	for _, p := range m.pools {
		st := a.pools[p.Name]
		for fi := range 2 {
			if got := st.total[fi].Int64(); got != int64(len(p.addrs[fi])) {
				t.Fatalf("op %d: pool %s %s total %d, model has %d", i, p.Name, famOf(fi), got, len(p.addrs[fi]))
			}
		}
	}
}

func parsed(t testing.TB, s PoolSpec) Pool {
	t.Helper()
	p, err := ParsePool(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
