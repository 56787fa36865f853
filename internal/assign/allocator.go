package assign

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/ipam"
)

// Allocator is the address policy over ipam's allocator, as MetalLB keeps
// it in its own: which address a Service keeps or is given, from which
// pool, and why not. It holds the view of every AddressPool and the
// assignments.
//
// Assign, Release, Holdings and Report may run at once; SetPools and
// Reclaim must run alone (the caller's lock sees to it), so that no
// decision sees pools whose assignments are not yet re-claimed.
type Allocator struct {
	alloc *ipam.Allocator
	// pools is every AddressPool at the last SetPools, by name.
	pools map[string]*Pool
}

// NewAllocator returns an Allocator without pools.
func NewAllocator() *Allocator {
	return &Allocator{alloc: ipam.NewAllocator(), pools: map[string]*Pool{}}
}

// SetPools makes the AddressPools the ones to give addresses from: those
// valid and overlapping no older pool are used. An assignment whose address
// is in no pool any more is dropped; it returns how many pools are in use
// and how many assignments were dropped.
func (a *Allocator) SetPools(items []v1alpha1.AddressPool) (inUse, dropped int, err error) {
	views, usable := Pools(items)
	orphans, err := a.alloc.SetPools(usable)
	if err != nil {
		// Select gives pools SetPools accepts; anything else is a bug.
		return 0, 0, fmt.Errorf("using address pools: %w", err)
	}
	a.pools = views
	return len(usable), len(orphans), nil
}

// Shown is what a Service's status shows: the addresses it was given.
type Shown struct {
	Key     types.NamespacedName
	Created time.Time
	Addrs   []netip.Addr
}

// NotReclaimed is an address a Service shows that it was not given back,
// and why.
type NotReclaimed struct {
	Key  types.NamespacedName
	Addr netip.Addr
	Err  error
}

// Reclaim gives every Service the addresses its status shows, unless the
// Service already holds one of that family or another holds it. Older
// Services go first, so if two show the same address, the older keeps it.
// Eligibility is not checked here (any pool in use will do): the Service's
// own Assign moves it if its namespace may no longer use the pool. It
// returns how many addresses were claimed, and those the allocator refused.
func (a *Allocator) Reclaim(shown []Shown) (int, []NotReclaimed) {
	shown = slices.Clone(shown)
	slices.SortFunc(shown, func(x, y Shown) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(x.Key.Namespace, y.Key.Namespace), cmp.Compare(x.Key.Name, y.Key.Name))
	})
	inUse := a.alloc.Pools()
	claimed := 0
	var refused []NotReclaimed
	for _, s := range shown {
		for _, addr := range s.Addrs {
			if _, held := a.alloc.Owner(addr); held || a.holdsFamily(s.Key, ipam.FamilyOf(addr)) {
				continue
			}
			if err := a.alloc.Claim(s.Key, addr, inUse); err != nil {
				refused = append(refused, NotReclaimed{Key: s.Key, Addr: addr, Err: err})
				continue
			}
			claimed++
		}
	}
	return claimed, refused
}

// Release frees the Service's addresses and returns them.
func (a *Allocator) Release(key types.NamespacedName) []netip.Addr {
	return a.alloc.Release(key)
}

// Holdings maps the addresses the Service holds to their pools.
func (a *Allocator) Holdings(key types.NamespacedName) map[netip.Addr]string {
	held := map[netip.Addr]string{}
	for _, addr := range a.alloc.Assigned(key) {
		held[addr], _ = a.alloc.PoolOf(addr)
	}
	return held
}

// Report returns what a pool's status shows: the view of it at the last
// SetPools (nil if it was not there) and its counts (nil if it is not in
// use).
func (a *Allocator) Report(name string) (*Pool, *ipam.PoolCounts) {
	var counts *ipam.PoolCounts
	if c, ok := a.alloc.Counts(name); ok {
		counts = &c
	}
	return a.pools[name], counts
}

// Assign gives the Service of req an address, or says why it cannot in a
// *Refusal, and updates the assignments: a Service that is refused holds
// no address, and one that is given an address holds that one only.
//
// A requested address is claimed if it is free (or already the Service's)
// and in a pool the Service may use; otherwise the Service keeps the address
// it holds or its status shows, if its namespace may still use that
// address's pool (autoAssign does not matter for keeping); otherwise it gets
// the lowest free address of the named pool, or of the first pool with
// autoAssign that has one.
func (a *Allocator) Assign(req Request) (Outcome, error) {
	out, err := a.decide(req)
	if err != nil {
		a.alloc.Release(req.Key)
		return Outcome{}, err
	}
	// The Service holds the addresses given, and no other.
	for _, fam := range []ipam.Family{ipam.IPv4, ipam.IPv6} {
		given := false
		for _, addr := range out.Addrs() {
			given = given || ipam.FamilyOf(addr) == fam
		}
		if !given {
			a.alloc.ReleaseFamily(req.Key, fam)
		}
	}
	pool, _ := a.alloc.PoolOf(out.Addr)
	switch {
	case out.More.IsValid():
		if more, _ := a.alloc.PoolOf(out.More); more != pool {
			pool += "," + more
		}
		return GivenBoth(out.Addr, out.More, pool), nil
	case out.Missing != "":
		return GivenOne(out.Addr, pool, out.Missing), nil
	}
	return Given(out.Addr, pool), nil
}

// decide claims or allocates the Service's address: the requested one, else
// the one it holds or its status shows in a pool it may keep, else a new
// one. A dual-stack Service is decided by decideDual.
func (a *Allocator) decide(req Request) (Outcome, error) {
	keep, give, err := Eligible(req, a.pools, a.alloc.Pools())
	if err != nil {
		return Outcome{}, err
	}
	if req.Second != 0 {
		return a.decideDual(req, keep, give)
	}
	if req.Address != "" {
		addr, err := a.claimRequested(req, keep)
		if err != nil {
			return Outcome{}, err
		}
		return Outcome{Addr: addr}, nil
	}
	return a.decideFamily(req, req.Family, keep, give)
}

// claimRequested claims the requested address in a pool of keep.
func (a *Allocator) claimRequested(req Request, keep []string) (netip.Addr, error) {
	addr, err := Requested(req)
	if err != nil {
		return netip.Addr{}, err
	}
	if err := a.alloc.Claim(req.Key, addr, keep); err != nil {
		pool, _ := a.alloc.PoolOf(addr)
		return netip.Addr{}, ClaimRefused(req, addr, pool, err)
	}
	return addr, nil
}

// decideFamily keeps the Service's address of the family that it holds or
// its status shows in a pool of keep, else allocates one from give.
func (a *Allocator) decideFamily(req Request, family ipam.Family, keep, give []string) (Outcome, error) {
	if held, ok := a.kept(req, family, keep); ok {
		return Outcome{Addr: held}, nil
	}
	if len(give) == 0 {
		return Outcome{}, NoPoolToGive(req)
	}
	addr, err := a.alloc.Allocate(req.Key, family, give)
	if err != nil {
		return Outcome{}, AllocateRefused(req, family, give, err)
	}
	return Outcome{Addr: addr}, nil
}

// kept is the Service's address of the family that it may keep: the one
// it holds in a pool of keep, else the one its status shows if it can be
// claimed there.
func (a *Allocator) kept(req Request, family ipam.Family, keep []string) (netip.Addr, bool) {
	for _, held := range a.alloc.Assigned(req.Key) {
		if pool, _ := a.alloc.PoolOf(held); ipam.FamilyOf(held) == family && slices.Contains(keep, pool) {
			return held, true
		}
	}
	if !a.holdsFamily(req.Key, family) {
		for _, cur := range req.Current {
			if ipam.FamilyOf(cur) == family && a.alloc.Claim(req.Key, cur, keep) == nil {
				return cur, true
			}
		}
	}
	return netip.Addr{}, false
}

func (a *Allocator) holdsFamily(key types.NamespacedName, family ipam.Family) bool {
	for _, addr := range a.alloc.Assigned(key) {
		if ipam.FamilyOf(addr) == family {
			return true
		}
	}
	return false
}

// decideDual gives a dual-stack Service an address of each family, as
// MetalLB does: both from one pool that holds both families, the pool of
// an address the Service keeps (or requested) first. A Service that keeps
// an address moves it only for RequireDualStack, when its pool has not the
// other family. Without such a pool, RequireDualStack is refused, and
// PreferDualStack keeps or gets an address of each family it can, from
// any pool, the first family first: it is single-stack until the second
// can be given.
func (a *Allocator) decideDual(req Request, keep, give []string) (Outcome, error) {
	families := [2]ipam.Family{req.Family, req.Second}
	held, requested, err := a.heldDual(req, families, keep)
	if err != nil {
		return Outcome{}, err
	}
	if out, ok := a.fromOnePool(req, families, held, requested, give); ok {
		return out, nil
	}
	if req.RequireBoth {
		return Outcome{}, NoDualStackPool(req, give)
	}
	return a.eachFamily(req, families, held, requested, keep, give)
}

// heldDual is the address of each family a dual-stack Service keeps: the
// requested one (requested is its index, -1 for none), and those it holds
// or its status shows in a pool of keep.
func (a *Allocator) heldDual(req Request, families [2]ipam.Family, keep []string) ([2]netip.Addr, int, error) {
	var held [2]netip.Addr
	requested := -1
	if req.Address != "" {
		addr, err := a.claimRequested(req, keep)
		if err != nil {
			return held, -1, err
		}
		for i, f := range families {
			if ipam.FamilyOf(addr) == f {
				held[i], requested = addr, i
			}
		}
		if requested < 0 {
			// An address of neither family: Eligible's checks keep this
			// from happening.
			return held, -1, ClaimRefused(req, addr, "", ipam.ErrNotInAnyPool)
		}
	}
	for i, f := range families {
		if !held[i].IsValid() {
			held[i], _ = a.kept(req, f, keep)
		}
	}
	return held, requested, nil
}

// fromOnePool gives both addresses from one pool that holds both
// families, the pools of the kept addresses first; ok is false when no
// pool can.
func (a *Allocator) fromOnePool(req Request, families [2]ipam.Family, held [2]netip.Addr, requested int, give []string) (Outcome, bool) {
	var order []string
	for _, addr := range held {
		if pool, ok := a.alloc.PoolOf(addr); ok && a.hasBoth(pool) && !slices.Contains(order, pool) {
			order = append(order, pool)
		}
	}
	for _, pool := range give {
		if a.hasBoth(pool) && !slices.Contains(order, pool) && requested < 0 {
			order = append(order, pool)
		}
	}
	for _, pool := range order {
		if a.movesFrom(held, pool) && !req.RequireBoth {
			continue // kept addresses stay; the fallback adds the other family
		}
		if !a.canGive(pool, families, held, requested >= 0 || slices.Contains(give, pool)) {
			continue
		}
		var got [2]netip.Addr
		ok := true
		for i, f := range families {
			if in, _ := a.alloc.PoolOf(held[i]); held[i].IsValid() && in == pool {
				got[i] = held[i]
				continue
			}
			addr, err := a.alloc.Allocate(req.Key, f, []string{pool})
			if err != nil {
				ok = false // taken meanwhile by another Service
				break
			}
			got[i] = addr
		}
		if ok {
			return Outcome{Addr: got[0], More: got[1]}, true
		}
	}
	return Outcome{}, false
}

// movesFrom reports whether a kept address is in another pool than pool.
func (a *Allocator) movesFrom(held [2]netip.Addr, pool string) bool {
	for _, addr := range held {
		if addr.IsValid() {
			if in, _ := a.alloc.PoolOf(addr); in != pool {
				return true
			}
		}
	}
	return false
}

// eachFamily is PreferDualStack without a pool that gives both: it keeps
// or gets an address of each family it can, one family at a time, the
// first family first.
func (a *Allocator) eachFamily(req Request, families [2]ipam.Family, held [2]netip.Addr, requested int, keep, give []string) (Outcome, error) {
	var outs [2]Outcome
	var errs [2]error
	for i, f := range families {
		if held[i].IsValid() {
			outs[i] = Outcome{Addr: held[i]}
			continue
		}
		from := give
		if requested >= 0 {
			// The other family of a requested address comes from its pool.
			pool, _ := a.alloc.PoolOf(held[requested])
			from = []string{pool}
		}
		outs[i], errs[i] = a.decideFamily(req, f, keep, from)
	}
	switch {
	case errs[0] == nil && errs[1] == nil:
		return Outcome{Addr: outs[0].Addr, More: outs[1].Addr}, nil
	case errs[0] == nil:
		return Outcome{Addr: outs[0].Addr, Missing: fmt.Sprintf("no %s address: %s", families[1], errs[1])}, nil
	case errs[1] == nil:
		return Outcome{Addr: outs[1].Addr, Missing: fmt.Sprintf("no %s address: %s", families[0], errs[0])}, nil
	}
	return Outcome{}, errs[0]
}

// hasBoth reports whether the pool in use has addresses of both families.
func (a *Allocator) hasBoth(pool string) bool {
	c, ok := a.alloc.Counts(pool)
	return ok && c.IPv4.Total.Sign() > 0 && c.IPv6.Total.Sign() > 0
}

// canGive reports whether the pool, which the Service may use, has a free
// address of each family the Service does not already hold there; mayGive
// says whether new addresses may come from it at all (autoAssign, or a
// pool named or requested).
func (a *Allocator) canGive(pool string, families [2]ipam.Family, held [2]netip.Addr, mayGive bool) bool {
	c, ok := a.alloc.Counts(pool)
	if !ok {
		return false
	}
	for i, f := range families {
		if in, _ := a.alloc.PoolOf(held[i]); held[i].IsValid() && in == pool {
			continue
		}
		if !mayGive {
			return false
		}
		free := c.IPv4.Free
		if f == ipam.IPv6 {
			free = c.IPv6.Free
		}
		if free.Sign() <= 0 {
			return false
		}
	}
	return true
}
