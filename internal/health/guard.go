package health

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
)

// ErrForbiddenTarget is what every refusal of the guard matches (errors.Is):
// a probe would dial an address that Kubernetes refuses as an endpoint
// (unspecified, loopback, link-local or multicast), a cloud metadata
// address, an IPv6 address that embeds one of those IPv4 addresses, or an
// address outside the ranges an administrator allowed.
var ErrForbiddenTarget = errors.New("forbidden probe target")

// ForbiddenError is the guard's refusal of one address.
type ForbiddenError struct {
	// Addr is the address refused.
	Addr netip.Addr
	// Reason says why, as ForbiddenReason or Guard.Reason put it.
	Reason string
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("%s: %s is %s", ErrForbiddenTarget, e.Addr, e.Reason)
}

// Is makes a ForbiddenError match ErrForbiddenTarget.
func (e *ForbiddenError) Is(target error) bool {
	return target == ErrForbiddenTarget
}

// reasonNotAllowed is the reason for an address outside Guard's allowed
// ranges.
const reasonNotAllowed = "outside the ranges the operator may probe (--probe-allowed-cidrs)"

// cloudMetadata are instance metadata endpoints that are neither link-local
// nor otherwise refused: reaching one from the operator's pod could hand out
// node credentials. (169.254.169.254, the IPv4 one, is link-local.)
var cloudMetadata = map[netip.Addr]bool{
	netip.MustParseAddr("fd00:ec2::254"): true, // EC2 instance metadata over IPv6
}

var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")  // RFC 8215
	sixToFour      = netip.MustParsePrefix("2002::/16")       // RFC 3056
	teredo         = netip.MustParsePrefix("2001::/32")       // RFC 4380
	ipv4Compatible = netip.MustParsePrefix("::/96")           // RFC 4291, deprecated
	ipv4Translated = netip.MustParsePrefix("::ffff:0:0:0/96") // RFC 2765 (SIIT)
)

// ForbiddenReason says why addr may never be probed, or returns "" when the
// fixed rule lets it through. IPv4-mapped IPv6 addresses are judged as the
// IPv4 address they carry, and so are the IPv6 forms that embed an IPv4
// address a translator or tunnel would deliver to: NAT64 (64:ff9b::/96 and,
// at every RFC 6052 position, 64:ff9b:1::/48), IPv4-compatible (::a.b.c.d),
// IPv4-translated (::ffff:0:a.b.c.d), 6to4 (2002::/16) and Teredo
// (2001::/32, server and client).
func ForbiddenReason(addr netip.Addr) string {
	addr = addr.Unmap()
	if reason := directReason(addr); reason != "" {
		return reason
	}
	if !addr.Is6() {
		return ""
	}
	for _, e := range embeddedIPv4(addr) {
		if reason := directReason(e.addr); reason != "" {
			return fmt.Sprintf("%s embedding %s, which is %s", e.form, e.addr, reason)
		}
	}
	return ""
}

// directReason judges addr as it is, not what it may embed.
func directReason(addr netip.Addr) string {
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
	case cloudMetadata[addr.WithZone("")]:
		return "a cloud metadata address"
	}
	return ""
}

type embedded struct {
	form string
	addr netip.Addr
}

// embeddedIPv4 returns the IPv4 addresses an IPv6 address may carry.
func embeddedIPv4(addr netip.Addr) []embedded {
	b := addr.As16()
	v4 := func(i, j, k, l int) netip.Addr { return netip.AddrFrom4([4]byte{b[i], b[j], b[k], b[l]}) }
	var out []embedded
	switch {
	case nat64WellKnown.Contains(addr):
		out = append(out, embedded{"a NAT64 address", v4(12, 13, 14, 15)})
	case nat64Local.Contains(addr):
		// The translator's prefix may be /48, /56, /64 or /96 inside
		// 64:ff9b:1::/48, and the address does not say which: judge the
		// IPv4 address at each position whose format the address fits
		// (byte 8 and the suffix after the IPv4 address zero, as RFC
		// 6052 has them). An all-zero field is taken for padding, not
		// 0.0.0.0: no translator forwards to 0.0.0.0.
		formats := []struct {
			at     [4]int
			suffix int // first byte after the IPv4 address
		}{
			{[4]int{6, 7, 9, 10}, 11},
			{[4]int{7, 9, 10, 11}, 12},
			{[4]int{9, 10, 11, 12}, 13},
			{[4]int{12, 13, 14, 15}, 16},
		}
		for _, f := range formats {
			if f.suffix < 16 && (b[8] != 0 || !allZero(b[f.suffix:])) {
				continue
			}
			if e := v4(f.at[0], f.at[1], f.at[2], f.at[3]); !e.IsUnspecified() {
				out = append(out, embedded{"a NAT64 address", e})
			}
		}
	case sixToFour.Contains(addr):
		out = append(out, embedded{"a 6to4 address", v4(2, 3, 4, 5)})
	case teredo.Contains(addr):
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		out = append(out, embedded{"a Teredo address", v4(4, 5, 6, 7)}, embedded{"a Teredo address", client})
	case ipv4Compatible.Contains(addr):
		out = append(out, embedded{"an IPv4-compatible address", v4(12, 13, 14, 15)})
	case ipv4Translated.Contains(addr):
		out = append(out, embedded{"an IPv4-translated address", v4(12, 13, 14, 15)})
	}
	return out
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// IsForbidden reports whether the fixed rule refuses addr.
func IsForbidden(addr netip.Addr) bool {
	return ForbiddenReason(addr) != ""
}

// Guard decides which addresses probes may dial: never what ForbiddenReason
// refuses, and, when it has allowed ranges, nothing outside them. The nil
// Guard applies the fixed rule alone.
type Guard struct {
	allowed []netip.Prefix
}

// NewGuard returns a guard that also refuses every address outside allowed
// (none given: only the fixed rule). Each prefix must be valid and have no
// host bits set.
func NewGuard(allowed []netip.Prefix) (*Guard, error) {
	g := &Guard{}
	for _, p := range allowed {
		if !p.IsValid() {
			return nil, fmt.Errorf("invalid prefix %v", p)
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("%s has host bits set; did you mean %s?", p, p.Masked())
		}
		g.allowed = append(g.allowed, p)
	}
	return g, nil
}

// ParseGuard parses a comma-separated list of CIDRs, as the
// --probe-allowed-cidrs flag takes it, into a Guard. The empty string
// allows every address the fixed rule allows.
func ParseGuard(cidrs string) (*Guard, error) {
	var prefixes []netip.Prefix
	if strings.TrimSpace(cidrs) != "" {
		for _, s := range strings.Split(cidrs, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				return nil, errors.New("empty entry in the list; separate CIDRs with single commas")
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR such as 10.244.0.0/16 or fd00:10:244::/56", s)
			}
			prefixes = append(prefixes, p)
		}
	}
	return NewGuard(prefixes)
}

// Reason says why addr may not be probed, or returns "" when it may.
func (g *Guard) Reason(addr netip.Addr) string {
	if reason := ForbiddenReason(addr); reason != "" {
		return reason
	}
	return g.rangeReason(addr)
}

// rangeReason judges addr by the allowed ranges alone.
func (g *Guard) rangeReason(addr netip.Addr) string {
	if g == nil || len(g.allowed) == 0 {
		return ""
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range g.allowed {
		if p.Contains(addr) {
			return ""
		}
	}
	return reasonNotAllowed
}

// Refuse returns a ForbiddenError when addr may not be probed, else nil.
func (g *Guard) Refuse(addr netip.Addr) error {
	return refusal(addr, g.Reason(addr))
}

func refusal(addr netip.Addr, reason string) error {
	if reason != "" {
		return &ForbiddenError{Addr: addr, Reason: reason}
	}
	return nil
}

// String lists the allowed ranges, "" when there are none.
func (g *Guard) String() string {
	if g == nil {
		return ""
	}
	parts := make([]string, len(g.allowed))
	for i, p := range g.allowed {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// checkAddress checks address, a host:port with an IP literal host as a
// dialer's Control func receives it, with judge.
func checkAddress(address string, judge func(netip.Addr) string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Control is only ever called with a resolved IP; anything else is
		// refused rather than let through unchecked.
		return fmt.Errorf("%w: cannot parse dialled address %q: %w", ErrForbiddenTarget, address, err)
	}
	return refusal(ap.Addr(), judge(ap.Addr()))
}

// control is a net.Dialer Control func: it runs after the socket is created
// and before connect(2), on the address actually dialled (after DNS
// resolution), so a refused target never sees a packet.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	return checkAddress(address, g.Reason)
}

// rangeControl is control without the fixed rule, for tests whose servers
// listen on loopback.
func (g *Guard) rangeControl(_, address string, _ syscall.RawConn) error {
	return checkAddress(address, g.rangeReason)
}
