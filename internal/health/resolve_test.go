package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/netintent/netintent/internal/testnet"
)

// fixedNames resolves names from a map, as a DNS server's answers would.
type fixedNames map[string][]netip.Addr

var errNoSuchName = errors.New("no such name")

func (f fixedNames) resolve(_ context.Context, host string) ([]netip.Addr, error) {
	addrs, ok := f[host]
	if !ok {
		return nil, fmt.Errorf("asking upstream: %w", errNoSuchName)
	}
	return addrs, nil
}

func TestProbeResolvesAndProbesEveryAddress(t *testing.T) {
	b := newBackend(t)
	port := b.port()
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	names := fixedNames{
		// 127.0.0.2 is on loopback too, with nothing listening on port.
		"one-up.example.test":   {ip("127.0.0.2"), ip("127.0.0.1"), ip("::ffff:127.0.0.1")},
		"all-down.example.test": {ip("127.0.0.2"), ip("127.0.0.3")},
		"empty.example.test":    {},
	}
	c := &Checker{allowForbidden: true, HostResolver: ResolverFunc(names.resolve, errNoSuchName)}
	for _, kind := range []ProbeKind{ProbeTCP, ProbeHTTP} {
		spec := ProbeSpec{Kind: kind, Port: port, Path: "/ok", Timeout: 2 * time.Second}
		t.Run(string(kind), func(t *testing.T) {
			res := c.Probe(t.Context(), "one-up.example.test", spec)
			// The mapped address is the same as 127.0.0.1: probed once.
			if res.Err != nil || res.Addresses != 2 || res.Passed != 1 {
				t.Errorf("one-up: %+v, want a pass with 1 of 2 addresses", res)
			}
			res = c.Probe(t.Context(), "all-down.example.test", spec)
			if got := FailureClass(res.Err); got != FailureConnectionRefused || res.Addresses != 2 || res.Passed != 0 {
				t.Errorf("all-down: %+v (class %q), want ConnectionRefused with 0 of 2", res, got)
			}
			for _, name := range []string{"empty.example.test", "missing.example.test"} {
				res = c.Probe(t.Context(), name, spec)
				if got := FailureClass(res.Err); got != FailureNoAddress || res.Addresses != 0 {
					t.Errorf("%s: %+v (class %q), want NoAddress", name, res, got)
				}
			}
		})
	}
	b.mu.Lock()
	host := b.lastHost
	b.mu.Unlock()
	if want := net.JoinHostPort("one-up.example.test", strconv.Itoa(port)); host != want {
		t.Errorf("HTTP Host header %q, want %q: the name clients ask for", host, want)
	}
}

// TestProbeNeverDialsARefusedResolvedAddress: a name whose answer holds a
// loopback or metadata address is refused whole, and no address of it is
// dialled, not even the allowed ones.
func TestProbeNeverDialsARefusedResolvedAddress(t *testing.T) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	names := fixedNames{
		"loopback.example.test": {ip("127.0.0.1")},
		"metadata.example.test": {ip("169.254.169.254")},
		"mixed.example.test":    {ip("192.0.2.1"), ip("127.0.0.1")},
	}
	c := &Checker{HostResolver: ResolverFunc(names.resolve, nil)}
	for name := range names {
		for _, kind := range []ProbeKind{ProbeTCP, ProbeHTTP} {
			res := c.Probe(t.Context(), name, ProbeSpec{Kind: kind, Port: port, Timeout: time.Second})
			if !errors.Is(res.Err, ErrForbiddenTarget) || FailureClass(res.Err) != FailureForbiddenTarget || res.Addresses != 0 {
				t.Errorf("%s %s: %+v, want ForbiddenTarget with nothing dialled", kind, name, res)
			}
		}
	}
	if err := testnet.NothingConnected(ln); err != nil {
		t.Errorf("a refused address was dialled: %v", err)
	}
}

// TestResolverFailureIsNameResolutionFailed: resolvers that fail (every
// upstream down, say) make the target unhealthy as NameResolutionFailed,
// told apart from a name without addresses (NoAddress).
func TestResolverFailureIsNameResolutionFailed(t *testing.T) {
	failing := ResolverFunc(func(context.Context, string) ([]netip.Addr, error) {
		return nil, errors.New("every upstream failed")
	}, nil)
	empty := ResolverFunc(func(context.Context, string) ([]netip.Addr, error) { return nil, nil }, nil)
	for _, tc := range []struct {
		resolver Resolver
		want     string
	}{{failing, FailureNameResolution}, {empty, FailureNoAddress}} {
		c := &Checker{HostResolver: tc.resolver}
		res := c.Probe(t.Context(), "api.example.test", ProbeSpec{Kind: ProbeTCP, Port: 443, Timeout: time.Second})
		if got := FailureClass(res.Err); got != tc.want || res.Addresses != 0 {
			t.Errorf("%+v: class %q, want %q with nothing dialled", res, got, tc.want)
		}
	}
}
