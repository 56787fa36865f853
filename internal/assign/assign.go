package assign

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/ipam"
)

// Pool is what the decisions need to know of an AddressPool.
type Pool struct {
	Name string
	// Generation is the pool's generation this view is of.
	Generation int64
	AutoAssign bool
	// Selector chooses the namespaces that may use the pool.
	Selector labels.Selector
	// InUse: the pool is valid and overlaps no older pool.
	InUse bool
	// Reason and Message explain a pool not in use:
	// AddressPoolReasonOverlap or AddressPoolReasonInvalid.
	Reason, Message string
}

// Pools parses the AddressPools: the view of each, by name, and the pools
// the allocator may use (valid, and overlapping no older pool).
func Pools(items []v1alpha1.AddressPool) (map[string]*Pool, []ipam.Pool) {
	views := make(map[string]*Pool, len(items))
	specs := make([]ipam.PoolSpec, 0, len(items))
	for i := range items {
		ap := &items[i]
		v := &Pool{Name: ap.Name, Generation: ap.Generation, AutoAssign: ptr.Deref(ap.Spec.AutoAssign, true), Selector: labels.Everything()}
		views[ap.Name] = v
		if ap.Spec.NamespaceSelector != nil {
			sel, err := metav1.LabelSelectorAsSelector(ap.Spec.NamespaceSelector)
			if err != nil {
				v.Reason, v.Message = v1alpha1.AddressPoolReasonInvalid, fmt.Sprintf("namespaceSelector is invalid: %v; fix it", err)
				continue
			}
			v.Selector = sel
		}
		specs = append(specs, ipam.PoolSpec{
			Name:          ap.Name,
			Addresses:     ap.Spec.Addresses,
			AutoAssign:    v.AutoAssign,
			AvoidBuggyIPs: ap.Spec.AvoidBuggyIPs,
			Created:       ap.CreationTimestamp.Time,
		})
	}
	usable, rejected := ipam.Select(specs)
	for _, u := range usable {
		views[u.Name].InUse = true
	}
	for name, err := range rejected {
		v := views[name]
		if errors.Is(err, ipam.ErrPoolOverlap) {
			v.Reason = v1alpha1.AddressPoolReasonOverlap
			v.Message = fmt.Sprintf("%v; no address of this pool is given out: remove the shared addresses from one of the pools", err)
			continue
		}
		v.Reason, v.Message = v1alpha1.AddressPoolReasonInvalid, fmt.Sprintf("%v; fix the pool's addresses", err)
	}
	return views, usable
}

// Request is what a Service asks of the address pools.
type Request struct {
	// Key is the Service's key, its owner key in the allocator.
	Key types.NamespacedName
	// Namespace and NamespaceLabels decide which pools the Service may
	// use.
	Namespace       string
	NamespaceLabels labels.Set
	// Family is the family to allocate (the Service's first IP family)
	// when no address is requested.
	Family ipam.Family
	// Second is the Service's second IP family, of a dual-stack Service
	// (zero for none): it gets an address of each family, both from one
	// pool that holds both where one exists.
	Second ipam.Family
	// RequireBoth: the Service's ipFamilyPolicy is RequireDualStack, so
	// it gets both addresses from one pool or none.
	RequireBoth bool
	// Address is the requested address; empty for any free one.
	Address string
	// Pool names the pool to use; empty for any pool with autoAssign.
	Pool string
	// Current are the addresses the Service's status shows now.
	Current []netip.Addr
	// AddressField and PoolField say where the user sets Address and
	// Pool, for messages.
	AddressField, PoolField string
}

// Outcome is the answer to a Request that gives the Service an address:
// the addresses, their pool and a message that says so. A Request that is
// refused is answered with a *Refusal instead.
type Outcome struct {
	// Addr is the Service's (first) address.
	Addr netip.Addr
	// More is the address of the second family of a dual-stack Service,
	// when it has one.
	More netip.Addr
	Pool string
	// Missing, for a dual-stack Service given one family only
	// (PreferDualStack), says why it has no address of the other.
	Missing string
	Message string
}

// Refusal is the error that says why a Service is given no address: Reason
// is the reason of its AddressAssigned condition (one of the AddressReason
// constants), Message says what to do.
type Refusal struct {
	Reason, Message string
}

// Error implements error.
func (r *Refusal) Error() string { return r.Message }

// Condition is the Service's AddressAssigned condition for an answer to its
// Request: True with out's message when err is nil, else False with the
// refusal's reason and message.
func Condition(out Outcome, err error, generation int64) metav1.Condition {
	cond := metav1.Condition{
		Type:               v1alpha1.ServiceConditionAddressAssigned,
		Status:             metav1.ConditionTrue,
		Reason:             v1alpha1.AddressReasonAssigned,
		Message:            out.Message,
		ObservedGeneration: generation,
	}
	if err != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, v1alpha1.AddressReasonPending, err.Error()
		var r *Refusal
		if errors.As(err, &r) {
			cond.Reason, cond.Message = r.Reason, r.Message
		}
	}
	return cond
}

// Assigned reports whether the Service is given an address.
func (o Outcome) Assigned() bool { return o.Addr.IsValid() }

// Addrs are the addresses given, first family first.
func (o Outcome) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, a := range []netip.Addr{o.Addr, o.More} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// Given is the outcome of an address given from a pool.
func Given(addr netip.Addr, pool string) Outcome {
	return Outcome{Addr: addr, Pool: pool, Message: fmt.Sprintf("address %s from pool %s", addr, pool)}
}

// GivenBoth is the outcome of a dual-stack Service's two addresses, from
// pool (or from the pools named in pool, when the second was added to an
// address that stayed in a pool of one family).
func GivenBoth(addr, more netip.Addr, pool string) Outcome {
	return Outcome{Addr: addr, More: more, Pool: pool, Message: fmt.Sprintf("addresses %s and %s from pool %s", addr, more, pool)}
}

// GivenOne is the outcome of a PreferDualStack Service given an address
// of one family only; missing says why there is none of the other.
func GivenOne(addr netip.Addr, pool, missing string) Outcome {
	return Outcome{Addr: addr, Pool: pool, Missing: missing,
		Message: fmt.Sprintf("address %s from pool %s; single-stack for now (ipFamilyPolicy PreferDualStack): %s; the Service gets its second address as soon as a pool can give one", addr, pool, missing)}
}

// NoDualStackPool is the refusal of a RequireDualStack Service when no
// pool it may use can give it an address of each family.
func NoDualStackPool(req Request, give []string) *Refusal {
	where := "no AddressPool with autoAssign that namespace " + req.Namespace + " may use"
	if len(give) > 0 {
		where = "none of the AddressPools " + strings.Join(give, ", ") + " that namespace " + req.Namespace + " may use"
	}
	return refused(v1alpha1.AddressReasonNoDualStackPool, "ipFamilyPolicy RequireDualStack needs a free %s and a free %s address from one pool, and %s has both; add %s and %s ranges to one pool (or free addresses in it), name such a pool with %s, or use ipFamilyPolicy PreferDualStack to take one family meanwhile",
		req.Family, req.Second, where, req.Family, req.Second, req.PoolField)
}

func refused(reason, msg string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Message: fmt.Sprintf(msg, args...)}
}

// Eligible decides which pools the Service may keep an address of (keep)
// and be given a new one from (give). A named pool is the only one of
// either, if it exists, is in use and selects the namespace; else the
// error, a *Refusal, says why. Without a named pool, keep holds every
// pool of inUse (the allocator's pools, in its order) that selects the
// namespace, and give those of them with autoAssign.
func Eligible(req Request, pools map[string]*Pool, inUse []string) (keep, give []string, err error) {
	if req.Pool != "" {
		v := pools[req.Pool]
		switch {
		case v == nil:
			return nil, nil, refused(v1alpha1.AddressReasonNoPool, "AddressPool %s, named by %s, does not exist; create it, or name another pool", req.Pool, req.PoolField)
		case !v.InUse:
			return nil, nil, refused(v1alpha1.AddressReasonNoPool, "AddressPool %s, named by %s, is not in use (%s): %s", req.Pool, req.PoolField, v.Reason, v.Message)
		case !v.Selector.Matches(req.NamespaceLabels):
			return nil, nil, refused(v1alpha1.AddressReasonPoolNotAllowed, "AddressPool %s, named by %s, does not select namespace %s in its namespaceSelector; label the namespace to match, or name another pool",
				req.Pool, req.PoolField, req.Namespace)
		}
		return []string{req.Pool}, []string{req.Pool}, nil
	}
	for _, name := range inUse {
		v := pools[name]
		if v == nil || !v.Selector.Matches(req.NamespaceLabels) {
			continue
		}
		keep = append(keep, name)
		if v.AutoAssign {
			give = append(give, name)
		}
	}
	return keep, give, nil
}

// Requested parses the requested address (an IPv4-mapped IPv6 address is
// the IPv4 one). The error, a *Refusal, says when it is not an IP address.
func Requested(req Request) (netip.Addr, error) {
	addr, err := netip.ParseAddr(req.Address)
	if err != nil || addr.Zone() != "" {
		return netip.Addr{}, refused(v1alpha1.AddressReasonAddressNotInPool, "requested address %q (%s) is not an IP address; fix %s", req.Address, req.AddressField, req.AddressField)
	}
	return addr.Unmap(), nil
}

// ClaimRefused explains why the requested address addr could not be
// claimed: err is the allocator's answer, pool the pool addr is in ("" for
// none in use).
func ClaimRefused(req Request, addr netip.Addr, pool string, err error) *Refusal {
	var taken *ipam.TakenError
	switch {
	case errors.As(err, &taken):
		return refused(v1alpha1.AddressReasonAddressTaken, "requested address %s (%s) is assigned to Service %s; request another address, or remove %s to get any free one",
			addr, req.AddressField, taken.Holder, req.AddressField)
	case errors.Is(err, ipam.ErrPoolNotAllowed) && req.Pool != "":
		return refused(v1alpha1.AddressReasonPoolNotAllowed, "requested address %s (%s) is in AddressPool %s, not in pool %s named by %s; request an address of pool %s, or name pool %s",
			addr, req.AddressField, pool, req.Pool, req.PoolField, req.Pool, pool)
	case errors.Is(err, ipam.ErrPoolNotAllowed):
		return refused(v1alpha1.AddressReasonPoolNotAllowed, "requested address %s (%s) is in AddressPool %s, whose namespaceSelector does not select namespace %s; label the namespace to match, or request an address of another pool",
			addr, req.AddressField, pool, req.Namespace)
	case pool != "":
		return refused(v1alpha1.AddressReasonAddressNotInPool, "requested address %s (%s) is in AddressPool %s, which avoids addresses ending in .0 and .255; request another address",
			addr, req.AddressField, pool)
	default:
		return refused(v1alpha1.AddressReasonAddressNotInPool, "requested address %s (%s) is in no AddressPool in use; request an address inside a pool, or remove %s to get any free one",
			addr, req.AddressField, req.AddressField)
	}
}

// NoPoolToGive is the refusal when no pool may give the Service a new
// address.
func NoPoolToGive(req Request) *Refusal {
	return refused(v1alpha1.AddressReasonNoPool, "no AddressPool in use with autoAssign selects namespace %s; create one whose namespaceSelector selects it, or name a pool with %s", req.Namespace, req.PoolField)
}

// AllocateRefused explains why no address of the family could be allocated
// from the pools give: err is the allocator's answer.
func AllocateRefused(req Request, family ipam.Family, give []string, err error) *Refusal {
	if errors.Is(err, ipam.ErrPoolExhausted) {
		return refused(v1alpha1.AddressReasonPoolExhausted, "every %s address of AddressPool %s is assigned; add addresses to a pool, delete a LoadBalancer Service that holds one, or name another pool with %s; the Service gets an address as soon as one is free",
			family, strings.Join(give, ", "), req.PoolField)
	}
	return refused(v1alpha1.AddressReasonNoPool, "no %s addresses in AddressPool %s that namespace %s may use; add %s addresses to a pool, or change the Service's ipFamilies",
		family, strings.Join(give, ", "), req.Namespace, family)
}
