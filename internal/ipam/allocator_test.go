package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// step is one operation on an Allocator and what it should give: the result
// as text (addresses space-separated), or an error wrapping wantErr.
type step struct {
	desc    string
	run     func(*Allocator) (string, error)
	want    string
	wantErr error
}

func (s step) is(want string) step  { s.want = want; return s }
func (s step) fails(err error) step { s.wantErr = err; return s }
func (s step) ok() step             { return s }

func stepf(desc string, run func(*Allocator) (string, error)) step {
	return step{desc: desc, run: run}
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// key is the owner written "namespace/name" in the tables.
func key(s string) types.NamespacedName {
	ns, name, _ := strings.Cut(s, "/")
	return types.NamespacedName{Namespace: ns, Name: name}
}

func names(list ...string) []string { return list }

func addrs(list []netip.Addr) string {
	text := make([]string, len(list))
	for i, a := range list {
		text[i] = a.String()
	}
	return strings.Join(text, " ")
}

func alloc(owner string, f Family, eligible ...string) step {
	return stepf(fmt.Sprintf("Allocate(%s, %s, %v)", owner, f, eligible), func(a *Allocator) (string, error) {
		addr, err := a.Allocate(key(owner), f, eligible)
		if err != nil {
			return "", err
		}
		return addr.String(), nil
	})
}

func claim(owner, addr string, eligible ...string) step {
	return stepf(fmt.Sprintf("Claim(%s, %s, %v)", owner, addr, eligible), func(a *Allocator) (string, error) {
		return "", a.Claim(key(owner), ip(addr), eligible)
	})
}

func release(owner string) step {
	return stepf("Release("+owner+")", func(a *Allocator) (string, error) {
		return addrs(a.Release(key(owner))), nil
	})
}

func releaseFamily(owner string, f Family) step {
	return stepf(fmt.Sprintf("ReleaseFamily(%s, %s)", owner, f), func(a *Allocator) (string, error) {
		addr, ok := a.ReleaseFamily(key(owner), f)
		if !ok {
			return "none", nil
		}
		return addr.String(), nil
	})
}

func ownerOf(addr string) step {
	return stepf("Owner("+addr+")", func(a *Allocator) (string, error) {
		owner, ok := a.Owner(ip(addr))
		if !ok {
			return "none", nil
		}
		return owner.String(), nil
	})
}

func assigned(owner string) step {
	return stepf("Assigned("+owner+")", func(a *Allocator) (string, error) {
		return addrs(a.Assigned(key(owner))), nil
	})
}

func counts(pool string, f Family) step {
	return stepf(fmt.Sprintf("Counts(%s).%s", pool, f), func(a *Allocator) (string, error) {
		c, ok := a.Counts(pool)
		if !ok {
			return "", fmt.Errorf("no pool %q", pool)
		}
		fc := c.IPv4
		if f == IPv6 {
			fc = c.IPv6
		}
		return fmt.Sprintf("total=%s assigned=%d free=%s", fc.Total, fc.Assigned, fc.Free), nil
	})
}

func spec(name string, addresses ...string) PoolSpec {
	return PoolSpec{Name: name, Addresses: addresses, AutoAssign: true}
}

func avoiding(s PoolSpec) PoolSpec { s.AvoidBuggyIPs = true; return s }

func newAllocator(t testing.TB, specs ...PoolSpec) *Allocator {
	t.Helper()
	a := NewAllocator()
	var pools []Pool
	for i, s := range specs {
		if s.Created.IsZero() {
			s.Created = at(i)
		}
		p, err := ParsePool(s)
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, p)
	}
	if _, err := a.SetPools(pools); err != nil {
		t.Fatal(err)
	}
	return a
}

func runSteps(t *testing.T, a *Allocator, steps []step) {
	t.Helper()
	for i, s := range steps {
		got, err := s.run(a)
		switch {
		case s.wantErr != nil:
			if !errors.Is(err, s.wantErr) {
				t.Fatalf("step %d %s = %q, %v; want error %v", i, s.desc, got, err, s.wantErr)
			}
		case err != nil:
			t.Fatalf("step %d %s: %v", i, s.desc, err)
		case got != s.want:
			t.Fatalf("step %d %s = %q, want %q", i, s.desc, got, s.want)
		}
		checkInvariants(t, a)
	}
}

func TestAllocator(t *testing.T) {
	tests := []struct {
		name  string
		pools []PoolSpec
		steps []step
	}{
		{
			name:  "CIDR: lowest first, then exhausted",
			pools: []PoolSpec{spec("p", "192.0.2.0/30")},
			steps: []step{
				alloc("ns/a", IPv4, "p").is("192.0.2.0"),
				alloc("ns/b", IPv4, "p").is("192.0.2.1"),
				alloc("ns/c", IPv4, "p").is("192.0.2.2"),
				alloc("ns/d", IPv4, "p").is("192.0.2.3"),
				alloc("ns/e", IPv4, "p").fails(ErrPoolExhausted),
				counts("p", IPv4).is("total=4 assigned=4 free=0"),
			},
		},
		{
			name:  "ranges, lowest range first",
			pools: []PoolSpec{spec("p", "192.0.2.20-192.0.2.21", "192.0.2.10-192.0.2.10")},
			steps: []step{
				alloc("ns/a", IPv4, "p").is("192.0.2.10"),
				alloc("ns/b", IPv4, "p").is("192.0.2.20"),
				alloc("ns/c", IPv4, "p").is("192.0.2.21"),
				alloc("ns/d", IPv4, "p").fails(ErrPoolExhausted),
			},
		},
		{
			name:  "IPv6 and dual stack",
			pools: []PoolSpec{spec("v6", "2001:db8::/127"), spec("dual", "198.51.100.0/31", "2001:db8:1::ff-2001:db8:1::100")},
			steps: []step{
				alloc("ns/a", IPv6, "v6").is("2001:db8::"),
				alloc("ns/b", IPv6, "v6").is("2001:db8::1"),
				alloc("ns/c", IPv6, "v6").fails(ErrPoolExhausted),
				alloc("ns/a", IPv4, "v6").fails(ErrNoEligiblePool),
				alloc("ns/d", IPv4, "dual").is("198.51.100.0"),
				alloc("ns/d", IPv6, "dual").is("2001:db8:1::ff"),
				assigned("ns/d").is("198.51.100.0 2001:db8:1::ff"),
				alloc("ns/e", IPv6, "dual").is("2001:db8:1::100"),
				counts("dual", IPv6).is("total=2 assigned=2 free=0"),
				counts("dual", IPv4).is("total=2 assigned=1 free=1"),
			},
		},
		{
			name:  "avoidBuggyIPs skips .0 and .255, IPv4 only",
			pools: []PoolSpec{avoiding(spec("p", "192.0.2.254-192.0.3.1", "192.0.4.255/32", "2001:db8::ff-2001:db8::100"))},
			steps: []step{
				counts("p", IPv4).is("total=2 assigned=0 free=2"),
				alloc("ns/a", IPv4, "p").is("192.0.2.254"),
				alloc("ns/b", IPv4, "p").is("192.0.3.1"),
				alloc("ns/c", IPv4, "p").fails(ErrPoolExhausted),
				claim("ns/c", "192.0.2.255", "p").fails(ErrNotInAnyPool),
				claim("ns/c", "192.0.3.0", "p").fails(ErrNotInAnyPool),
				claim("ns/c", "192.0.4.255", "p").fails(ErrNotInAnyPool),
				alloc("ns/a", IPv6, "p").is("2001:db8::ff"),
				alloc("ns/b", IPv6, "p").is("2001:db8::100"),
				release("ns/a").is("192.0.2.254 2001:db8::ff"),
				release("ns/b").is("192.0.3.1 2001:db8::100"),
				alloc("ns/d", IPv4, "p").is("192.0.2.254"),
				alloc("ns/e", IPv4, "p").is("192.0.3.1"),
			},
		},
		{
			name:  "avoidBuggyIPs on a /23: 508 addresses",
			pools: []PoolSpec{avoiding(spec("p", "10.0.0.0/23"))},
			steps: []step{
				counts("p", IPv4).is("total=508 assigned=0 free=508"),
				alloc("ns/a", IPv4, "p").is("10.0.0.1"),
				claim("ns/b", "10.0.0.254", "p"),
				claim("ns/c", "10.0.1.1", "p"),
				release("ns/a").is("10.0.0.1"),
				release("ns/b").is("10.0.0.254"),
				claim("ns/b", "10.0.0.253", "p"),
				alloc("ns/d", IPv4, "p").is("10.0.0.1"),
				counts("p", IPv4).is("total=508 assigned=3 free=505"),
			},
		},
		{
			name:  "requested addresses",
			pools: []PoolSpec{spec("p", "192.0.2.0/29"), spec("q", "198.51.100.0/29")},
			steps: []step{
				claim("ns/a", "192.0.2.0", "p").ok(),
				claim("ns/b", "192.0.2.2", "p", "q").ok(),
				claim("ns/a", "192.0.2.0", "p").ok(),
				claim("ns/c", "192.0.2.2", "p").fails(ErrTaken),
				claim("ns/c", "203.0.113.1", "p").fails(ErrNotInAnyPool),
				claim("ns/c", "2001:db8::1", "p").fails(ErrNotInAnyPool),
				claim("ns/c", "198.51.100.1", "p").fails(ErrPoolNotAllowed),
				claim("ns/c", "198.51.100.1").fails(ErrPoolNotAllowed),
				ownerOf("192.0.2.2").is("ns/b"),
				ownerOf("198.51.100.1").is("none"),
				alloc("ns/d", IPv4, "p").is("192.0.2.1"),
				alloc("ns/e", IPv4, "p").is("192.0.2.3"),
				// A new requested address replaces the owner's old one.
				claim("ns/a", "192.0.2.7", "p").ok(),
				assigned("ns/a").is("192.0.2.7"),
				ownerOf("192.0.2.0").is("none"),
				alloc("ns/f", IPv4, "p").is("192.0.2.0"),
				// A refused claim leaves the old one in place.
				claim("ns/a", "192.0.2.1", "p").fails(ErrTaken),
				assigned("ns/a").is("192.0.2.7"),
			},
		},
		{
			name:  "release and reuse, lowest first",
			pools: []PoolSpec{spec("p", "192.0.2.0/29")},
			steps: []step{
				alloc("ns/a", IPv4, "p").is("192.0.2.0"),
				alloc("ns/b", IPv4, "p").is("192.0.2.1"),
				alloc("ns/c", IPv4, "p").is("192.0.2.2"),
				alloc("ns/d", IPv4, "p").is("192.0.2.3"),
				release("ns/c").is("192.0.2.2"),
				release("ns/b").is("192.0.2.1"),
				release("ns/nobody").is(""),
				ownerOf("192.0.2.1").is("none"),
				counts("p", IPv4).is("total=8 assigned=2 free=6"),
				alloc("ns/e", IPv4, "p").is("192.0.2.1"),
				alloc("ns/f", IPv4, "p").is("192.0.2.2"),
				alloc("ns/g", IPv4, "p").is("192.0.2.4"),
				release("ns/a").is("192.0.2.0"),
				alloc("ns/h", IPv4, "p").is("192.0.2.0"),
			},
		},
		{
			name:  "idempotent allocate; a pool no longer eligible moves the owner",
			pools: []PoolSpec{spec("p", "192.0.2.0/29"), spec("q", "198.51.100.0/29")},
			steps: []step{
				alloc("ns/a", IPv4, "p").is("192.0.2.0"),
				alloc("ns/a", IPv4, "p").is("192.0.2.0"),
				alloc("ns/a", IPv4, "q", "p").is("192.0.2.0"),
				counts("p", IPv4).is("total=8 assigned=1 free=7"),
				alloc("ns/a", IPv4, "q").is("198.51.100.0"),
				assigned("ns/a").is("198.51.100.0"),
				counts("p", IPv4).is("total=8 assigned=0 free=8"),
				ownerOf("192.0.2.0").is("none"),
			},
		},
		{
			name:  "first eligible pool with room",
			pools: []PoolSpec{spec("a", "192.0.2.0/31"), spec("b", "198.51.100.0/31")},
			steps: []step{
				alloc("ns/1", IPv4, "a", "b").is("192.0.2.0"),
				alloc("ns/2", IPv4, "b", "a").is("198.51.100.0"),
				alloc("ns/3", IPv4, "a", "b").is("192.0.2.1"),
				alloc("ns/4", IPv4, "a", "b").is("198.51.100.1"),
				alloc("ns/5", IPv4, "a", "b").fails(ErrPoolExhausted),
				alloc("ns/5", IPv4, "missing", "a").fails(ErrPoolExhausted),
				alloc("ns/5", IPv4, "missing").fails(ErrNoEligiblePool),
				alloc("ns/5", IPv4).fails(ErrNoEligiblePool),
				alloc("ns/5", Family(5), "a").fails(ErrNoEligiblePool),
			},
		},
		{
			name:  "release one family",
			pools: []PoolSpec{spec("p", "192.0.2.0/30", "2001:db8::/126")},
			steps: []step{
				alloc("ns/a", IPv4, "p").is("192.0.2.0"),
				alloc("ns/a", IPv6, "p").is("2001:db8::"),
				releaseFamily("ns/a", IPv4).is("192.0.2.0"),
				releaseFamily("ns/a", IPv4).is("none"),
				assigned("ns/a").is("2001:db8::"),
				releaseFamily("ns/a", IPv6).is("2001:db8::"),
				assigned("ns/a").is(""),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, newAllocator(t, tt.pools...), tt.steps)
		})
	}
}

func TestTakenErrorNamesHolder(t *testing.T) {
	a := newAllocator(t, spec("p", "192.0.2.0/29"))
	if err := a.Claim(key("shop/web"), ip("192.0.2.5"), names("p")); err != nil {
		t.Fatal(err)
	}
	err := a.Claim(key("shop/api"), ip("192.0.2.5"), names("p"))
	var taken *TakenError
	if !errors.As(err, &taken) || !errors.Is(err, ErrTaken) {
		t.Fatalf("Claim = %v, want a *TakenError", err)
	}
	if taken.Holder != key("shop/web") || taken.Pool != "p" || taken.Addr != ip("192.0.2.5") {
		t.Fatalf("TakenError = %+v", *taken)
	}
	if !strings.Contains(err.Error(), "held by shop/web") {
		t.Fatalf("message %q does not name the holder", err)
	}
	wrapped := fmt.Errorf("requested address: %w", err)
	if !errors.Is(wrapped, ErrTaken) {
		t.Fatal("wrapped TakenError is not ErrTaken")
	}
}

func TestSetPools(t *testing.T) {
	p := func(s PoolSpec) Pool {
		pool, err := ParsePool(s)
		if err != nil {
			t.Fatal(err)
		}
		return pool
	}
	a := NewAllocator()
	if _, err := a.SetPools([]Pool{p(spec("p", "192.0.2.0/28")), p(spec("q", "2001:db8::/120"))}); err != nil {
		t.Fatal(err)
	}
	for i, owner := range []string{"ns/a", "ns/b", "ns/c", "ns/d"} {
		if err := a.Claim(key(owner), ip(fmt.Sprintf("192.0.2.%d", 4*i)), names("p")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Claim(key("ns/a"), ip("2001:db8::7"), names("q")); err != nil {
		t.Fatal(err)
	}

	// Only autoAssign changes: everything stays.
	orphans, err := a.SetPools([]Pool{p(PoolSpec{Name: "p", Addresses: []string{"192.0.2.0/28"}}), p(spec("q", "2001:db8::/120"))})
	if err != nil || len(orphans) != 0 {
		t.Fatalf("SetPools = %v, %v", orphans, err)
	}
	if got := a.AutoAssignPools(); !slices.Equal(got, names("q")) {
		t.Fatalf("AutoAssignPools = %v, want [q]", got)
	}
	checkInvariants(t, a)

	// p shrinks to .0-.7 and avoids .0; .8-.15 move to a new pool r; q is
	// deleted. Kept: .4 (p), .8 (r). Orphaned: .0 (avoided), .12 (outside),
	// 2001:db8::7 (pool gone).
	orphans, err = a.SetPools([]Pool{
		p(avoiding(spec("p", "192.0.2.0/29"))),
		p(spec("r", "192.0.2.8-192.0.2.11")),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Assignment{
		{Owner: key("ns/a"), Addr: ip("192.0.2.0"), Pool: "p"},
		{Owner: key("ns/a"), Addr: ip("2001:db8::7"), Pool: "q"},
		{Owner: key("ns/d"), Addr: ip("192.0.2.12"), Pool: "p"},
	}
	if !slices.Equal(orphans, want) {
		t.Fatalf("orphans = %v, want %v", orphans, want)
	}
	checkInvariants(t, a)
	for addr, owner := range map[string]string{"192.0.2.4": "ns/b", "192.0.2.8": "ns/c", "192.0.2.0": "", "192.0.2.12": "", "2001:db8::7": ""} {
		if got, _ := a.Owner(ip(addr)); got != key(owner) {
			t.Errorf("Owner(%s) = %q, want %q", addr, got, owner)
		}
	}
	if got := a.Assigned(key("ns/a")); len(got) != 0 {
		t.Errorf("Assigned(ns/a) = %v, want none", got)
	}
	if pool, _ := a.PoolOf(ip("192.0.2.8")); pool != "r" {
		t.Errorf("PoolOf(192.0.2.8) = %q, want r", pool)
	}
	runSteps(t, a, []step{
		counts("p", IPv4).is("total=7 assigned=1 free=6"),
		counts("r", IPv4).is("total=4 assigned=1 free=3"),
		alloc("ns/e", IPv4, "r").is("192.0.2.9"),
		alloc("ns/f", IPv4, "p").is("192.0.2.1"),
		alloc("ns/g", IPv4, "p").is("192.0.2.2"),
		alloc("ns/h", IPv4, "p").is("192.0.2.3"),
		alloc("ns/i", IPv4, "p").is("192.0.2.5"),
	})

	// Refused pool sets change nothing.
	before := fmt.Sprint(a.Pools(), a.Assigned(key("ns/b")))
	for name, set := range map[string][]Pool{
		"overlap":   {p(spec("p", "192.0.2.0/29")), p(spec("r", "192.0.2.7-192.0.2.11"))},
		"duplicate": {p(spec("p", "192.0.2.0/29")), p(spec("p", "198.51.100.0/29"))},
		"empty":     {{Name: "e"}},
		"no name":   {{Ranges: []Range{mustRange(t, "10.0.0.0/8")}}},
		"bad range": {{Name: "b", Ranges: []Range{{First: ip("10.0.0.9"), Last: ip("10.0.0.1")}}}},
	} {
		if _, err := a.SetPools(set); err == nil {
			t.Errorf("%s: SetPools succeeded", name)
		}
		if after := fmt.Sprint(a.Pools(), a.Assigned(key("ns/b"))); after != before {
			t.Errorf("%s: state changed from %s to %s", name, before, after)
		}
	}
	if _, err := a.SetPools([]Pool{p(spec("p", "192.0.2.0/29")), p(spec("r", "192.0.2.7-192.0.2.11"))}); !errors.Is(err, ErrPoolOverlap) {
		t.Errorf("overlapping SetPools = %v, want ErrPoolOverlap", err)
	}

	// Removing every pool orphans everything.
	orphans, err = a.SetPools(nil)
	if err != nil || len(orphans) != 7 {
		t.Fatalf("SetPools(nil) = %v, %v; want 7 orphans", orphans, err)
	}
	checkInvariants(t, a)
}

func TestCounts(t *testing.T) {
	whole := newAllocator(t, spec("all", "::/0", "0.0.0.0/0"))
	runSteps(t, whole, []step{
		counts("all", IPv6).is("total=340282366920938463463374607431768211456 assigned=0 free=340282366920938463463374607431768211456"),
		counts("all", IPv4).is("total=4294967296 assigned=0 free=4294967296"),
		claim("ns/top", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "all"),
		claim("ns/top", "255.255.255.255", "all"),
		alloc("ns/bottom", IPv6, "all").is("::"),
		counts("all", IPv6).is("total=340282366920938463463374607431768211456 assigned=2 free=340282366920938463463374607431768211454"),
		release("ns/top").is("255.255.255.255 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
	})
	b := newAllocator(t, spec("v6", "2001:db8::/64", "192.0.2.0/24"), spec("huge", "2001:db9::/32"))
	runSteps(t, b, []step{
		counts("v6", IPv6).is("total=18446744073709551616 assigned=0 free=18446744073709551616"),
		alloc("ns/a", IPv6, "v6").is("2001:db8::"),
		alloc("ns/b", IPv6, "v6").is("2001:db8::1"),
		counts("v6", IPv6).is("total=18446744073709551616 assigned=2 free=18446744073709551614"),
		counts("v6", IPv4).is("total=256 assigned=0 free=256"),
		counts("huge", IPv6).is("total=79228162514264337593543950336 assigned=0 free=79228162514264337593543950336"),
		counts("huge", IPv4).is("total=0 assigned=0 free=0"),
	})
	c, _ := b.Counts("v6")
	c.IPv6.Total.SetInt64(0) // a copy: the allocator's count must not change
	runSteps(t, b, []step{counts("v6", IPv6).is("total=18446744073709551616 assigned=2 free=18446744073709551614")})
	if _, ok := b.Counts("missing"); ok {
		t.Error("Counts(missing) found a pool")
	}
}
