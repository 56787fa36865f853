package ipam

import (
	"errors"
	"fmt"
	"net/netip"

	"k8s.io/apimachinery/pkg/types"
)

// Sentinel errors. Every error this package returns wraps one of them, so a
// caller can map it to a condition reason with errors.Is.
var (
	// ErrInvalidRange is returned for a pool entry that is neither a CIDR
	// nor a range first-last of one family with first <= last.
	ErrInvalidRange = errors.New("invalid address range")

	// ErrInvalidPool is returned for a pool that cannot be used as declared:
	// no name, no addresses, or a name given twice.
	ErrInvalidPool = errors.New("invalid address pool")

	// ErrPoolOverlap is returned for a pool that shares addresses with an
	// older pool that is in use.
	ErrPoolOverlap = errors.New("address pool overlaps an older pool")

	// ErrNotInAnyPool is returned when an address is not one a usable pool
	// can give: outside every pool, or in a pool that avoids it (.0 and
	// .255 with avoidBuggyIPs).
	ErrNotInAnyPool = errors.New("address is not in any usable pool")

	// ErrPoolNotAllowed is returned when an address is in a pool the owner
	// may not draw from.
	ErrPoolNotAllowed = errors.New("address pool not allowed")

	// ErrTaken is returned when an address is held by another owner. The
	// error is a *TakenError, which names the holder.
	ErrTaken = errors.New("address already assigned")

	// ErrPoolExhausted is returned when every eligible pool that has
	// addresses of the family asked for has given them all out.
	ErrPoolExhausted = errors.New("address pool exhausted")

	// ErrNoEligiblePool is returned by Allocate when no eligible pool exists
	// or none has addresses of the family asked for.
	ErrNoEligiblePool = errors.New("no eligible address pool")
)

// TakenError reports an address held by another owner. errors.Is(err,
// ErrTaken) is true for it; errors.As gives the holder.
type TakenError struct {
	// Addr is the address asked for.
	Addr netip.Addr
	// Holder is the owner that holds it.
	Holder types.NamespacedName
	// Pool is the pool it belongs to.
	Pool string
}

// Error implements error.
func (e *TakenError) Error() string {
	return fmt.Sprintf("%v: %s in pool %q is held by %s", ErrTaken, e.Addr, e.Pool, e.Holder)
}

// Unwrap makes errors.Is(err, ErrTaken) true.
func (e *TakenError) Unwrap() error { return ErrTaken }
