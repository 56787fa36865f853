package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ErrNoAddress is what a probe of a host name that resolves to no address
// matches: the name does not exist, or has no A or AAAA records.
var ErrNoAddress = errors.New("the name resolves to no address")

// errResolution marks a failure to resolve a target's name that is not an
// answer without addresses: an upstream that fails or does not answer.
var errResolution = errors.New("name resolution failed")

// maxAddresses bounds how many of a name's addresses one probe dials.
const maxAddresses = 16

// Resolver resolves the host name of a target to the addresses its clients
// would receive. host is an absolute name whether or not it ends in a dot.
// It reports a name without addresses with an error that matches
// ErrNoAddress, or with no addresses and no error.
type Resolver interface {
	Resolve(ctx context.Context, host string) ([]netip.Addr, error)
}

// ResolverFunc adapts a resolve function, such as a DNS server's own, to
// Resolver. Errors matching noAddress (nil: none does) mean the name has no
// address.
func ResolverFunc(resolve func(ctx context.Context, host string) ([]netip.Addr, error), noAddress error) Resolver {
	return resolverFunc{resolve: resolve, noAddress: noAddress}
}

type resolverFunc struct {
	resolve   func(ctx context.Context, host string) ([]netip.Addr, error)
	noAddress error
}

func (r resolverFunc) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, err := r.resolve(ctx, host)
	if err != nil && r.noAddress != nil && errors.Is(err, r.noAddress) {
		return nil, fmt.Errorf("%w: %w", ErrNoAddress, err)
	}
	return addrs, err
}

// NetResolver resolves target names with r (nil: the system resolver), as
// Checker does when it has no HostResolver.
func NetResolver(r *net.Resolver) Resolver {
	return netResolver{r: r}
}

// netResolver resolves with a net.Resolver (nil: the system's). A name of
// more than one label is asked as an absolute name, so that no search
// domain applies; a single label (such as localhost) is looked up as the
// system would, hosts file first.
type netResolver struct {
	r *net.Resolver
}

func (n netResolver) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	r := n.r
	if r == nil {
		r = net.DefaultResolver
	}
	name := host
	if strings.Contains(strings.TrimSuffix(name, "."), ".") && !strings.HasSuffix(name, ".") {
		name += "."
	}
	addrs, err := r.LookupNetIP(ctx, "ip", name)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return nil, fmt.Errorf("%w: %w", ErrNoAddress, err)
	}
	return addrs, err
}

// resolveTarget resolves host into the addresses a probe dials: unmapped,
// without duplicates, at most maxAddresses. It fails with ErrNoAddress when
// there are none.
func (c *Checker) resolveTarget(ctx context.Context, host string) ([]netip.Addr, error) {
	var r Resolver = netResolver{}
	if c.HostResolver != nil {
		r = c.HostResolver
	}
	found, err := r.Resolve(ctx, host)
	if err != nil {
		if errors.Is(err, ErrNoAddress) {
			return nil, fmt.Errorf("resolving %s: %w", host, err)
		}
		return nil, fmt.Errorf("resolving %s: %w: %w", host, errResolution, err)
	}
	seen := map[netip.Addr]bool{}
	var addrs []netip.Addr
	for _, a := range found {
		a = a.Unmap()
		if !a.IsValid() || seen[a] {
			continue
		}
		seen[a] = true
		addrs = append(addrs, a)
		if len(addrs) == maxAddresses {
			break
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolving %s: %w", host, ErrNoAddress)
	}
	return addrs, nil
}

// judgeResolved refuses the whole target when the guard refuses any of its
// addresses: a client given that answer may connect to the refused
// address, so the target cannot be judged healthy by probing the others,
// and none of them is dialled.
func (c *Checker) judgeResolved(host string, addrs []netip.Addr) error {
	for _, a := range addrs {
		if err := c.refuseAddr(a); err != nil {
			return fmt.Errorf("%s resolves to a refused address: %w", host, err)
		}
	}
	return nil
}

// refuseAddr is the guard's refusal of addr, nil when it may be dialled.
func (c *Checker) refuseAddr(addr netip.Addr) error {
	if c.allowForbidden {
		return refusal(addr, c.Guard.rangeReason(addr))
	}
	return c.Guard.Refuse(addr)
}
