package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netintent/netintent/internal/testenv"
)

// fakeUpstream is a resolver on loopback that stands in for the Internet:
// the operator forwards the out-of-zone targets of ExternalName intents to
// it, so no query leaves the machine.
type fakeUpstream struct {
	*testenv.Upstream
	ip net.IP // the address of every name under its zone
}

// startFakeUpstream answers every A question for a name under zone with ip,
// authoritatively, NODATA for other types there and NXDOMAIN for names
// outside it, over UDP and TCP on one loopback port, until the test ends.
func startFakeUpstream(t *testing.T, zone string, ip net.IP) *fakeUpstream {
	t.Helper()
	u := &testenv.Upstream{TTL: 60, Authoritative: true}
	u.SetZone(zone, netip.MustParseAddr(ip.String()))
	return &fakeUpstream{Upstream: testenv.StartUpstream(t, u), ip: ip}
}

// query asks server one question over network (udp or tcp).
func query(network, server, name string, qtype uint16) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	r, _, err := c.Exchange(m, server)
	return r, err
}

// checkA polls until server answers name's A question over network with
// exactly want, authoritatively.
func checkA(t *testing.T, network, server, name, want string) {
	t.Helper()
	testenv.Await(t, fmt.Sprintf("A %s over %s", name, network), 30*time.Second, func() error {
		r, err := query(network, server, name, dns.TypeA)
		if err != nil {
			return err
		}
		if r.Rcode != dns.RcodeSuccess {
			return fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
		}
		var got []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				got = append(got, a.A.String())
			}
		}
		if len(got) != 1 || got[0] != want {
			return fmt.Errorf("answer %v, want [%s]", r.Answer, want)
		}
		if !r.Authoritative {
			return fmt.Errorf("answer is not authoritative: %v", r)
		}
		t.Logf("%s: %s", network, r.Answer[0])
		return nil
	})
}

// checkCNAME polls until server answers name's A question with a CNAME to
// target followed by target's A record as the upstream gave it.
func checkCNAME(t *testing.T, server, name, target string, targetIP net.IP) {
	t.Helper()
	testenv.Await(t, fmt.Sprintf("CNAME %s", name), 30*time.Second, func() error {
		r, err := query("udp", server, name, dns.TypeA)
		if err != nil {
			return err
		}
		if r.Rcode != dns.RcodeSuccess {
			return fmt.Errorf("rcode %s: %v", dns.RcodeToString[r.Rcode], r)
		}
		var cname *dns.CNAME
		var addr *dns.A
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.CNAME:
				if strings.EqualFold(rr.Hdr.Name, dns.Fqdn(name)) {
					cname = rr
				}
			case *dns.A:
				addr = rr
			}
		}
		if cname == nil || !strings.EqualFold(cname.Target, dns.Fqdn(target)) {
			return fmt.Errorf("no CNAME %s -> %s in %v", name, target, r.Answer)
		}
		if addr == nil || !strings.EqualFold(addr.Hdr.Name, dns.Fqdn(target)) || !addr.A.Equal(targetIP) {
			return fmt.Errorf("no A %s %s after the CNAME in %v", target, targetIP, r.Answer)
		}
		t.Logf("udp: %s; %s", cname, addr)
		return nil
	})
}

// checkRefused checks that the server refuses a name outside its zone: it
// is not an open resolver.
func checkRefused(t *testing.T, server, name string) {
	t.Helper()
	r, err := query("udp", server, name, dns.TypeA)
	if err != nil {
		t.Fatalf("querying %s: %v", name, err)
	}
	if r.Rcode != dns.RcodeRefused {
		t.Errorf("%s outside the zone: rcode %s, want REFUSED", name, dns.RcodeToString[r.Rcode])
	}
	t.Logf("%s outside the zone: %s", name, dns.RcodeToString[r.Rcode])
}
