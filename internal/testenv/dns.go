package testenv

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// ServeDNS serves handler over UDP and TCP on one free loopback port, until
// stop is called (more than once is fine).
func ServeDNS(handler dns.Handler) (addr string, stop func(), err error) {
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return "", nil, err
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return "", nil, errors.New("no loopback port free for both TCP and UDP")
	}
	servers := []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}}
	var wg sync.WaitGroup
	for _, s := range servers {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		wg.Go(func() { _ = s.ActivateAndServe() })
		<-started
	}
	var once sync.Once
	return pc.LocalAddr().String(), func() {
		once.Do(func() {
			for _, s := range servers {
				_ = s.Shutdown()
			}
			wg.Wait()
		})
	}, nil
}

// ServeDNST is ServeDNS until the test ends.
func ServeDNST(t testing.TB, handler dns.HandlerFunc) string {
	t.Helper()
	addr, stop, err := ServeDNS(handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addr
}

// Upstream is a fake upstream DNS server on loopback, for the operator's
// --dns-upstreams and for the prober's resolver: it answers A and AAAA
// questions from a table of names and zones, counts the questions it is
// asked, and answers names it does not know with NXDOMAIN (or Outside).
type Upstream struct {
	// Addr is where it listens, UDP and TCP, once started.
	Addr string
	// TTL is its answers' TTL; 1 s when zero. Set before Start.
	TTL uint32
	// Authoritative sets the AA bit on its answers. Set before Start.
	Authoritative bool
	// Outside is the rcode for a name it does not know; NXDOMAIN when
	// zero. Set before Start.
	Outside int

	mu    sync.Mutex
	names map[string][]netip.Addr // by lower case FQDN
	zones map[string][]netip.Addr // every name under the zone
	asked map[string]int          // questions, by lower case FQDN
	stop  func()
}

// Set makes name resolve to addrs (none: NODATA).
func (u *Upstream) Set(name string, addrs ...netip.Addr) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.names == nil {
		u.names = map[string][]netip.Addr{}
	}
	u.names[fqdn(name)] = addrs
}

// SetZone makes every name under zone resolve to addrs.
func (u *Upstream) SetZone(zone string, addrs ...netip.Addr) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.zones == nil {
		u.zones = map[string][]netip.Addr{}
	}
	u.zones[fqdn(zone)] = addrs
}

// Asked is how many questions for name it has had.
func (u *Upstream) Asked(name string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.asked[fqdn(name)]
}

func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// lookup is name's addresses, and whether the name is known.
func (u *Upstream) lookup(name string) ([]netip.Addr, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.asked == nil {
		u.asked = map[string]int{}
	}
	u.asked[name]++
	if addrs, ok := u.names[name]; ok {
		return addrs, true
	}
	for zone, addrs := range u.zones {
		if dns.IsSubDomain(zone, name) {
			return addrs, true
		}
	}
	return nil, false
}

// ServeDNS answers one question.
func (u *Upstream) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = u.Authoritative
	if len(q.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	question := q.Question[0]
	addrs, ok := u.lookup(fqdn(question.Name))
	if !ok {
		m.Rcode = dns.RcodeNameError
		if u.Outside != 0 {
			m.Rcode = u.Outside
		}
	}
	ttl := u.TTL
	if ttl == 0 {
		ttl = 1
	}
	for _, a := range addrs {
		hdr := dns.RR_Header{Name: question.Name, Class: dns.ClassINET, Ttl: ttl}
		switch {
		case question.Qtype == dns.TypeA && a.Is4():
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case question.Qtype == dns.TypeAAAA && a.Is6():
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	_ = w.WriteMsg(m)
}

// Start serves the table on a free loopback port.
func (u *Upstream) Start() error {
	addr, stop, err := ServeDNS(u)
	if err != nil {
		return err
	}
	u.Addr, u.stop = addr, stop
	return nil
}

// Close stops the server.
func (u *Upstream) Close() {
	if u.stop != nil {
		u.stop()
	}
}

// StartUpstream starts u until the test ends.
func StartUpstream(t testing.TB, u *Upstream) *Upstream {
	t.Helper()
	if err := u.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return u
}

// Resolver is a resolver that asks only this server.
func (u *Upstream) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", u.Addr)
	}}
}
