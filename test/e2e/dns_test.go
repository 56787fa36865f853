package e2e

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeUpstream is a resolver on loopback that stands in for the Internet:
// the operator forwards the out-of-zone targets of ExternalName intents to
// it, so no query leaves the machine.
type fakeUpstream struct {
	addr string
	zone string // it answers A questions for names under zone
	ip   net.IP // with this address

	mu    sync.Mutex
	asked map[string]int // questions received, by FQDN
}

// startFakeUpstream answers every A question for a name under zone with ip,
// over UDP and TCP on one loopback port, until the test ends.
func startFakeUpstream(t *testing.T, zone string, ip net.IP) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{zone: dns.Fqdn(zone), ip: ip, asked: map[string]int{}}
	var pc net.PacketConn
	var l net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no loopback port free for the fake upstream")
	}
	u.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: u},
		{Listener: l, Handler: u},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return u
}

// ServeDNS answers A questions under the zone, NODATA for other types there,
// and NXDOMAIN for names outside it.
func (u *fakeUpstream) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) == 1 {
		name := strings.ToLower(q.Question[0].Name)
		u.mu.Lock()
		u.asked[name]++
		u.mu.Unlock()
		switch {
		case !dns.IsSubDomain(u.zone, name):
			m.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   u.ip,
			})
		}
	}
	_ = w.WriteMsg(m)
}

func (u *fakeUpstream) timesAsked(name string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.asked[dns.Fqdn(strings.ToLower(name))]
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
	eventually(t, 30*time.Second, fmt.Sprintf("A %s over %s", name, network), func() error {
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
	eventually(t, 30*time.Second, fmt.Sprintf("CNAME %s", name), func() error {
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
