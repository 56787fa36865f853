package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func ownerNames(n int) []types.NamespacedName {
	owners := make([]types.NamespacedName, n)
	for i := range owners {
		owners[i] = types.NamespacedName{Namespace: fmt.Sprintf("ns%d", i%17), Name: fmt.Sprintf("svc%d", i)}
	}
	return owners
}

// TestMemoryProportionalToAssignments checks that a pool is never
// materialised: a huge pool with a few assignments must cost little. The
// bound is generous on purpose; this is a check of "no per-address
// structures", not a measurement.
func TestMemoryProportionalToAssignments(t *testing.T) {
	tests := []struct {
		entry  string
		family Family
	}{
		{"10.0.0.0/8", IPv4},
		{"0.0.0.0/0", IPv4},
		{"2001:db8::/64", IPv6},
		{"::/0", IPv6},
	}
	owners := ownerNames(20)
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			pool := mustPool(t, "p", 0, tt.entry)
			claims := make([]netip.Addr, 10)
			span := pool.Ranges[0].span()
			for i := range claims {
				// Spread over the pool, each one making a new gap.
				d := span.last.sub(span.first)
				off := u128{hi: d.hi / 11 * uint64(i+1), lo: d.lo / 11 * uint64(i+1)}
				x := u128{hi: span.first.hi + off.hi, lo: span.first.lo + off.lo}
				if x.lo < off.lo {
					x.hi++
				}
				claims[i] = x.addr(span.fi)
			}
			eligible := []string{"p"}

			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)

			a := NewAllocator()
			if _, err := a.SetPools([]Pool{pool}); err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if _, err := a.Allocate(owners[i], tt.family, eligible); err != nil {
					t.Fatal(err)
				}
			}
			for i, addr := range claims {
				if err := a.Claim(owners[10+i], addr, eligible); err != nil {
					t.Fatal(err)
				}
			}
			_, _ = a.Counts("p")

			runtime.ReadMemStats(&after)
			runtime.KeepAlive(a)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s with 20 assignments: %d bytes allocated", tt.entry, allocated)
			if allocated > 1<<20 {
				t.Fatalf("%s with 20 assignments allocated %d bytes, want < 1 MiB", tt.entry, allocated)
			}
		})
	}
}

// BenchmarkAllocate10kFromSlash16 measures one op as: a fresh Allocator with
// a /16 pool gives 10,000 addresses. ns/address is the cost of one Allocate.
func BenchmarkAllocate10kFromSlash16(b *testing.B) {
	pool := mustPool(b, "p", 0, "10.0.0.0/16")
	owners := ownerNames(10000)
	eligible := []string{"p"}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		a := NewAllocator()
		if _, err := a.SetPools([]Pool{pool}); err != nil {
			b.Fatal(err)
		}
		for _, owner := range owners {
			if _, err := a.Allocate(owner, IPv4, eligible); err != nil {
				b.Fatal(err)
			}
		}
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*len(owners)), "ns/address")
}

// BenchmarkReleaseReallocate measures one Release and one Allocate for an
// owner picked at random among 10,000 holding addresses of a /16: the
// released address becomes a one-address gap that the Allocate takes back.
// "fragmented" first frees every other address, so the gap tree holds
// about 5,000 gaps.
func BenchmarkReleaseReallocate(b *testing.B) {
	for _, fragmented := range []bool{false, true} {
		name := "contiguous"
		if fragmented {
			name = "fragmented"
		}
		b.Run(name, func(b *testing.B) {
			a := NewAllocator()
			if _, err := a.SetPools([]Pool{mustPool(b, "p", 0, "10.0.0.0/16")}); err != nil {
				b.Fatal(err)
			}
			eligible := []string{"p"}
			owners := ownerNames(10000)
			var live []types.NamespacedName
			for i, owner := range owners {
				if _, err := a.Allocate(owner, IPv4, eligible); err != nil {
					b.Fatal(err)
				}
				if fragmented && i%2 == 1 {
					a.Release(owner)
					continue
				}
				live = append(live, owner)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			order := make([]types.NamespacedName, 1<<16)
			for i := range order {
				order[i] = live[rng.IntN(len(live))]
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				owner := order[i&(len(order)-1)]
				i++
				a.Release(owner)
				if _, err := a.Allocate(owner, IPv4, eligible); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAllocateAfterAssignments shows that the cost of an Allocate does
// not grow with the number k of addresses already held: k addresses are held
// at every other address of a /8 (k gaps, the worst case for the tree), and
// each op allocates the lowest free address and releases it again.
func BenchmarkAllocateAfterAssignments(b *testing.B) {
	for _, k := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			a := NewAllocator()
			if _, err := a.SetPools([]Pool{mustPool(b, "p", 0, "10.0.0.0/8")}); err != nil {
				b.Fatal(err)
			}
			eligible := []string{"p"}
			for i, owner := range ownerNames(k) {
				addr := u128{lo: 10<<24 + 2*uint64(i)}.addr(fam4)
				if err := a.Claim(owner, addr, eligible); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Allocate(key("bench/new"), IPv4, eligible); err != nil {
					b.Fatal(err)
				}
				a.Release(key("bench/new"))
			}
		})
	}
}

// BenchmarkClaim10k measures the re-claim of 10,000 existing assignments,
// spread over a /16 in random order, as at operator start.
func BenchmarkClaim10k(b *testing.B) {
	pool := mustPool(b, "p", 0, "10.0.0.0/16")
	owners := ownerNames(10000)
	rng := rand.New(rand.NewPCG(5, 6))
	addrs := make([]netip.Addr, len(owners))
	for i, j := range rng.Perm(1 << 16)[:len(owners)] {
		addrs[i] = u128{lo: 10<<24 + uint64(j)}.addr(fam4)
	}
	eligible := []string{"p"}
	b.ReportAllocs()
	for b.Loop() {
		a := NewAllocator()
		if _, err := a.SetPools([]Pool{pool}); err != nil {
			b.Fatal(err)
		}
		for i, owner := range owners {
			if err := a.Claim(owner, addrs[i], eligible); err != nil {
				b.Fatal(err)
			}
		}
	}
}
