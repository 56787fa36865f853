package health

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// ErrForbiddenTarget is returned (wrapped with the address) when a probe would
// dial an address that Kubernetes refuses as an endpoint: unspecified,
// loopback, link-local or multicast, in IPv4, IPv6 or IPv4-mapped IPv6 form.
var ErrForbiddenTarget = errors.New("forbidden probe target")

// ForbiddenReason says why addr may not be probed, or returns "" when it may.
// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
func ForbiddenReason(addr netip.Addr) string {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return "not an IP address"
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsLinkLocalUnicast():
		return "link-local"
	case addr.IsMulticast():
		return "multicast"
	}
	return ""
}

// IsForbidden reports whether addr is an address the prober refuses to dial.
func IsForbidden(addr netip.Addr) bool {
	return ForbiddenReason(addr) != ""
}

// guardAddress checks address, a host:port with an IP literal host as a
// dialer's Control func receives it.
func guardAddress(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Control is only ever called with a resolved IP; anything else is
		// refused rather than let through unchecked.
		return fmt.Errorf("%w: cannot parse dialled address %q: %w", ErrForbiddenTarget, address, err)
	}
	if reason := ForbiddenReason(ap.Addr()); reason != "" {
		return fmt.Errorf("%w: %s is %s", ErrForbiddenTarget, ap.Addr(), reason)
	}
	return nil
}

// guardControl is a net.Dialer Control func: it runs after the socket is
// created and before connect(2), on the address actually dialled (after DNS
// resolution), so a refused target never sees a packet.
func guardControl(_, address string, _ syscall.RawConn) error {
	return guardAddress(address)
}

// GuardedDialer returns a dialer that refuses forbidden targets (see
// ErrForbiddenTarget) on every address it dials, with the given connect
// timeout (zero: none beyond the context's).
func GuardedDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: guardControl}
}
