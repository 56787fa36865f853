package ipam

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"
)

// PoolSpec is an AddressPool as declared, before its entries are parsed.
type PoolSpec struct {
	// Name is the AddressPool's name.
	Name string
	// Addresses are the entries: CIDRs and first-last ranges.
	Addresses []string
	// AutoAssign lets owners that name no pool draw from it.
	AutoAssign bool
	// AvoidBuggyIPs skips IPv4 addresses ending in .0 and .255.
	AvoidBuggyIPs bool
	// Created orders pools when they overlap: the oldest wins. Pools created
	// in the same instant are ordered by name.
	Created time.Time
}

// Pool is a parsed AddressPool.
type Pool struct {
	// Name is the AddressPool's name.
	Name string
	// Ranges are the pool's addresses, sorted (IPv4 first) with overlapping
	// and adjacent entries joined.
	Ranges []Range
	// AutoAssign lets owners that name no pool draw from it.
	AutoAssign bool
	// AvoidBuggyIPs skips IPv4 addresses ending in .0 and .255.
	AvoidBuggyIPs bool
	// Created orders pools when they overlap: the oldest wins.
	Created time.Time
}

// ParsePool parses a pool's entries. Entries of one pool may overlap each
// other; they are joined. Errors wrap ErrInvalidPool (no name, no entries)
// or ErrInvalidRange (a malformed entry, named in the message).
func ParsePool(spec PoolSpec) (Pool, error) {
	if spec.Name == "" {
		return Pool{}, fmt.Errorf("%w: no name", ErrInvalidPool)
	}
	if len(spec.Addresses) == 0 {
		return Pool{}, fmt.Errorf("%w %q: no addresses", ErrInvalidPool, spec.Name)
	}
	ranges := make([]Range, 0, len(spec.Addresses))
	for _, entry := range spec.Addresses {
		r, err := ParseRange(entry)
		if err != nil {
			return Pool{}, fmt.Errorf("pool %q: %w", spec.Name, err)
		}
		ranges = append(ranges, r)
	}
	ranges, err := normaliseRanges(ranges)
	if err != nil {
		return Pool{}, fmt.Errorf("pool %q: %w", spec.Name, err)
	}
	return Pool{
		Name:          spec.Name,
		Ranges:        ranges,
		AutoAssign:    spec.AutoAssign,
		AvoidBuggyIPs: spec.AvoidBuggyIPs,
		Created:       spec.Created,
	}, nil
}

// Overlaps finds the pools that must not be used because they share
// addresses with an older pool. It returns, for each such pool, the name of
// the older pool it overlaps.
//
// Pools are taken oldest first (Created, then Name); a pool is used when it
// overlaps no pool already used. A pool that overlaps only a pool that is
// itself not used is therefore used: the rule never leaves an address
// without a pool because of a pool that gives none out. A pool whose ranges
// are invalid is ignored (ParsePool reports it).
//
// The cost is O(r log r) in the total number of ranges r, plus the copying of
// sorted slices as used ranges are added.
func Overlaps(pools []Pool) map[string]string {
	order := make([]int, len(pools))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if c := pools[a].Created.Compare(pools[b].Created); c != 0 {
			return c
		}
		return cmp.Compare(pools[a].Name, pools[b].Name)
	})

	type usedRange struct {
		span
		pool string
	}
	// used holds, per family, the ranges of the pools in use, sorted and
	// disjoint, so both their firsts and their lasts ascend.
	var used [2][]usedRange
	overlaps := map[string]string{}
	for _, i := range order {
		p := pools[i]
		ranges, err := normaliseRanges(p.Ranges)
		if err != nil {
			continue
		}
		older := ""
		for _, r := range ranges {
			s := r.span()
			u := used[s.fi]
			j := sort.Search(len(u), func(j int) bool { return !u[j].last.less(s.first) })
			if j < len(u) && !s.last.less(u[j].first) {
				older = u[j].pool
				break
			}
		}
		if older != "" {
			overlaps[p.Name] = older
			continue
		}
		for _, r := range ranges {
			s := r.span()
			u := used[s.fi]
			j := sort.Search(len(u), func(j int) bool { return s.first.less(u[j].first) })
			used[s.fi] = slices.Insert(u, j, usedRange{span: s, pool: p.Name})
		}
	}
	return overlaps
}

// Select parses pool specs and keeps those that can be used. It returns the
// usable pools in the order given and, for each pool left out, why: an error
// wrapping ErrInvalidPool or ErrInvalidRange (it does not parse) or
// ErrPoolOverlap (it overlaps an older pool; see Overlaps).
func Select(specs []PoolSpec) (usable []Pool, rejected map[string]error) {
	rejected = map[string]error{}
	parsed := make([]Pool, 0, len(specs))
	for _, spec := range specs {
		p, err := ParsePool(spec)
		if err != nil {
			rejected[spec.Name] = err
			continue
		}
		parsed = append(parsed, p)
	}
	overlaps := Overlaps(parsed)
	for _, p := range parsed {
		if older, ok := overlaps[p.Name]; ok {
			rejected[p.Name] = fmt.Errorf("%w: pool %q shares addresses with pool %q, which is older and in use",
				ErrPoolOverlap, p.Name, older)
			continue
		}
		usable = append(usable, p)
	}
	return usable, rejected
}
