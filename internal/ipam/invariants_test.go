package ipam

import (
	"math/big"
	"testing"
)

// checkInvariants checks the Allocator's structures against each other: every
// assigned address is in its pool and in no gap, owners and addresses agree,
// the gap trees are ordered, disjoint and balanced, and for every pool and
// family the free addresses in the gaps plus the assigned ones make the total.
func checkInvariants(t testing.TB, a *Allocator) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()

	assigned := map[string]*[2]int64{}
	for name := range a.pools {
		assigned[name] = new([2]int64)
	}
	for addr, h := range a.addrs {
		st := a.pools[h.pool]
		if st == nil {
			t.Fatalf("%s held by %s in pool %q, which is not in use", addr, h.owner, h.pool)
		}
		fi, x := addrIndex(addr)
		if a.lookup(fi, x) != st || !st.gives(fi, x) {
			t.Fatalf("%s recorded in pool %q, which does not give it", addr, h.pool)
		}
		if g := st.free[fi].floor(x); g != nil && !g.end.less(x) {
			t.Fatalf("assigned %s is inside free gap %s-%s", addr, g.start.addr(fi), g.end.addr(fi))
		}
		if a.owners[h.owner][fi] != addr {
			t.Fatalf("%s held by %s, whose %s address is %s", addr, h.owner, famOf(fi), a.owners[h.owner][fi])
		}
		assigned[h.pool][fi]++
	}
	for owner, held := range a.owners {
		if !held[fam4].IsValid() && !held[fam6].IsValid() {
			t.Fatalf("owner %s recorded with no address", owner)
		}
		for fi, addr := range held {
			if addr.IsValid() && (a.addrs[addr].owner != owner || FamilyOf(addr) != famOf(fi)) {
				t.Fatalf("owner %s lists %s, held by %q", owner, addr, a.addrs[addr].owner)
			}
		}
	}
	for name, st := range a.pools {
		for fi := range 2 {
			if st.assigned[fi] != assigned[name][fi] {
				t.Fatalf("pool %s %s: assigned count %d, but %d addresses are held",
					name, famOf(fi), st.assigned[fi], assigned[name][fi])
			}
			checkAVL(t, st.free[fi].root)
			free := new(big.Int)
			var prev *gap
			n := 0
			walkGaps(st.free[fi].root, func(g *gap) {
				n++
				if g.end.less(g.start) {
					t.Fatalf("pool %s: gap %v-%v reversed", name, g.start, g.end)
				}
				if prev != nil && !prev.end.less(g.start) {
					t.Fatalf("pool %s: gaps out of order or overlapping", name)
				}
				if a.lookup(fi, g.start) != st || a.lookup(fi, g.end) != st || !st.gives(fi, g.start) || !st.gives(fi, g.end) {
					t.Fatalf("pool %s: gap %s-%s ends on an address the pool does not give",
						name, g.start.addr(fi), g.end.addr(fi))
				}
				size := g.end.sub(g.start).big()
				size.Add(size, big.NewInt(1))
				if st.pool.AvoidBuggyIPs && fi == fam4 {
					size.Sub(size, new(big.Int).SetUint64(countBuggy(g.start.lo, g.end.lo)))
				}
				free.Add(free, size)
				prev = g
			})
			if n != st.free[fi].len {
				t.Fatalf("pool %s: %d gaps, len says %d", name, n, st.free[fi].len)
			}
			if sum := free.Add(free, big.NewInt(st.assigned[fi])); sum.Cmp(st.total[fi]) != 0 {
				t.Fatalf("pool %s %s: free %s + assigned %d != total %s",
					name, famOf(fi), free, st.assigned[fi], st.total[fi])
			}
		}
	}
}

func checkAVL(t testing.TB, n *gap) int8 {
	t.Helper()
	if n == nil {
		return 0
	}
	l, r := checkAVL(t, n.left), checkAVL(t, n.right)
	if l-r > 1 || r-l > 1 || n.height != 1+max(l, r) {
		t.Fatalf("gap tree out of balance at %v: left %d right %d height %d", n.start, l, r, n.height)
	}
	return n.height
}

func walkGaps(n *gap, visit func(*gap)) {
	if n == nil {
		return
	}
	walkGaps(n.left, visit)
	visit(n)
	walkGaps(n.right, visit)
}
