package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		entry       string
		first, last string
		errHas      string // non-empty: an error wrapping ErrInvalidRange, containing this
	}{
		{entry: "192.0.2.0/28", first: "192.0.2.0", last: "192.0.2.15"},
		{entry: "192.0.2.7/32", first: "192.0.2.7", last: "192.0.2.7"},
		{entry: "10.0.0.5/24", first: "10.0.0.0", last: "10.0.0.255"},
		{entry: "0.0.0.0/0", first: "0.0.0.0", last: "255.255.255.255"},
		{entry: "2001:db8::/120", first: "2001:db8::", last: "2001:db8::ff"},
		{entry: "2001:db8::/64", first: "2001:db8::", last: "2001:db8::ffff:ffff:ffff:ffff"},
		{entry: "2001:db8::/63", first: "2001:db8::", last: "2001:db8:0:1:ffff:ffff:ffff:ffff"},
		{entry: "::/0", first: "::", last: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{entry: "192.0.2.10-192.0.2.20", first: "192.0.2.10", last: "192.0.2.20"},
		{entry: " 192.0.2.10 - 192.0.2.20 ", first: "192.0.2.10", last: "192.0.2.20"},
		{entry: "192.0.2.10-192.0.2.10", first: "192.0.2.10", last: "192.0.2.10"},
		{entry: "2001:db8::10-2001:db8::1:0", first: "2001:db8::10", last: "2001:db8::1:0"},

		{entry: "192.0.2.20-192.0.2.10", errHas: "first 192.0.2.20 is after last 192.0.2.10"},
		{entry: "192.0.2.1-2001:db8::1", errHas: "one family"},
		{entry: "::ffff:192.0.2.1-192.0.2.9", errHas: "one family"},
		{entry: "192.0.2.1", errHas: "want a CIDR"},
		{entry: "", errHas: "want a CIDR"},
		{entry: "pool", errHas: "want a CIDR"},
		{entry: "192.0.2.0/33", errHas: "not a CIDR"},
		{entry: "192.0.2/24", errHas: "not a CIDR"},
		{entry: "192.0.2.1-", errHas: "last address: missing"},
		{entry: "-192.0.2.1", errHas: "first address: missing"},
		{entry: "192.0.2.1-192.0.2.2-192.0.2.3", errHas: "exactly one '-'"},
		{entry: "192.0.2.1-192.0.2.x", errHas: "not an IP address"},
		{entry: "fe80::1%eth0-fe80::9", errHas: "zone"},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			r, err := ParseRange(tt.entry)
			if tt.errHas != "" {
				if !errors.Is(err, ErrInvalidRange) || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("ParseRange(%q) = %v, %v; want an ErrInvalidRange containing %q", tt.entry, r, err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRange(%q): %v", tt.entry, err)
			}
			want := Range{First: netip.MustParseAddr(tt.first), Last: netip.MustParseAddr(tt.last)}
			if r != want {
				t.Fatalf("ParseRange(%q) = %v, want %v", tt.entry, r, want)
			}
		})
	}
}

func TestRangeStringAndSize(t *testing.T) {
	tests := []struct {
		entry, str, size string
	}{
		{"192.0.2.0/28", "192.0.2.0/28", "16"},
		{"10.0.0.5/24", "10.0.0.0/24", "256"},
		{"192.0.2.0-192.0.2.15", "192.0.2.0/28", "16"},
		{"192.0.2.1-192.0.2.16", "192.0.2.1-192.0.2.16", "16"},
		{"192.0.2.9-192.0.2.9", "192.0.2.9/32", "1"},
		{"0.0.0.0/0", "0.0.0.0/0", "4294967296"},
		{"2001:db8::/64", "2001:db8::/64", "18446744073709551616"},
		{"::/0", "::/0", "340282366920938463463374607431768211456"},
		{"2001:db8::1-2001:db8::3", "2001:db8::1-2001:db8::3", "3"},
	}
	for _, tt := range tests {
		r, err := ParseRange(tt.entry)
		if err != nil {
			t.Fatalf("ParseRange(%q): %v", tt.entry, err)
		}
		if got := r.String(); got != tt.str {
			t.Errorf("%q: String() = %q, want %q", tt.entry, got, tt.str)
		}
		if got := r.Size().String(); got != tt.size {
			t.Errorf("%q: Size() = %s, want %s", tt.entry, got, tt.size)
		}
	}
}

func TestRangeContainsOverlaps(t *testing.T) {
	r := mustRange(t, "192.0.2.10-192.0.2.20")
	for addr, want := range map[string]bool{
		"192.0.2.9": false, "192.0.2.10": true, "192.0.2.20": true, "192.0.2.21": false,
		"::ffff:192.0.2.15": false, "2001:db8::15": false,
	} {
		if got := r.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	for other, want := range map[string]bool{
		"192.0.2.0/28":            true,
		"192.0.2.20/32":           true,
		"192.0.2.21-192.0.2.30":   false,
		"192.0.2.0-192.0.2.9":     false,
		"::ffff:192.0.2.0/120":    false,
		"192.0.2.12-192.0.2.13":   true,
		"192.0.2.0-192.0.2.255":   true,
		"2001:db8::a-2001:db8::f": false,
	} {
		o := mustRange(t, other)
		if got := r.Overlaps(o); got != want {
			t.Errorf("Overlaps(%s) = %v, want %v", other, got, want)
		}
		if got := o.Overlaps(r); got != want {
			t.Errorf("%s.Overlaps(r) = %v, want %v", other, got, want)
		}
	}
}

func TestParsePool(t *testing.T) {
	tests := []struct {
		name    string
		spec    PoolSpec
		want    []string // Range.String of the normalised ranges
		wantErr error
		errHas  string
	}{
		{
			name: "sorted IPv4 first, overlapping and adjacent joined",
			spec: PoolSpec{Name: "p", Addresses: []string{
				"2001:db8::/120", "192.0.2.16/28", "192.0.2.0/28", "192.0.2.40-192.0.2.50",
				"192.0.2.45-192.0.2.60", "2001:db8::100-2001:db8::1ff", "10.0.0.0/8",
			}},
			want: []string{"10.0.0.0/8", "192.0.2.0/27", "192.0.2.40-192.0.2.60", "2001:db8::/119"},
		},
		{
			name: "identical entries",
			spec: PoolSpec{Name: "p", Addresses: []string{"192.0.2.0/24", "192.0.2.0-192.0.2.255"}},
			want: []string{"192.0.2.0/24"},
		},
		{
			name: "whole spaces",
			spec: PoolSpec{Name: "p", Addresses: []string{"::/0", "2001:db8::/32", "0.0.0.0/1", "128.0.0.0/1"}},
			want: []string{"0.0.0.0/0", "::/0"},
		},
		{
			name:    "no name",
			spec:    PoolSpec{Addresses: []string{"192.0.2.0/24"}},
			wantErr: ErrInvalidPool,
		},
		{
			name:    "no addresses",
			spec:    PoolSpec{Name: "p"},
			wantErr: ErrInvalidPool,
			errHas:  "no addresses",
		},
		{
			name:    "bad entry named",
			spec:    PoolSpec{Name: "p", Addresses: []string{"192.0.2.0/24", "192.0.3.9-192.0.3.1"}},
			wantErr: ErrInvalidRange,
			errHas:  `pool "p": invalid address range "192.0.3.9-192.0.3.1"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePool(tt.spec)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("ParsePool = %v; want %v containing %q", err, tt.wantErr, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range p.Ranges {
				got = append(got, r.String())
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("ranges = %v, want %v", got, tt.want)
			}
		})
	}
}

func mustRange(t testing.TB, entry string) Range {
	t.Helper()
	r, err := ParseRange(entry)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
