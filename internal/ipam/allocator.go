package ipam

import (
	"cmp"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// Allocator gives addresses of usable pools to owners (the key of the
// object that holds the address, such as a Service) and remembers who holds what: at most one address of
// each family per owner. It is safe for concurrent use.
//
// Costs. Each pool keeps its free addresses as a balanced tree of g gaps
// (g is at most its ranges plus its assigned addresses, and is 1 for a pool
// given out from the bottom and never released from). Allocate walks to the
// lowest gap and takes its first address: O(log g), never a scan of the
// assigned addresses, so the 10,001st allocation costs what the first did.
// Claim and Release split or join the gap around the address: O(log g), plus
// O(log r) to find the pool among r ranges in all. SetPools is O(r log r),
// plus O(log g) per assignment of a pool whose addresses changed. Memory is
// O(r + assignments), whatever the size of the pools.
type Allocator struct {
	mu    sync.Mutex
	pools map[string]*poolState
	// index holds, per family, the ranges of every pool, sorted and
	// disjoint (pools do not overlap), to find an address's pool.
	index [2][]indexEntry
	// addrs maps every assigned address to its holder and pool.
	addrs map[netip.Addr]holding
	// owners maps an owner to its address of each family (zero if none).
	owners map[types.NamespacedName][2]netip.Addr
}

type indexEntry struct {
	first, last u128
	pool        *poolState
}

type holding struct {
	owner types.NamespacedName
	pool  string
}

// poolState is a pool in use: its free gaps and counts per family.
type poolState struct {
	pool     Pool
	free     [2]gapSet
	total    [2]*big.Int
	assigned [2]int64
}

// Assignment is an address held by an owner.
type Assignment struct {
	// Owner holds the address.
	Owner types.NamespacedName
	// Addr is the address.
	Addr netip.Addr
	// Pool is the pool the address was given from.
	Pool string
}

// FamilyCounts counts a pool's addresses of one family.
type FamilyCounts struct {
	// Total is the number of addresses the pool may give (without .0 and
	// .255 when it avoids them).
	Total *big.Int
	// Assigned is the number given out.
	Assigned int64
	// Free is Total minus Assigned.
	Free *big.Int
}

// PoolCounts counts a pool's addresses per family. A family the pool has no
// addresses of has a zero Total.
type PoolCounts struct {
	IPv4 FamilyCounts
	IPv6 FamilyCounts
}

// NewAllocator returns an Allocator with no pools.
func NewAllocator() *Allocator {
	return &Allocator{
		pools:  map[string]*poolState{},
		addrs:  map[netip.Addr]holding{},
		owners: map[types.NamespacedName][2]netip.Addr{},
	}
}

// SetPools replaces the pools in use. The pools must have distinct names and
// must not overlap (pass the usable pools of Select); otherwise SetPools
// changes nothing and returns an error wrapping ErrInvalidPool,
// ErrInvalidRange or ErrPoolOverlap.
//
// An assignment whose address is still one a pool may give is kept, even if
// that is now another pool. The others (address in no pool any more, or
// avoided by a pool that now avoids .0 and .255) are removed and returned,
// sorted by owner and address, for the caller to decide about.
func (a *Allocator) SetPools(pools []Pool) ([]Assignment, error) {
	next := make([]Pool, 0, len(pools))
	seen := map[string]bool{}
	for _, p := range pools {
		if p.Name == "" {
			return nil, fmt.Errorf("%w: no name", ErrInvalidPool)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("%w %q: name given twice", ErrInvalidPool, p.Name)
		}
		seen[p.Name] = true
		ranges, err := normaliseRanges(p.Ranges)
		if err != nil {
			return nil, fmt.Errorf("pool %q: %w", p.Name, err)
		}
		if len(ranges) == 0 {
			return nil, fmt.Errorf("%w %q: no addresses", ErrInvalidPool, p.Name)
		}
		p.Ranges = ranges
		next = append(next, p)
	}
	if overlaps := Overlaps(next); len(overlaps) > 0 {
		names := make([]string, 0, len(overlaps))
		for name := range overlaps {
			names = append(names, name)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("%w: pool %q shares addresses with pool %q",
			ErrPoolOverlap, names[0], overlaps[names[0]])
	}

	a.mu.Lock()
	defer a.mu.Unlock()

	// A pool whose addresses did not change keeps its state, so editing
	// only autoAssign costs nothing per assignment.
	kept := map[string]bool{}
	states := make(map[string]*poolState, len(next))
	for _, p := range next {
		if old := a.pools[p.Name]; old != nil && old.pool.AvoidBuggyIPs == p.AvoidBuggyIPs &&
			slices.Equal(old.pool.Ranges, p.Ranges) {
			old.pool = p
			states[p.Name] = old
			kept[p.Name] = true
			continue
		}
		states[p.Name] = newPoolState(p)
	}
	a.pools = states
	a.index = buildIndex(states)

	var orphans []Assignment
	for addr, h := range a.addrs {
		if kept[h.pool] {
			continue
		}
		fi, x := addrIndex(addr)
		if st := a.lookup(fi, x); st != nil && st.gives(fi, x) {
			if err := st.take(fi, x); err != nil {
				panic(err) // a new pool state has every address it gives free
			}
			a.addrs[addr] = holding{owner: h.owner, pool: st.pool.Name}
			continue
		}
		delete(a.addrs, addr)
		a.dropOwned(h.owner, fi)
		orphans = append(orphans, Assignment{Owner: h.owner, Addr: addr, Pool: h.pool})
	}
	slices.SortFunc(orphans, func(x, y Assignment) int {
		return cmp.Or(
			cmp.Compare(x.Owner.Namespace, y.Owner.Namespace),
			cmp.Compare(x.Owner.Name, y.Owner.Name),
			x.Addr.Compare(y.Addr))
	})
	return orphans, nil
}

func newPoolState(p Pool) *poolState {
	st := &poolState{pool: p, total: [2]*big.Int{new(big.Int), new(big.Int)}}
	for _, r := range p.Ranges {
		s := r.span()
		first, last := s.first, s.last
		if p.AvoidBuggyIPs && s.fi == fam4 {
			for buggy(first) && !last.less(first) {
				first = first.inc()
			}
			if last.less(first) {
				continue // nothing but .0 and .255
			}
			for buggy(last) {
				last = last.dec()
			}
		}
		st.free[s.fi].insert(first, last)
		n := last.sub(first).big() // one less than the count: 2^128 fits no u128
		n.Add(n, big.NewInt(1))
		if p.AvoidBuggyIPs && s.fi == fam4 {
			n.Sub(n, new(big.Int).SetUint64(countBuggy(first.lo, last.lo)))
		}
		st.total[s.fi].Add(st.total[s.fi], n)
	}
	return st
}

func buildIndex(states map[string]*poolState) [2][]indexEntry {
	var index [2][]indexEntry
	for _, st := range states {
		for _, r := range st.pool.Ranges {
			s := r.span()
			index[s.fi] = append(index[s.fi], indexEntry{first: s.first, last: s.last, pool: st})
		}
	}
	for fi := range index {
		slices.SortFunc(index[fi], func(x, y indexEntry) int { return x.first.cmp(y.first) })
	}
	return index
}

// lookup returns the pool whose ranges hold x, or nil.
func (a *Allocator) lookup(fi int, x u128) *poolState {
	idx := a.index[fi]
	j := sort.Search(len(idx), func(j int) bool { return x.less(idx[j].first) }) - 1
	if j >= 0 && !idx[j].last.less(x) {
		return idx[j].pool
	}
	return nil
}

func addrIndex(addr netip.Addr) (int, u128) {
	if addr.Is4() {
		return fam4, toU128(addr)
	}
	return fam6, toU128(addr)
}

// gives reports whether the pool may give x, which is in its ranges.
func (st *poolState) gives(fi int, x u128) bool {
	return !(st.pool.AvoidBuggyIPs && fi == fam4 && buggy(x))
}

// next and prev step to the neighbouring address the pool may give. They are
// only called inside a gap, so they never step off the ends of a range.
func (st *poolState) next(fi int, x u128) u128 {
	x = x.inc()
	for !st.gives(fi, x) {
		x = x.inc()
	}
	return x
}

func (st *poolState) prev(fi int, x u128) u128 {
	x = x.dec()
	for !st.gives(fi, x) {
		x = x.dec()
	}
	return x
}

// takeLowest removes the lowest free address from the pool's gaps. Finding
// the lowest gap is O(log g); the gap then shrinks from its start in place,
// which keeps its place among the gaps, and only a gap emptied this way is
// deleted (O(log g)). No assigned address is ever looked at.
func (st *poolState) takeLowest(fi int) (u128, bool) {
	g := st.free[fi].min()
	if g == nil {
		return u128{}, false
	}
	x := g.start
	if g.start == g.end {
		st.free[fi].delete(x)
	} else {
		g.start = st.next(fi, x) // stays below the next gap: order holds
	}
	st.assigned[fi]++
	return x, true
}

// take removes x, which must be free, from the pool's gaps, splitting the
// gap that holds it.
func (st *poolState) take(fi int, x u128) error {
	g := st.free[fi].floor(x)
	if g == nil || g.end.less(x) {
		return fmt.Errorf("ipam: internal error: free address %s of pool %q is in no gap", x.addr(fi), st.pool.Name)
	}
	switch {
	case g.start == x && g.end == x:
		st.free[fi].delete(x)
	case g.start == x:
		g.start = st.next(fi, x)
	case g.end == x:
		g.end = st.prev(fi, x)
	default:
		end := g.end
		g.end = st.prev(fi, x)
		st.free[fi].insert(st.next(fi, x), end)
	}
	st.assigned[fi]++
	return nil
}

// put returns x to the pool's gaps, joining it to the gaps next to it.
func (st *poolState) put(fi int, x u128) {
	free := &st.free[fi]
	pred := free.floor(x)
	succ := free.ceil(x)
	joinPred := pred != nil && st.next(fi, pred.end) == x
	joinSucc := succ != nil && st.next(fi, x) == succ.start
	switch {
	case joinPred && joinSucc:
		pred.end = succ.end
		free.delete(succ.start)
	case joinPred:
		pred.end = x
	case joinSucc:
		succ.start = x // stays above pred: order holds
	default:
		free.insert(x, x)
	}
	st.assigned[fi]--
}

// Claim gives addr to owner if addr is free or already the owner's. Use it
// to re-claim the assignments found on existing Services before allocating
// anything new, and for an address an owner asks for. eligible names the
// pools owner may draw from.
//
// It returns an error wrapping ErrNotInAnyPool (addr is in no usable pool,
// or its pool avoids it), ErrPoolNotAllowed (its pool is not eligible) or
// ErrTaken (another owner holds it; the error is a *TakenError). On success,
// an address of the same family that owner held before is released.
func (a *Allocator) Claim(owner types.NamespacedName, addr netip.Addr, eligible []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()

	if !addr.IsValid() || addr.Zone() != "" {
		return fmt.Errorf("%w: %q is not a pool address", ErrNotInAnyPool, addr)
	}
	fi, x := addrIndex(addr)
	st := a.lookup(fi, x)
	if st == nil {
		return fmt.Errorf("%w: %s is in no usable address pool", ErrNotInAnyPool, addr)
	}
	name := st.pool.Name
	if !st.gives(fi, x) {
		return fmt.Errorf("%w: %s is in pool %q, which avoids addresses ending in .0 and .255",
			ErrNotInAnyPool, addr, name)
	}
	if !slices.Contains(eligible, name) {
		return fmt.Errorf("%w: %s is in pool %q, which is not one of the eligible pools [%s]",
			ErrPoolNotAllowed, addr, name, strings.Join(eligible, ", "))
	}
	if h, ok := a.addrs[addr]; ok {
		if h.owner == owner {
			return nil
		}
		return &TakenError{Addr: addr, Holder: h.owner, Pool: name}
	}
	if err := st.take(fi, x); err != nil {
		return err
	}
	a.give(owner, fi, addr, name)
	return nil
}

// Allocate gives owner the lowest free address of the family from the first
// pool in eligible that has one. It is idempotent: an owner that already
// holds an address of the family in an eligible pool gets that address
// again. An owner that holds one in a pool no longer eligible gets a new one,
// and the old one is released once the new one is given.
//
// It returns an error wrapping ErrNoEligiblePool (no eligible pool is in use
// or has addresses of the family) or ErrPoolExhausted (they are all given
// out).
func (a *Allocator) Allocate(owner types.NamespacedName, family Family, eligible []string) (netip.Addr, error) {
	fi, ok := famIndex(family)
	if !ok {
		return netip.Addr{}, fmt.Errorf("%w: unknown address family %d", ErrNoEligiblePool, family)
	}
	a.mu.Lock()
	defer a.mu.Unlock()

	if cur := a.owners[owner][fi]; cur.IsValid() && slices.Contains(eligible, a.addrs[cur].pool) {
		return cur, nil
	}
	hasFamily := false
	for _, name := range eligible {
		st := a.pools[name]
		if st == nil || st.total[fi].Sign() == 0 {
			continue
		}
		hasFamily = true
		if x, ok := st.takeLowest(fi); ok {
			addr := x.addr(fi)
			a.give(owner, fi, addr, name)
			return addr, nil
		}
	}
	if !hasFamily {
		return netip.Addr{}, fmt.Errorf("%w: none of the pools [%s] is in use with %s addresses",
			ErrNoEligiblePool, strings.Join(eligible, ", "), family)
	}
	return netip.Addr{}, fmt.Errorf("%w: every %s address of the pools [%s] is assigned",
		ErrPoolExhausted, family, strings.Join(eligible, ", "))
}

// give records addr as owner's, releasing the owner's previous address of
// the family.
func (a *Allocator) give(owner types.NamespacedName, fi int, addr netip.Addr, pool string) {
	held := a.owners[owner]
	if old := held[fi]; old.IsValid() && old != addr {
		a.releaseAddr(old)
	}
	held[fi] = addr
	a.owners[owner] = held
	a.addrs[addr] = holding{owner: owner, pool: pool}
}

// releaseAddr returns addr to its pool; the caller updates owners.
func (a *Allocator) releaseAddr(addr netip.Addr) {
	h, ok := a.addrs[addr]
	if !ok {
		return
	}
	delete(a.addrs, addr)
	if st := a.pools[h.pool]; st != nil {
		fi, x := addrIndex(addr)
		st.put(fi, x)
	}
}

func (a *Allocator) dropOwned(owner types.NamespacedName, fi int) {
	held := a.owners[owner]
	held[fi] = netip.Addr{}
	if held[fam4].IsValid() || held[fam6].IsValid() {
		a.owners[owner] = held
	} else {
		delete(a.owners, owner)
	}
}

// Release returns every address owner holds to its pool and returns them
// (IPv4 first).
func (a *Allocator) Release(owner types.NamespacedName) []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()

	var released []netip.Addr
	for _, addr := range a.owners[owner] {
		if addr.IsValid() {
			a.releaseAddr(addr)
			released = append(released, addr)
		}
	}
	delete(a.owners, owner)
	return released
}

// ReleaseFamily returns owner's address of one family to its pool, if it
// holds one, and returns it.
func (a *Allocator) ReleaseFamily(owner types.NamespacedName, family Family) (netip.Addr, bool) {
	fi, ok := famIndex(family)
	if !ok {
		return netip.Addr{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()

	addr := a.owners[owner][fi]
	if !addr.IsValid() {
		return netip.Addr{}, false
	}
	a.releaseAddr(addr)
	a.dropOwned(owner, fi)
	return addr, true
}

// Owner returns the holder of addr.
func (a *Allocator) Owner(addr netip.Addr) (types.NamespacedName, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.addrs[addr]
	return h.owner, ok
}

// Assigned returns the addresses owner holds, IPv4 first.
func (a *Allocator) Assigned(owner types.NamespacedName) []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []netip.Addr
	for _, addr := range a.owners[owner] {
		if addr.IsValid() {
			out = append(out, addr)
		}
	}
	return out
}

// PoolOf returns the name of the pool in use whose ranges hold addr.
func (a *Allocator) PoolOf(addr netip.Addr) (string, bool) {
	if !addr.IsValid() || addr.Zone() != "" {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	fi, x := addrIndex(addr)
	if st := a.lookup(fi, x); st != nil {
		return st.pool.Name, true
	}
	return "", false
}

// Pools returns the names of the pools in use, sorted.
func (a *Allocator) Pools() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, 0, len(a.pools))
	for name := range a.pools {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// AutoAssignPools returns the names of the pools in use with autoAssign,
// sorted: the eligible pools, in a deterministic order, of an owner that
// names no pool (before any namespace restriction the caller applies).
func (a *Allocator) AutoAssignPools() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	for name, st := range a.pools {
		if st.pool.AutoAssign {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Counts returns the counts of a pool in use. The big numbers are copies.
func (a *Allocator) Counts(pool string) (PoolCounts, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.pools[pool]
	if st == nil {
		return PoolCounts{}, false
	}
	count := func(fi int) FamilyCounts {
		free := new(big.Int).Sub(st.total[fi], big.NewInt(st.assigned[fi]))
		return FamilyCounts{
			Total:    new(big.Int).Set(st.total[fi]),
			Assigned: st.assigned[fi],
			Free:     free,
		}
	}
	return PoolCounts{IPv4: count(fam4), IPv6: count(fam6)}, true
}
