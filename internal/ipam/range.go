package ipam

import (
	"cmp"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"
)

// Range is an inclusive range of addresses of one family.
type Range struct {
	// First is the lowest address of the range.
	First netip.Addr
	// Last is the highest address of the range; Last >= First.
	Last netip.Addr
}

// ParseRange parses one pool entry: a CIDR (192.0.2.0/28, 2001:db8::/120)
// or an inclusive range first-last of one family (192.0.2.10-192.0.2.20).
// A CIDR with host bits set (10.0.0.5/24) stands for its whole prefix
// (10.0.0.0/24). Errors wrap ErrInvalidRange.
func ParseRange(entry string) (Range, error) {
	s := strings.TrimSpace(entry)
	switch {
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, invalidRange(entry, "not a CIDR such as 192.0.2.0/28 or 2001:db8::/120")
		}
		return prefixRange(p.Masked()), nil
	case strings.Contains(s, "-"):
		firstText, lastText, _ := strings.Cut(s, "-")
		if strings.Contains(lastText, "-") {
			return Range{}, invalidRange(entry, "a range has exactly one '-' (192.0.2.10-192.0.2.20)")
		}
		first, err := parseRangeEnd(firstText)
		if err != nil {
			return Range{}, invalidRange(entry, "first address: "+err.Error())
		}
		last, err := parseRangeEnd(lastText)
		if err != nil {
			return Range{}, invalidRange(entry, "last address: "+err.Error())
		}
		r := Range{First: first, Last: last}
		if err := r.validate(); err != nil {
			return Range{}, invalidRange(entry, err.Error())
		}
		return r, nil
	}
	return Range{}, invalidRange(entry, "want a CIDR (192.0.2.0/28) or a range first-last (192.0.2.10-192.0.2.20)")
}

func invalidRange(entry, reason string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidRange, entry, reason)
}

func parseRangeEnd(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, fmt.Errorf("missing")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has a zone, which a pool address cannot have", s)
	}
	return a, nil
}

func prefixRange(p netip.Prefix) Range {
	fi := fam6
	if p.Addr().Is4() {
		fi = fam4
	}
	first := toU128(p.Addr())
	last := first.or(hostMask(bitLen(fi) - p.Bits()))
	return Range{First: p.Addr(), Last: last.addr(fi)}
}

// validate checks what ParseRange guarantees, for ranges built by hand.
func (r Range) validate() error {
	switch {
	case !r.First.IsValid() || !r.Last.IsValid():
		return fmt.Errorf("missing address")
	case r.First.Zone() != "" || r.Last.Zone() != "":
		return fmt.Errorf("addresses with a zone cannot be pooled")
	case FamilyOf(r.First) != FamilyOf(r.Last):
		return fmt.Errorf("first %s is %s but last %s is %s; a range is of one family",
			r.First, FamilyOf(r.First), r.Last, FamilyOf(r.Last))
	case r.Last.Less(r.First):
		return fmt.Errorf("first %s is after last %s", r.First, r.Last)
	}
	return nil
}

// Family returns the range's address family.
func (r Range) Family() Family { return FamilyOf(r.First) }

// Contains reports whether addr is in the range.
func (r Range) Contains(addr netip.Addr) bool {
	return FamilyOf(addr) == r.Family() && addr.Zone() == "" &&
		r.First.Compare(addr) <= 0 && addr.Compare(r.Last) <= 0
}

// Overlaps reports whether r and o share an address.
func (r Range) Overlaps(o Range) bool {
	return r.Family() == o.Family() &&
		r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

// Size returns the number of addresses in the range.
func (r Range) Size() *big.Int {
	s := r.span()
	n := s.last.sub(s.first).big()
	return n.Add(n, big.NewInt(1))
}

// String returns the range as a CIDR when it is exactly one prefix, and as
// first-last otherwise.
func (r Range) String() string {
	if !r.First.IsValid() {
		return "invalid range"
	}
	s := r.span()
	diff := s.last.sub(s.first)
	for host := 0; host <= bitLen(s.fi); host++ {
		if m := hostMask(host); m == diff {
			if s.first.and(m).isZero() {
				return netip.PrefixFrom(r.First, bitLen(s.fi)-host).String()
			}
			break
		}
	}
	return r.First.String() + "-" + r.Last.String()
}

// span is a range as numbers, with its family index.
type span struct {
	fi          int
	first, last u128
}

func (r Range) span() span {
	fi := fam6
	if r.First.Is4() {
		fi = fam4
	}
	return span{fi: fi, first: toU128(r.First), last: toU128(r.Last)}
}

func (s span) toRange() Range {
	return Range{First: s.first.addr(s.fi), Last: s.last.addr(s.fi)}
}

// normaliseRanges validates ranges and returns them sorted (IPv4 first, then
// by address) with overlapping and adjacent ranges joined, so that two
// spellings of the same addresses normalise to the same ranges.
func normaliseRanges(ranges []Range) ([]Range, error) {
	spans := make([]span, 0, len(ranges))
	for _, r := range ranges {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("%w %s-%s: %s", ErrInvalidRange, r.First, r.Last, err.Error())
		}
		spans = append(spans, r.span())
	}
	slices.SortFunc(spans, func(a, b span) int {
		if c := cmp.Compare(a.fi, b.fi); c != 0 {
			return c
		}
		return a.first.cmp(b.first)
	})
	out := make([]Range, 0, len(spans))
	for i := 0; i < len(spans); {
		cur := spans[i]
		for i++; i < len(spans) && spans[i].fi == cur.fi; i++ {
			next := spans[i]
			// The first test catches overlap before inc can wrap at the
			// top of the address space.
			if cur.last.less(next.first) && cur.last.inc() != next.first {
				break
			}
			if cur.last.less(next.last) {
				cur.last = next.last
			}
		}
		out = append(out, cur.toRange())
	}
	return out, nil
}
