package ipam

import (
	"encoding/binary"
	"math/big"
	"net/netip"
)

// Family is an IP address family.
type Family uint8

// The address families. The zero Family is none.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "IPv4" or "IPv6", the spelling Kubernetes uses.
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "unknown family"
}

// FamilyOf returns the family of addr: IPv4 for a 4-byte address, IPv6 for
// any 16-byte one (IPv4-mapped included), and 0 for the zero Addr.
func FamilyOf(addr netip.Addr) Family {
	switch {
	case addr.Is4():
		return IPv4
	case addr.Is6():
		return IPv6
	}
	return 0
}

// Families are indexed 0 (IPv4) and 1 (IPv6) in per-family arrays.
const (
	fam4 = 0
	fam6 = 1
)

func famIndex(f Family) (int, bool) {
	switch f {
	case IPv4:
		return fam4, true
	case IPv6:
		return fam6, true
	}
	return 0, false
}

func famOf(i int) Family {
	if i == fam4 {
		return IPv4
	}
	return IPv6
}

// u128 is an address as a number, which makes the arithmetic of gaps and
// counts cheap. An IPv4 address lives in the low 32 bits.
type u128 struct{ hi, lo uint64 }

func toU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func (x u128) addr(fi int) netip.Addr {
	if fi == fam4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(x.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	return netip.AddrFrom16(b)
}

func (x u128) cmp(y u128) int {
	switch {
	case x.hi < y.hi:
		return -1
	case x.hi > y.hi:
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}

func (x u128) less(y u128) bool { return x.cmp(y) < 0 }

// inc and dec wrap around at the ends of the 128-bit space; callers never
// step past the ends of a range, so wrapping is never observed.
func (x u128) inc() u128 {
	x.lo++
	if x.lo == 0 {
		x.hi++
	}
	return x
}

func (x u128) dec() u128 {
	if x.lo == 0 {
		x.hi--
	}
	x.lo--
	return x
}

func (x u128) sub(y u128) u128 {
	lo := x.lo - y.lo
	hi := x.hi - y.hi
	if x.lo < y.lo {
		hi--
	}
	return u128{hi, lo}
}

func (x u128) or(y u128) u128 { return u128{x.hi | y.hi, x.lo | y.lo} }

func (x u128) and(y u128) u128 { return u128{x.hi & y.hi, x.lo & y.lo} }

func (x u128) isZero() bool { return x.hi == 0 && x.lo == 0 }

func (x u128) big() *big.Int {
	n := new(big.Int).SetUint64(x.hi)
	n.Lsh(n, 64)
	return n.Or(n, new(big.Int).SetUint64(x.lo))
}

// hostMask has the low n bits set, 0 <= n <= 128.
func hostMask(n int) u128 {
	switch {
	case n <= 0:
		return u128{}
	case n < 64:
		return u128{lo: 1<<uint(n) - 1}
	case n < 128:
		return u128{hi: 1<<uint(n-64) - 1, lo: ^uint64(0)}
	}
	return u128{^uint64(0), ^uint64(0)}
}

func bitLen(fi int) int {
	if fi == fam4 {
		return 32
	}
	return 128
}

// buggy reports an IPv4 address ending in .0 or .255, which some old
// clients and routers take for a network or broadcast address.
func buggy(x u128) bool {
	last := x.lo & 0xff
	return last == 0 || last == 0xff
}

// countBuggy counts the IPv4 addresses ending in .0 or .255 in [first, last].
func countBuggy(first, last uint64) uint64 {
	return countEnding(last, 0) + countEnding(last, 0xff) -
		countBelow(first, 0) - countBelow(first, 0xff)
}

// countEnding counts x in [0, n] with x%256 == r.
func countEnding(n, r uint64) uint64 {
	if n < r {
		return 0
	}
	return (n-r)/256 + 1
}

// countBelow counts x in [0, n) with x%256 == r.
func countBelow(n, r uint64) uint64 {
	if n == 0 {
		return 0
	}
	return countEnding(n-1, r)
}
