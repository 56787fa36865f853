package ipam

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

// at gives a creation time n seconds after an arbitrary epoch.
func at(n int) time.Time { return time.Date(2026, 11, 25, 0, 0, n, 0, time.UTC) }

func mustPool(t testing.TB, name string, created int, addresses ...string) Pool {
	t.Helper()
	p, err := ParsePool(PoolSpec{Name: name, Addresses: addresses, AutoAssign: true, Created: at(created)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		name  string
		pools []Pool
		want  map[string]string
	}{
		{
			name: "CIDR vs range",
			pools: []Pool{
				mustPool(t, "old", 1, "192.0.2.0/28"),
				mustPool(t, "new", 2, "192.0.2.15-192.0.2.30"),
			},
			want: map[string]string{"new": "old"},
		},
		{
			name: "older wins whatever the order given",
			pools: []Pool{
				mustPool(t, "new", 2, "192.0.2.15-192.0.2.30"),
				mustPool(t, "old", 1, "192.0.2.0/28"),
			},
			want: map[string]string{"new": "old"},
		},
		{
			name: "same creation time: name decides",
			pools: []Pool{
				mustPool(t, "b", 1, "192.0.2.0/24"),
				mustPool(t, "a", 1, "192.0.2.128/25"),
			},
			want: map[string]string{"b": "a"},
		},
		{
			name: "identical",
			pools: []Pool{
				mustPool(t, "one", 1, "2001:db8::/120"),
				mustPool(t, "two", 2, "2001:db8::/120"),
			},
			want: map[string]string{"two": "one"},
		},
		{
			name: "IPv6 range inside a CIDR",
			pools: []Pool{
				mustPool(t, "big", 1, "2001:db8::/64"),
				mustPool(t, "small", 2, "2001:db8::ffff-2001:db8::1:0"),
			},
			want: map[string]string{"small": "big"},
		},
		{
			name: "adjacent do not overlap",
			pools: []Pool{
				mustPool(t, "low", 1, "192.0.2.0/25", "2001:db8::/120"),
				mustPool(t, "high", 2, "192.0.2.128-192.0.2.255", "2001:db8::100/120"),
			},
			want: map[string]string{},
		},
		{
			name: "IPv4 and IPv6 never overlap, mapped addresses included",
			pools: []Pool{
				mustPool(t, "v4", 1, "192.0.2.0/24"),
				mustPool(t, "v6", 2, "::ffff:192.0.2.0/120", "::c000:200/120"),
			},
			want: map[string]string{},
		},
		{
			name: "overlap found in a later range of a pool",
			pools: []Pool{
				mustPool(t, "old", 1, "10.0.0.0/24", "2001:db8::5-2001:db8::5"),
				mustPool(t, "new", 2, "192.0.2.0/24", "2001:db8::/120"),
			},
			want: map[string]string{"new": "old"},
		},
		{
			name: "a pool overlapping only an unused pool is used",
			pools: []Pool{
				mustPool(t, "a", 1, "10.0.0.0/24"),
				mustPool(t, "b", 2, "10.0.0.128-10.0.1.127"),
				mustPool(t, "c", 3, "10.0.1.0/25"),
				mustPool(t, "d", 4, "10.0.1.100/32"),
			},
			want: map[string]string{"b": "a", "d": "c"},
		},
		{
			name: "a pool between two used ones",
			pools: []Pool{
				mustPool(t, "a", 1, "10.0.0.0/24", "10.0.2.0/24"),
				mustPool(t, "b", 2, "10.0.1.0/24"),
				mustPool(t, "c", 3, "10.0.1.255-10.0.2.0"),
			},
			want: map[string]string{"c": "b"}, // its lowest address is b's
		},
		{
			name: "entries overlapping inside one pool are not an overlap",
			pools: []Pool{
				{Name: "self", Ranges: []Range{mustRange(t, "10.0.0.0/24"), mustRange(t, "10.0.0.5-10.0.0.9")}},
			},
			want: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Overlaps(tt.pools); !maps.Equal(got, tt.want) {
				t.Fatalf("Overlaps = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	specs := []PoolSpec{
		{Name: "public", Addresses: []string{"192.0.2.0/24"}, AutoAssign: true, Created: at(1)},
		{Name: "broken", Addresses: []string{"192.0.2.300/32"}, Created: at(0)},
		{Name: "clash", Addresses: []string{"192.0.2.128/25"}, Created: at(2)},
		{Name: "v6", Addresses: []string{"2001:db8::/64"}, Created: at(3)},
	}
	usable, rejected := Select(specs)
	var names []string
	for _, p := range usable {
		names = append(names, p.Name)
	}
	if len(names) != 2 || names[0] != "public" || names[1] != "v6" {
		t.Fatalf("usable = %v, want [public v6]", names)
	}
	if !errors.Is(rejected["broken"], ErrInvalidRange) {
		t.Errorf("broken: %v, want ErrInvalidRange", rejected["broken"])
	}
	if err := rejected["clash"]; !errors.Is(err, ErrPoolOverlap) {
		t.Errorf("clash: %v, want ErrPoolOverlap", err)
	} else if want := `pool "clash" shares addresses with pool "public"`; !strings.Contains(err.Error(), want) {
		t.Errorf("clash: %q does not say %q", err, want)
	}
	if len(rejected) != 2 {
		t.Errorf("rejected = %v, want broken and clash only", rejected)
	}
}
