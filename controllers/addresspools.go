package controllers

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/assign"
	"github.com/netintent/netintent/internal/ipam"
)

// addressPools is the operator's view of the AddressPools and of the
// addresses given from them. The LoadBalancerReconciler gives addresses
// through it and the AddressPoolReconciler reports the pools' use from it.
//
// The allocator lives in memory only: the truth is the addresses written in
// Services' status.loadBalancer.ingress. Every time the set of pools changes,
// the first time included, sync re-reads the pools and Services from the API
// server and re-claims every address a Service shows before any allocation
// can see the new pools. So an address once given stays with its Service
// across operator restarts and across pool edits that still contain it.
type addressPools struct {
	cache  client.Reader // the manager's cache: cheap, may lag
	reader client.Reader // the API server: fresh
	alloc  *ipam.Allocator

	// mu is held for writing while the pools are replaced and the
	// assignments re-claimed, and for reading while an allocation decision
	// is made, so no decision sees pools whose assignments are not yet
	// re-claimed. Only the methods of addressPools take it.
	mu sync.RWMutex
	// synced is set once the first re-claim has been done.
	synced bool
	// fingerprint is the identity of the pools (names, UIDs and
	// generations) in the cache at the last sync.
	fingerprint string
	// pools is every AddressPool at the last sync, by name.
	pools map[string]*assign.Pool

	pendingMu sync.Mutex
	// pending holds the Services that wait for an address.
	pending map[types.NamespacedName]bool

	// services and poolQueue feed the reconcilers' work queues.
	services  *queueSource
	poolQueue *queueSource
}

func newAddressPools(cache, reader client.Reader) *addressPools {
	return &addressPools{
		cache:     cache,
		reader:    reader,
		alloc:     ipam.NewAllocator(),
		pools:     map[string]*assign.Pool{},
		pending:   map[types.NamespacedName]bool{},
		services:  &queueSource{name: "address pools: services to re-evaluate"},
		poolQueue: &queueSource{name: "address pools: pools to report"},
	}
}

// Sync brings the allocator's pools in line with the AddressPools in the
// cache. The first call, and any call that finds the pools changed,
// re-reads pools and Services from the API server, replaces the allocator's
// pools and re-claims every address already written in a Service's status.
// It then asks for every Service of the class and every pool to be
// reconciled, since eligibility, overlaps and counts may all have moved.
func (p *addressPools) Sync(ctx context.Context) error {
	list := &v1alpha1.AddressPoolList{}
	if err := p.cache.List(ctx, list); err != nil {
		return fmt.Errorf("listing address pools: %w", err)
	}
	fp := poolsFingerprint(list.Items)

	p.mu.RLock()
	current := p.synced && p.fingerprint == fp
	p.mu.RUnlock()
	if current {
		return nil
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.synced && p.fingerprint == fp {
		return nil
	}
	// The API server's lists are at least as new as the cache's, so the
	// pools never go back to an older set than one already used.
	fresh := &v1alpha1.AddressPoolList{}
	if err := p.reader.List(ctx, fresh); err != nil {
		return fmt.Errorf("listing address pools: %w", err)
	}
	services := &corev1.ServiceList{}
	if err := p.reader.List(ctx, services); err != nil {
		return fmt.Errorf("listing services: %w", err)
	}

	views, usable := assign.Pools(fresh.Items)
	orphans, err := p.alloc.SetPools(usable)
	if err != nil {
		// Select gives pools SetPools accepts; anything else is a bug.
		return fmt.Errorf("using address pools: %w", err)
	}
	p.pools = views
	claimed := p.reclaim(ctx, services.Items)
	logf.FromContext(ctx).Info("Synced address pools",
		"pools", len(fresh.Items), "inUse", len(usable), "reclaimed", claimed, "orphaned", len(orphans))
	first := !p.synced
	p.synced = true
	p.fingerprint = fp

	if !first {
		for i := range services.Items {
			if servedService(&services.Items[i]) {
				p.services.add(client.ObjectKeyFromObject(&services.Items[i]))
			}
		}
	}
	for i := range fresh.Items {
		p.poolQueue.add(types.NamespacedName{Name: fresh.Items[i].Name})
	}
	return nil
}

// reclaim gives every served Service the addresses its status shows, unless
// the Service already holds one of that family or another holds it. Older
// Services go first, so if two show the same address, the older keeps it.
// Eligibility is not checked here (any pool in use will do): the Service's
// own reconcile moves it if its namespace may no longer use the pool.
func (p *addressPools) reclaim(ctx context.Context, services []corev1.Service) int {
	log := logf.FromContext(ctx)
	served := make([]*corev1.Service, 0, len(services))
	for i := range services {
		if servedService(&services[i]) {
			served = append(served, &services[i])
		}
	}
	slices.SortFunc(served, func(a, b *corev1.Service) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	inUse := p.alloc.Pools()
	claimed := 0
	for _, svc := range served {
		key := client.ObjectKeyFromObject(svc)
		for _, addr := range ingressAddrs(svc) {
			if _, held := p.alloc.Owner(addr); held || holdsFamily(p.alloc, key, ipam.FamilyOf(addr)) {
				continue
			}
			if err := p.alloc.Claim(key, addr, inUse); err != nil {
				log.V(1).Info("Not re-claiming a Service's address", "service", klog.KObj(svc), "address", addr, "reason", err.Error())
				continue
			}
			claimed++
		}
	}
	return claimed
}

// poolsFingerprint identifies a set of pools: it changes when a pool is
// added, removed, recreated or has its spec changed, and not on status
// writes.
func poolsFingerprint(items []v1alpha1.AddressPool) string {
	ids := make([]string, 0, len(items))
	for i := range items {
		ids = append(ids, items[i].Name+"/"+string(items[i].UID)+"/"+strconv.FormatInt(items[i].Generation, 10))
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// setPending records whether the Service waits for an address.
func (p *addressPools) setPending(key types.NamespacedName, waiting bool) {
	p.pendingMu.Lock()
	defer p.pendingMu.Unlock()
	if waiting {
		p.pending[key] = true
	} else {
		delete(p.pending, key)
	}
}

// freed asks for every waiting Service to be reconciled: an address has
// come free.
func (p *addressPools) freed() {
	p.pendingMu.Lock()
	defer p.pendingMu.Unlock()
	for key := range p.pending {
		p.services.add(key)
	}
}

// poolChanged asks for the pools' status to be reported again.
func (p *addressPools) poolChanged(names ...string) {
	for _, name := range names {
		if name != "" {
			p.poolQueue.add(types.NamespacedName{Name: name})
		}
	}
}

// servedService reports whether netintent allocates the Service's address:
// a LoadBalancer of the address-pool class.
func servedService(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer &&
		ptr.Deref(svc.Spec.LoadBalancerClass, "") == v1alpha1.AddressPoolClass
}

// ingressAddrs are the IP addresses of the Service's load-balancer ingress.
func ingressAddrs(svc *corev1.Service) []netip.Addr {
	var addrs []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if addr, err := netip.ParseAddr(ing.IP); err == nil {
			addrs = append(addrs, addr.Unmap())
		}
	}
	return addrs
}

func holdsFamily(alloc *ipam.Allocator, key types.NamespacedName, family ipam.Family) bool {
	for _, addr := range alloc.Assigned(key) {
		if ipam.FamilyOf(addr) == family {
			return true
		}
	}
	return false
}

// queueSource is a controller source that lets the address pools add
// requests to a reconciler's work queue. Before the controller starts,
// requests are dropped: its initial list brings every object anyway.
type queueSource struct {
	name  string
	mu    sync.Mutex
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
}

var _ source.Source = &queueSource{}

// Start implements source.Source.
func (s *queueSource) Start(_ context.Context, queue workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = queue
	return nil
}

func (s *queueSource) add(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queue != nil {
		s.queue.Add(reconcile.Request{NamespacedName: key})
	}
}

func (s *queueSource) String() string { return s.name }

// Assign gives the Service of req an address, or says why it cannot, and
// updates the allocator: a Service that is refused holds no address, and one
// that is given an address holds that one only. A refused Service is woken
// when an address comes free; the pools whose counts moved are reported
// again, and Services waiting for an address are woken if one came free.
//
// A requested address is claimed if it is free (or already the Service's)
// and in a pool the Service may use; otherwise the Service keeps the address
// it holds or its status shows, if its namespace may still use that
// address's pool (autoAssign does not matter for keeping); otherwise it gets
// the lowest free address of the named pool, or of the first pool with
// autoAssign that has one.
func (p *addressPools) Assign(req assign.Request) assign.Outcome {
	p.mu.RLock()
	before := p.holdings(req.Key)
	out := p.assign(req)
	after := p.holdings(req.Key)
	// Marked waiting before the lock goes, so an address freed from now
	// on wakes it; so is a dual-stack Service given one family only.
	p.setPending(req.Key, !out.Assigned() || out.Missing != "")
	p.mu.RUnlock()
	p.wake(before, after)
	return out
}

// Release frees the Service's addresses, reports their pools again and
// wakes the Services waiting for an address. It returns the addresses
// freed.
func (p *addressPools) Release(key types.NamespacedName) []netip.Addr {
	p.setPending(key, false)
	p.mu.RLock()
	before := p.holdings(key)
	released := p.alloc.Release(key)
	p.mu.RUnlock()
	p.wake(before, nil)
	return released
}

// Report returns what a pool's status shows: the view of it at the last
// sync (nil if it was not there) and the allocator's counts of it (nil if
// it is not in use).
func (p *addressPools) Report(name string) (*assign.Pool, *ipam.PoolCounts) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var counts *ipam.PoolCounts
	if c, ok := p.alloc.Counts(name); ok {
		counts = &c
	}
	return p.pools[name], counts
}

// holdings maps the addresses the owner holds to their pools. The caller
// holds p.mu.
func (p *addressPools) holdings(key types.NamespacedName) map[netip.Addr]string {
	held := map[netip.Addr]string{}
	for _, addr := range p.alloc.Assigned(key) {
		held[addr], _ = p.alloc.PoolOf(addr)
	}
	return held
}

// wake asks, after a Service's holdings went from before to after, for the
// pools whose counts moved to be reported, and for the waiting Services to
// be reconciled if an address came free.
func (p *addressPools) wake(before, after map[netip.Addr]string) {
	freed := false
	for addr, pool := range before {
		if _, ok := after[addr]; !ok {
			p.poolChanged(pool)
			freed = true
		}
	}
	for addr, pool := range after {
		if _, ok := before[addr]; !ok {
			p.poolChanged(pool)
		}
	}
	if freed {
		p.freed()
	}
}

// assign is Assign's decision and its effect on the allocator. The caller
// holds p.mu for reading.
func (p *addressPools) assign(req assign.Request) assign.Outcome {
	out := p.decide(req)
	if !out.Assigned() {
		p.alloc.Release(req.Key)
		return out
	}
	// The Service holds the addresses given, and no other.
	for _, fam := range []ipam.Family{ipam.IPv4, ipam.IPv6} {
		given := false
		for _, a := range out.Addrs() {
			given = given || ipam.FamilyOf(a) == fam
		}
		if !given {
			p.alloc.ReleaseFamily(req.Key, fam)
		}
	}
	pool, _ := p.alloc.PoolOf(out.Addr)
	switch {
	case out.More.IsValid():
		if more, _ := p.alloc.PoolOf(out.More); more != pool {
			pool += "," + more
		}
		return assign.GivenBoth(out.Addr, out.More, pool)
	case out.Missing != "":
		return assign.GivenOne(out.Addr, pool, out.Missing)
	}
	return assign.Given(out.Addr, pool)
}

// decide claims or allocates the Service's address: the requested one, else
// the one it holds or its status shows in a pool it may keep, else a new
// one. A dual-stack Service is decided by decideDual.
func (p *addressPools) decide(req assign.Request) assign.Outcome {
	keep, give, refusal, ok := assign.Eligible(req, p.pools, p.alloc.Pools())
	if !ok {
		return refusal
	}
	if req.Second != 0 {
		return p.decideDual(req, keep, give)
	}
	if req.Address != "" {
		addr, refusal, ok := p.claimRequested(req, keep)
		if !ok {
			return refusal
		}
		return assign.Outcome{Addr: addr}
	}
	return p.decideFamily(req, req.Family, keep, give)
}

// claimRequested claims the requested address in a pool of keep.
func (p *addressPools) claimRequested(req assign.Request, keep []string) (netip.Addr, assign.Outcome, bool) {
	addr, refusal, ok := assign.Requested(req)
	if !ok {
		return netip.Addr{}, refusal, false
	}
	if err := p.alloc.Claim(req.Key, addr, keep); err != nil {
		pool, _ := p.alloc.PoolOf(addr)
		return netip.Addr{}, assign.ClaimRefused(req, addr, pool, err), false
	}
	return addr, assign.Outcome{}, true
}

// decideFamily keeps the Service's address of the family that it holds or
// its status shows in a pool of keep, else allocates one from give.
func (p *addressPools) decideFamily(req assign.Request, family ipam.Family, keep, give []string) assign.Outcome {
	if held, ok := p.kept(req, family, keep); ok {
		return assign.Outcome{Addr: held}
	}
	if len(give) == 0 {
		return assign.NoPoolToGive(req)
	}
	addr, err := p.alloc.Allocate(req.Key, family, give)
	if err != nil {
		return assign.AllocateRefused(req, family, give, err)
	}
	return assign.Outcome{Addr: addr}
}

// kept is the Service's address of the family that it may keep: the one
// it holds in a pool of keep, else the one its status shows if it can be
// claimed there.
func (p *addressPools) kept(req assign.Request, family ipam.Family, keep []string) (netip.Addr, bool) {
	for _, held := range p.alloc.Assigned(req.Key) {
		if pool, _ := p.alloc.PoolOf(held); ipam.FamilyOf(held) == family && slices.Contains(keep, pool) {
			return held, true
		}
	}
	if !holdsFamily(p.alloc, req.Key, family) {
		for _, cur := range req.Current {
			if ipam.FamilyOf(cur) == family && p.alloc.Claim(req.Key, cur, keep) == nil {
				return cur, true
			}
		}
	}
	return netip.Addr{}, false
}

// decideDual gives a dual-stack Service an address of each family, as
// MetalLB does: both from one pool that holds both families, the pool of
// an address the Service keeps (or requested) first. A Service that keeps
// an address moves it only for RequireDualStack, when its pool has not the
// other family. Without such a pool, RequireDualStack is refused, and
// PreferDualStack keeps or gets an address of each family it can, from
// any pool, the first family first: it is single-stack until the second
// can be given.
func (p *addressPools) decideDual(req assign.Request, keep, give []string) assign.Outcome {
	families := [2]ipam.Family{req.Family, req.Second}
	var held [2]netip.Addr
	requested := -1
	if req.Address != "" {
		addr, refusal, ok := p.claimRequested(req, keep)
		if !ok {
			return refusal
		}
		for i, f := range families {
			if ipam.FamilyOf(addr) == f {
				held[i], requested = addr, i
			}
		}
		if requested < 0 {
			return refusal // an address of neither family: Eligible's checks keep this from happening
		}
	}
	for i, f := range families {
		if !held[i].IsValid() {
			held[i], _ = p.kept(req, f, keep)
		}
	}

	// The pools that could give both, the kept addresses' first.
	var order []string
	for _, a := range held {
		if pool, ok := p.alloc.PoolOf(a); ok && p.hasBoth(pool) && !slices.Contains(order, pool) {
			order = append(order, pool)
		}
	}
	for _, pool := range give {
		if p.hasBoth(pool) && !slices.Contains(order, pool) && requested < 0 {
			order = append(order, pool)
		}
	}
	for _, pool := range order {
		moves := false
		for _, a := range held {
			if a.IsValid() {
				if in, _ := p.alloc.PoolOf(a); in != pool {
					moves = true
				}
			}
		}
		if moves && !req.RequireBoth {
			continue // kept addresses stay; the fallback adds the other family
		}
		if !p.canGive(pool, families, held, requested >= 0 || slices.Contains(give, pool)) {
			continue
		}
		var got [2]netip.Addr
		ok := true
		for i, f := range families {
			if in, _ := p.alloc.PoolOf(held[i]); held[i].IsValid() && in == pool {
				got[i] = held[i]
				continue
			}
			a, err := p.alloc.Allocate(req.Key, f, []string{pool})
			if err != nil {
				ok = false // taken meanwhile by another Service
				break
			}
			got[i] = a
		}
		if ok {
			return assign.Outcome{Addr: got[0], More: got[1]}
		}
	}
	if req.RequireBoth {
		return assign.NoDualStackPool(req, give)
	}

	// PreferDualStack: one family at a time.
	var outs [2]assign.Outcome
	for i, f := range families {
		if held[i].IsValid() {
			outs[i] = assign.Outcome{Addr: held[i]}
			continue
		}
		from := give
		if requested >= 0 {
			// The other family of a requested address comes from its pool.
			pool, _ := p.alloc.PoolOf(held[requested])
			from = []string{pool}
		}
		outs[i] = p.decideFamily(req, f, keep, from)
	}
	switch {
	case outs[0].Assigned() && outs[1].Assigned():
		return assign.Outcome{Addr: outs[0].Addr, More: outs[1].Addr}
	case outs[0].Assigned():
		return assign.Outcome{Addr: outs[0].Addr, Missing: fmt.Sprintf("no %s address: %s", families[1], outs[1].Message)}
	case outs[1].Assigned():
		return assign.Outcome{Addr: outs[1].Addr, Missing: fmt.Sprintf("no %s address: %s", families[0], outs[0].Message)}
	}
	return outs[0]
}

// hasBoth reports whether the pool in use has addresses of both families.
func (p *addressPools) hasBoth(pool string) bool {
	c, ok := p.alloc.Counts(pool)
	return ok && c.IPv4.Total.Sign() > 0 && c.IPv6.Total.Sign() > 0
}

// canGive reports whether the pool, which the Service may use, has a free
// address of each family the Service does not already hold there; mayGive
// says whether new addresses may come from it at all (autoAssign, or a
// pool named or requested).
func (p *addressPools) canGive(pool string, families [2]ipam.Family, held [2]netip.Addr, mayGive bool) bool {
	c, ok := p.alloc.Counts(pool)
	if !ok {
		return false
	}
	for i, f := range families {
		if in, _ := p.alloc.PoolOf(held[i]); held[i].IsValid() && in == pool {
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
