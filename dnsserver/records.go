package dnsserver

import (
	"net/netip"

	"github.com/miekg/dns"
)

// The builders below spell out every header so that a record's owner, type,
// class and TTL are visible where it is made.

func newA(name string, ttl uint32, addr netip.Addr) *dns.A {
	return &dns.A{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
		A:   addr.AsSlice(),
	}
}

func newAAAA(name string, ttl uint32, addr netip.Addr) *dns.AAAA {
	return &dns.AAAA{
		Hdr:  dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl},
		AAAA: addr.AsSlice(),
	}
}

// newAddress returns an A or AAAA record, by the address family.
func newAddress(name string, ttl uint32, addr netip.Addr) dns.RR {
	if addr.Is4() {
		return newA(name, ttl, addr)
	}
	return newAAAA(name, ttl, addr)
}

func newCNAME(name string, ttl uint32, target string) *dns.CNAME {
	return &dns.CNAME{
		Hdr:    dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl},
		Target: target,
	}
}

// newSRV gives every target the same priority: the Kubernetes DNS
// specification leaves it open and endpoints of a Service are peers.
func newSRV(name string, ttl uint32, weight, port uint16, target string) *dns.SRV {
	return &dns.SRV{
		Hdr:      dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl},
		Priority: 0,
		Weight:   weight,
		Port:     port,
		Target:   target,
	}
}

func newNS(name string, ttl uint32, host string) *dns.NS {
	return &dns.NS{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: ttl},
		Ns:  host,
	}
}

// newSOA builds the zone's SOA. Its minimum, and its own TTL, are the default
// answer TTL, so negative answers are cached no longer than positive ones
// (RFC 2308 section 5 takes the lower of the two).
func newSOA(z *zone, serial uint32) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: z.origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: z.ttl},
		Ns:      z.nameserver,
		Mbox:    z.mailbox,
		Serial:  serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  z.ttl,
	}
}

// newHINFO is the synthesized answer to ANY that RFC 8482 section 4.2 suggests.
func newHINFO(name string, ttl uint32) *dns.HINFO {
	return &dns.HINFO{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: ttl},
		Cpu: "RFC8482",
		Os:  "",
	}
}
