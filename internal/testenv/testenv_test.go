package testenv

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestUpstream asks the fake upstream over UDP and TCP what the tests that
// use it rely on: names and zones from its table, NODATA for a family a
// name lacks, its rcode for names it does not know, and a count of what
// it was asked.
func TestUpstream(t *testing.T) {
	u := &Upstream{TTL: 60, Authoritative: true}
	u.Set("web.example.test", netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"))
	u.SetZone("example.org", netip.MustParseAddr("192.0.2.7"))
	StartUpstream(t, u)
	cases := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers []string
	}{
		{"web.example.test.", dns.TypeA, dns.RcodeSuccess, []string{"web.example.test.\t60\tIN\tA\t192.0.2.1"}},
		{"WEB.example.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"WEB.example.test.\t60\tIN\tAAAA\t2001:db8::1"}},
		{"a.b.example.org.", dns.TypeA, dns.RcodeSuccess, []string{"a.b.example.org.\t60\tIN\tA\t192.0.2.7"}},
		{"a.example.org.", dns.TypeAAAA, dns.RcodeSuccess, nil},
		{"missing.example.test.", dns.TypeA, dns.RcodeNameError, nil},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range cases {
			r, _, err := (&dns.Client{Net: network, Timeout: 2 * time.Second}).Exchange(new(dns.Msg).SetQuestion(tc.name, tc.qtype), u.Addr)
			if err != nil {
				t.Fatalf("%s %s: %v", network, tc.name, err)
			}
			var got []string
			for _, rr := range r.Answer {
				got = append(got, rr.String())
			}
			if r.Rcode != tc.rcode || len(got) != len(tc.answers) || (len(got) > 0 && got[0] != tc.answers[0]) || !r.Authoritative {
				t.Errorf("%s %s %s: %s %v (AA %v), want %s %v", network, tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[r.Rcode], got, r.Authoritative, dns.RcodeToString[tc.rcode], tc.answers)
			}
		}
	}
	if n := u.Asked("web.example.test"); n != 4 {
		t.Errorf("asked web.example.test %d times, want 4", n)
	}
	addrs, err := u.Resolver().LookupNetIP(context.Background(), "ip4", "web.example.test")
	if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("resolver: %v, %v", addrs, err)
	}
}

// TestPoll: a check is called until it passes, and a wait that times out
// returns the check's last error, named.
func TestPoll(t *testing.T) {
	calls := 0
	err := Poll(context.Background(), time.Millisecond, time.Second, "third call", func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Poll = %v after %d calls, want nil after 3", err, calls)
	}
	last := errors.New("still failing")
	err = Poll(context.Background(), time.Millisecond, 20*time.Millisecond, "never", func() error { return last })
	if !errors.Is(err, last) || err.Error() != "never: not within 20ms: still failing" {
		t.Errorf("Poll = %v, want the last error, named", err)
	}
	if err := Holds("flag set", func() bool { return false })(); err == nil || err.Error() != "flag set" {
		t.Errorf("Holds = %v, want its name as the error", err)
	}
}

// TestFreeAddr: the address is on loopback and free for TCP and UDP.
func TestFreeAddr(t *testing.T) {
	addr := FreeAddrT(t)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("TCP on %s: %v", addr, err)
	}
	defer l.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP on %s: %v", addr, err)
	}
	pc.Close()
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Errorf("FreeAddr = %s, want one on 127.0.0.1", addr)
	}
}

// TestFreeAddrsAreDistinct asks for many free addresses at once: no two are
// alike, and each takes a TCP listener.
func TestFreeAddrsAreDistinct(t *testing.T) {
	addrs, err := FreeAddrs(50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s given twice in %v", a, addrs)
		}
		seen[a] = true
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s is not free: %v", a, err)
		}
		l.Close()
	}
}
