package controllers

import (
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
	alloc  *assign.Allocator

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

	pendingMu sync.Mutex
	// pending holds the Services that wait for an address.
	pending map[types.NamespacedName]bool

	// services and poolQueue feed the reconcilers' work queues: the
	// Services to re-evaluate and the pools to report.
	services  *queueSource
	poolQueue *queueSource
}

func newAddressPools(cache, reader client.Reader) *addressPools {
	return &addressPools{
		cache:     cache,
		reader:    reader,
		alloc:     assign.NewAllocator(),
		pending:   map[types.NamespacedName]bool{},
		services:  &queueSource{},
		poolQueue: &queueSource{},
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

	inUse, orphaned, err := p.alloc.SetPools(fresh.Items)
	if err != nil {
		return err
	}
	claimed := p.reclaim(ctx, services.Items)
	logf.FromContext(ctx).Info("Synced address pools",
		"pools", len(fresh.Items), "inUse", inUse, "reclaimed", claimed, "orphaned", orphaned)
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

// reclaim gives every served Service the addresses its status shows (see
// assign.Allocator.Reclaim) and returns how many it gave.
func (p *addressPools) reclaim(ctx context.Context, services []corev1.Service) int {
	log := logf.FromContext(ctx)
	shown := make([]assign.Shown, 0, len(services))
	for i := range services {
		if svc := &services[i]; servedService(svc) {
			shown = append(shown, assign.Shown{Key: client.ObjectKeyFromObject(svc), Created: svc.CreationTimestamp.Time, Addrs: ingressAddrs(svc)})
		}
	}
	claimed, refused := p.alloc.Reclaim(shown)
	for _, r := range refused {
		log.V(1).Info("Not re-claiming a Service's address", "service", klog.KRef(r.Key.Namespace, r.Key.Name), "address", r.Addr, "reason", r.Err.Error())
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

// queueSource lets the address pools add requests to a reconciler's work
// queue, which the controller hands over when it starts its sources. Before
// that, requests are dropped: the controller's initial list brings every
// object anyway.
type queueSource struct {
	mu    sync.Mutex
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
}

// source is the controller source that hands the work queue over.
func (s *queueSource) source() source.Source {
	return source.Func(func(_ context.Context, queue workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.queue = queue
		return nil
	})
}

func (s *queueSource) add(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queue != nil {
		s.queue.Add(reconcile.Request{NamespacedName: key})
	}
}

// Assign gives the Service of req an address, or says why it cannot, as
// assign.Allocator.Assign decides. A refused Service is woken when an
// address comes free; the pools whose counts moved are reported again, and
// Services waiting for an address are woken if one came free.
func (p *addressPools) Assign(req assign.Request) (assign.Outcome, error) {
	p.mu.RLock()
	before := p.alloc.Holdings(req.Key)
	out, err := p.alloc.Assign(req)
	after := p.alloc.Holdings(req.Key)
	// Marked waiting before the lock goes, so an address freed from now
	// on wakes it; so is a dual-stack Service given one family only.
	p.setPending(req.Key, err != nil || out.Missing != "")
	p.mu.RUnlock()
	p.wake(before, after)
	return out, err
}

// Release frees the Service's addresses, reports their pools again and
// wakes the Services waiting for an address. It returns the addresses
// freed.
func (p *addressPools) Release(key types.NamespacedName) []netip.Addr {
	p.setPending(key, false)
	p.mu.RLock()
	before := p.alloc.Holdings(key)
	released := p.alloc.Release(key)
	p.mu.RUnlock()
	p.wake(before, nil)
	return released
}

// Report returns what a pool's status shows (see assign.Allocator.Report).
func (p *addressPools) Report(name string) (*assign.Pool, *ipam.PoolCounts) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.alloc.Report(name)
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
