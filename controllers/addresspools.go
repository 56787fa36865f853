package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/netintent/netintent/api/v1alpha1"
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
	pools map[string]*poolView

	pendingMu sync.Mutex
	// pending holds the Services that wait for an address.
	pending map[types.NamespacedName]bool

	// services and poolQueue feed the reconcilers' work queues.
	services  *queueSource
	poolQueue *queueSource
}

// poolView is what the allocation decisions need to know of an AddressPool.
type poolView struct {
	name string
	// generation is the pool's generation this view is of.
	generation int64
	autoAssign bool
	// selector chooses the namespaces that may use the pool.
	selector labels.Selector
	// inUse: the pool is valid and overlaps no older pool.
	inUse bool
	// reason and message explain a pool not in use: ReasonOverlap or
	// ReasonInvalid.
	reason, message string
}

func newAddressPools(cache, reader client.Reader) *addressPools {
	return &addressPools{
		cache:     cache,
		reader:    reader,
		alloc:     ipam.NewAllocator(),
		pools:     map[string]*poolView{},
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

	views, usable := poolViews(fresh.Items)
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

// poolViews parses the AddressPools: what allocation decisions need of each,
// and the pools the allocator may use.
func poolViews(items []v1alpha1.AddressPool) (map[string]*poolView, []ipam.Pool) {
	views := make(map[string]*poolView, len(items))
	specs := make([]ipam.PoolSpec, 0, len(items))
	for i := range items {
		ap := &items[i]
		v := &poolView{name: ap.Name, generation: ap.Generation, autoAssign: ptr.Deref(ap.Spec.AutoAssign, true), selector: labels.Everything()}
		views[ap.Name] = v
		if ap.Spec.NamespaceSelector != nil {
			sel, err := metav1.LabelSelectorAsSelector(ap.Spec.NamespaceSelector)
			if err != nil {
				v.reason, v.message = ReasonInvalid, fmt.Sprintf("namespaceSelector is invalid: %v; fix it", err)
				continue
			}
			v.selector = sel
		}
		specs = append(specs, ipam.PoolSpec{
			Name:          ap.Name,
			Addresses:     ap.Spec.Addresses,
			AutoAssign:    v.autoAssign,
			AvoidBuggyIPs: ap.Spec.AvoidBuggyIPs,
			Created:       ap.CreationTimestamp.Time,
		})
	}
	usable, rejected := ipam.Select(specs)
	for _, u := range usable {
		views[u.Name].inUse = true
	}
	for name, err := range rejected {
		v := views[name]
		if errors.Is(err, ipam.ErrPoolOverlap) {
			v.reason = ReasonOverlap
			v.message = fmt.Sprintf("%v; no address of this pool is given out: remove the shared addresses from one of the pools", err)
			continue
		}
		v.reason, v.message = ReasonInvalid, fmt.Sprintf("%v; fix the pool's addresses", err)
	}
	return views, usable
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

// addressRequest is what a Service asks of the address pools.
type addressRequest struct {
	// key is the Service's key, its owner key in the allocator.
	key types.NamespacedName
	// namespace and namespaceLabels decide which pools the Service may use.
	namespace       string
	namespaceLabels labels.Set
	// family is the family to allocate (the Service's first IP family)
	// when no address is requested.
	family ipam.Family
	// address is the requested address; empty for any free one.
	address string
	// pool names the pool to use; empty for any pool with autoAssign.
	pool string
	// current are the addresses the Service's status shows now.
	current []netip.Addr
	// addressField and poolField say where the user sets address and
	// pool, for messages.
	addressField, poolField string
}

// assignment is the outcome of an addressRequest: an address and its pool,
// or a reason (one of the Reason constants of a Service's address
// condition) and a message that says what to do.
type assignment struct {
	addr    netip.Addr
	pool    string
	reason  string
	message string
}

func (a assignment) assigned() bool { return a.addr.IsValid() }

func refused(reason, msg string, args ...any) assignment {
	return assignment{reason: reason, message: fmt.Sprintf(msg, args...)}
}

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
func (p *addressPools) Assign(req addressRequest) assignment {
	p.mu.RLock()
	before := p.holdings(req.key)
	out := p.assign(req)
	after := p.holdings(req.key)
	// Marked waiting before the lock goes, so an address freed from now
	// on wakes it.
	p.setPending(req.key, !out.assigned())
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
func (p *addressPools) Report(name string) (*poolView, *ipam.PoolCounts) {
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
func (p *addressPools) assign(req addressRequest) assignment {
	out := p.decide(req)
	if !out.assigned() {
		p.alloc.Release(req.key)
		return out
	}
	other := ipam.IPv6
	if ipam.FamilyOf(out.addr) == ipam.IPv6 {
		other = ipam.IPv4
	}
	p.alloc.ReleaseFamily(req.key, other)
	out.pool, _ = p.alloc.PoolOf(out.addr)
	out.reason = ReasonAssigned
	out.message = fmt.Sprintf("address %s from pool %s", out.addr, out.pool)
	return out
}

func (p *addressPools) decide(req addressRequest) assignment {
	// keep: the pools the Service may hold an address of; give: those it
	// may be given a new one from.
	var keep, give []string
	if req.pool != "" {
		v := p.pools[req.pool]
		switch {
		case v == nil:
			return refused(ReasonNoPool, "AddressPool %s, named by %s, does not exist; create it, or name another pool", req.pool, req.poolField)
		case !v.inUse:
			return refused(ReasonNoPool, "AddressPool %s, named by %s, is not in use (%s): %s", req.pool, req.poolField, v.reason, v.message)
		case !v.selector.Matches(req.namespaceLabels):
			return refused(ReasonPoolNotAllowed, "AddressPool %s, named by %s, does not select namespace %s in its namespaceSelector; label the namespace to match, or name another pool",
				req.pool, req.poolField, req.namespace)
		}
		keep, give = []string{req.pool}, []string{req.pool}
	} else {
		for _, name := range p.alloc.Pools() {
			v := p.pools[name]
			if v == nil || !v.selector.Matches(req.namespaceLabels) {
				continue
			}
			keep = append(keep, name)
			if v.autoAssign {
				give = append(give, name)
			}
		}
	}

	if req.address != "" {
		return p.claimRequested(req, keep)
	}

	family := req.family
	for _, held := range p.alloc.Assigned(req.key) {
		if pool, _ := p.alloc.PoolOf(held); ipam.FamilyOf(held) == family && slices.Contains(keep, pool) {
			return assignment{addr: held}
		}
	}
	if !holdsFamily(p.alloc, req.key, family) {
		for _, cur := range req.current {
			if ipam.FamilyOf(cur) == family && p.alloc.Claim(req.key, cur, keep) == nil {
				return assignment{addr: cur}
			}
		}
	}
	if len(give) == 0 {
		return refused(ReasonNoPool, "no AddressPool in use with autoAssign selects namespace %s; create one whose namespaceSelector selects it, or name a pool with %s", req.namespace, req.poolField)
	}
	addr, err := p.alloc.Allocate(req.key, family, give)
	switch {
	case err == nil:
		return assignment{addr: addr}
	case errors.Is(err, ipam.ErrPoolExhausted):
		return refused(ReasonPoolExhausted, "every %s address of AddressPool %s is assigned; add addresses to a pool, delete a LoadBalancer Service that holds one, or name another pool with %s; the Service gets an address as soon as one is free",
			family, strings.Join(give, ", "), req.poolField)
	default:
		return refused(ReasonNoPool, "no %s addresses in AddressPool %s that namespace %s may use; add %s addresses to a pool, or change the Service's ipFamilies",
			family, strings.Join(give, ", "), req.namespace, family)
	}
}

// claimRequested claims the requested address among the pools keep.
func (p *addressPools) claimRequested(req addressRequest, keep []string) assignment {
	addr, err := netip.ParseAddr(req.address)
	if err != nil || addr.Zone() != "" {
		return refused(ReasonAddressNotInPool, "requested address %q (%s) is not an IP address; fix %s", req.address, req.addressField, req.addressField)
	}
	addr = addr.Unmap()
	err = p.alloc.Claim(req.key, addr, keep)
	if err == nil {
		return assignment{addr: addr}
	}
	pool, _ := p.alloc.PoolOf(addr)
	var taken *ipam.TakenError
	switch {
	case errors.As(err, &taken):
		return refused(ReasonAddressTaken, "requested address %s (%s) is assigned to Service %s; request another address, or remove %s to get any free one",
			addr, req.addressField, taken.Holder, req.addressField)
	case errors.Is(err, ipam.ErrPoolNotAllowed) && req.pool != "":
		return refused(ReasonPoolNotAllowed, "requested address %s (%s) is in AddressPool %s, not in pool %s named by %s; request an address of pool %s, or name pool %s",
			addr, req.addressField, pool, req.pool, req.poolField, req.pool, pool)
	case errors.Is(err, ipam.ErrPoolNotAllowed):
		return refused(ReasonPoolNotAllowed, "requested address %s (%s) is in AddressPool %s, whose namespaceSelector does not select namespace %s; label the namespace to match, or request an address of another pool",
			addr, req.addressField, pool, req.namespace)
	case pool != "":
		return refused(ReasonAddressNotInPool, "requested address %s (%s) is in AddressPool %s, which avoids addresses ending in .0 and .255; request another address",
			addr, req.addressField, pool)
	default:
		return refused(ReasonAddressNotInPool, "requested address %s (%s) is in no AddressPool in use; request an address inside a pool, or remove %s to get any free one",
			addr, req.addressField, req.addressField)
	}
}
