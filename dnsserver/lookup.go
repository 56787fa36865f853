package dnsserver

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// maxChain is how many CNAMEs one answer may follow; the next one is an error.
const maxChain = 8

// ResultKind says how a lookup ended.
type ResultKind int

const (
	// Success: the name has records of the asked type; they are in Answer.
	Success ResultKind = iota
	// NameError: the name does not exist (NXDOMAIN). Answer holds any CNAMEs
	// that led to it and Ns the zone's SOA.
	NameError
	// NoData: the name exists but has no records of the asked type. Answer
	// holds any CNAMEs that led to it and Ns the zone's SOA.
	NoData
	// ServerFailure: no answer can be given (SERVFAIL), e.g. a CNAME loop or
	// a chain longer than maxChain.
	ServerFailure
	// Delegation: the answer continues outside the zone. Answer holds the
	// CNAMEs so far; the last one points at Target, which only an upstream
	// resolver can answer.
	Delegation
	// Refused: the name is not in the zone, or the question is one the
	// server does not take (a zone transfer, a class other than IN).
	Refused
	// NotImplemented: the question asks for a meta or obsolete type (NOTIMP).
	NotImplemented
)

var resultKindNames = [...]string{"Success", "NameError", "NoData", "ServerFailure", "Delegation", "Refused", "NotImplemented"}

func (k ResultKind) String() string {
	if int(k) < len(resultKindNames) {
		return resultKindNames[k]
	}
	return "ResultKind(?)"
}

// Result is the outcome of a lookup, before it is written as a reply.
type Result struct {
	Kind   ResultKind
	Answer []dns.RR
	Ns     []dns.RR
	Extra  []dns.RR
	// Target is the out-of-zone name to resolve next when Kind is Delegation.
	Target string
	// upstream is set when the answer's final data (or its denial) came from
	// an upstream resolver: the reply is then not authoritative.
	upstream bool
	// forwarded is set when an upstream was asked on the way, even if the
	// chain came back into the zone: the reply then ages with the upstream
	// cache.
	forwarded bool
}

var (
	errCNAMELoop  = errors.New("CNAME loop")
	errCNAMEChain = errors.New("CNAME chain too long")
)

// chain records the names an answer has passed through, to stop loops and
// chains longer than maxChain.
type chain struct {
	names []string
}

func newChain(qname string) *chain {
	return &chain{names: []string{strings.ToLower(qname)}}
}

// follow records a CNAME hop to target.
func (c *chain) follow(target string) error {
	target = strings.ToLower(target)
	for _, n := range c.names {
		if n == target {
			return errCNAMELoop
		}
	}
	if len(c.names) > maxChain {
		return errCNAMEChain
	}
	c.names = append(c.names, target)
	return nil
}

// zone is the authority the server holds: svc.<cluster-domain>.
type zone struct {
	origin     string // "svc.cluster.local."
	labels     int    // labels in origin
	ttl        uint32 // default TTL of answers
	nameserver string // NS target and SOA MNAME
	mailbox    string // SOA RNAME
}

func newZone(clusterDomain string, ttl uint32) *zone {
	domain := dns.Fqdn(strings.ToLower(clusterDomain))
	origin := "svc." + domain
	return &zone{
		origin:     origin,
		labels:     dns.CountLabel(origin),
		ttl:        ttl,
		nameserver: "ns.dns." + domain,
		mailbox:    "hostmaster." + domain,
	}
}

// contains reports whether name is the zone's origin or below it.
func (z *zone) contains(name string) bool {
	return dns.IsSubDomain(z.origin, strings.ToLower(name))
}

// Lookup answers one question from a snapshot, following CNAMEs inside the
// zone. It does no I/O: an out-of-zone CNAME target ends it with Delegation.
func (z *zone) Lookup(s *snapshot, qname string, qtype uint16) Result {
	return z.lookup(s, qname, qtype, newChain(qname))
}

func (z *zone) lookup(s *snapshot, qname string, qtype uint16, c *chain) Result {
	var answer []dns.RR
	name := qname
	for {
		r, target := z.node(s, name, qtype)
		answer = append(answer, r.Answer...)
		r.Answer = answer
		if target == "" {
			if r.Kind == NameError || r.Kind == NoData {
				r.Ns = []dns.RR{newSOA(z, s.serial)}
			}
			return r
		}
		if err := c.follow(target); err != nil {
			return Result{Kind: ServerFailure}
		}
		if !z.contains(target) {
			return Result{Kind: Delegation, Answer: answer, Target: target}
		}
		name = target
	}
}

// node answers a question about one name. When the name is an alias to be
// followed, it returns the CNAME in the Answer and its target.
func (z *zone) node(s *snapshot, name string, qtype uint16) (Result, string) {
	lower := strings.ToLower(name)
	if !dns.IsSubDomain(z.origin, lower) {
		return Result{Kind: Refused}, ""
	}
	all := dns.SplitDomainName(lower)
	labels := all[:len(all)-z.labels]
	switch len(labels) {
	case 0:
		return z.apex(s, name, qtype), ""
	case 1: // <ns>: exists, without records, while the namespace has a Service
		if s.hasNamespace(labels[0]) {
			return Result{Kind: NoData}, ""
		}
		return Result{Kind: NameError}, ""
	case 2: // <service>.<ns>
		svc := s.service(labels[1], labels[0])
		if svc == nil {
			return Result{Kind: NameError}, ""
		}
		return z.service(svc, name, qtype)
	case 3: // _<proto>.<service>.<ns> or <hostname>.<service>.<ns>
		svc := s.service(labels[2], labels[1])
		if svc == nil {
			return Result{Kind: NameError}, ""
		}
		if proto, ok := strings.CutPrefix(labels[0], "_"); ok {
			for _, p := range svc.namedPorts() {
				if p.name != "" && p.proto == proto {
					return Result{Kind: NoData}, ""
				}
			}
			return Result{Kind: NameError}, ""
		}
		return z.endpointHost(svc, name, labels[0], labels[1]+"."+labels[2]+"."+z.origin, qtype), ""
	case 4: // _<port>._<proto>.<service>.<ns>
		port, okPort := strings.CutPrefix(labels[0], "_")
		proto, okProto := strings.CutPrefix(labels[1], "_")
		if !okPort || !okProto || port == "" || proto == "" {
			return Result{Kind: NameError}, ""
		}
		svc := s.service(labels[3], labels[2])
		if svc == nil {
			return Result{Kind: NameError}, ""
		}
		return z.namedSRV(svc, name, port, proto, labels[2]+"."+labels[3]+"."+z.origin, qtype), ""
	}
	return Result{Kind: NameError}, ""
}

func (z *zone) apex(s *snapshot, name string, qtype uint16) Result {
	switch qtype {
	case dns.TypeSOA, dns.TypeANY:
		soa := newSOA(z, s.serial)
		soa.Hdr.Name = name
		return Result{Kind: Success, Answer: []dns.RR{soa}}
	case dns.TypeNS:
		return Result{Kind: Success, Answer: []dns.RR{newNS(name, z.ttl, z.nameserver)}}
	}
	return Result{Kind: NoData}
}

func (z *zone) service(svc *serviceRecord, name string, qtype uint16) (Result, string) {
	ttl := z.ttlOf(svc)
	switch svc.kind {
	case kindExternalName:
		if svc.externalName == "" {
			return Result{Kind: NoData}, ""
		}
		cname := newCNAME(name, ttl, svc.externalName)
		if qtype == dns.TypeCNAME || qtype == dns.TypeANY {
			return Result{Kind: Success, Answer: []dns.RR{cname}}, ""
		}
		return Result{Kind: Success, Answer: []dns.RR{cname}}, svc.externalName
	case kindHeadless:
		// The specification asks NXDOMAIN for a headless Service without
		// ready endpoints: it has no names at all then.
		if len(svc.endpoints) == 0 {
			return Result{Kind: NameError}, ""
		}
		if qtype == dns.TypeANY {
			return Result{Kind: Success, Answer: []dns.RR{newHINFO(name, ttl)}}, ""
		}
		if qtype == dns.TypeSRV {
			return z.bareSRV(svc, name), ""
		}
		var answer []dns.RR
		var last netip.Addr
		for _, ep := range svc.endpoints {
			if ep.addr != last && familyMatches(ep.addr, qtype) {
				answer = append(answer, newAddress(name, ttl, ep.addr))
			}
			last = ep.addr
		}
		return answerOrNoData(answer), ""
	default:
		if qtype == dns.TypeANY {
			return Result{Kind: Success, Answer: []dns.RR{newHINFO(name, ttl)}}, ""
		}
		if qtype == dns.TypeSRV {
			return z.bareSRV(svc, name), ""
		}
		var answer []dns.RR
		for _, ip := range svc.clusterIPs {
			if familyMatches(ip, qtype) {
				answer = append(answer, newAddress(name, ttl, ip))
			}
		}
		return answerOrNoData(answer), ""
	}
}

// endpointHost answers <hostname>.<service>.<ns>: the ready endpoint with
// that hostname (or dashed address), for a headless Service and, as CoreDNS
// answers them, for one with a cluster IP too.
// Asked for SRV, it gives one record per port of the endpoint, to itself.
func (z *zone) endpointHost(svc *serviceRecord, name, host, svcName string, qtype uint16) Result {
	ttl := z.ttlOf(svc)
	found := false
	var answer []dns.RR
	for _, ep := range svc.endpoints {
		if ep.host != host {
			continue
		}
		found = true
		if familyMatches(ep.addr, qtype) {
			answer = append(answer, newAddress(name, ttl, ep.addr))
		}
	}
	switch {
	case !found:
		return Result{Kind: NameError}
	case qtype == dns.TypeANY:
		return Result{Kind: Success, Answer: []dns.RR{newHINFO(name, ttl)}}
	case qtype == dns.TypeSRV:
		if r := z.srv(svc, name, "", "", svcName, host); len(r.Answer) > 0 {
			return r
		}
		return Result{Kind: NoData}
	}
	return answerOrNoData(answer)
}

// bareSRV answers SRV for <service>.<ns>: one record per port (and per
// endpoint, headless), NODATA without any.
func (z *zone) bareSRV(svc *serviceRecord, name string) Result {
	r := z.srv(svc, name, "", "", strings.ToLower(name), "")
	if len(r.Answer) == 0 {
		return Result{Kind: NoData}
	}
	return r
}

// namedSRV answers _<port>._<proto>.<service>.<ns>: NXDOMAIN when no port
// has that name and protocol.
func (z *zone) namedSRV(svc *serviceRecord, name, port, proto, svcName string, qtype uint16) Result {
	r := z.srv(svc, name, port, proto, svcName, "")
	switch {
	case len(r.Answer) == 0:
		return Result{Kind: NameError}
	case qtype == dns.TypeSRV:
		return r
	case qtype == dns.TypeANY:
		return Result{Kind: Success, Answer: []dns.RR{newHINFO(name, z.ttlOf(svc))}}
	}
	return Result{Kind: NoData}
}

// srv returns the SRV records, owned by name, of the Service's ports with the
// given name and protocol, or of all its ports when both are empty (the SRV
// records of the bare Service name). A Service with a cluster IP has one SRV
// per port, to its own name; a headless one one per ready endpoint and port,
// to the endpoint's name, on the endpoint's port. With host set, only the
// endpoints of that name are taken, whatever the kind of Service. The
// addresses of the targets go in the additional section.
//
// The weights split 100 evenly, as CoreDNS's kubernetes plugin does, over
// every (target address, port) pair: for a dual-stack Service, or an
// endpoint with an IPv4 and an IPv6 address, there are more pairs than
// records.
func (z *zone) srv(svc *serviceRecord, name, port, proto, svcName, host string) Result {
	type candidate struct {
		target string
		port   uint16
		addr   netip.Addr
	}
	matches := func(p portSpec) bool {
		return (port == "" && proto == "") || (p.name == port && p.proto == proto)
	}
	var cands []candidate
	switch {
	case host != "" || svc.kind == kindHeadless:
		for _, ep := range svc.endpoints {
			if host != "" && ep.host != host {
				continue
			}
			for _, p := range ep.ports.all() {
				if matches(p) {
					cands = append(cands, candidate{ep.host + "." + svcName, p.port, ep.addr})
				}
			}
		}
	case svc.kind == kindClusterIP:
		for _, p := range svc.ports.all() {
			if matches(p) {
				for _, ip := range svc.clusterIPs {
					cands = append(cands, candidate{svcName, p.port, ip})
				}
			}
		}
	}
	if len(cands) == 0 {
		return Result{}
	}
	ttl := z.ttlOf(svc)
	weight := uint16(max(100/len(cands), 1))
	type srvKey struct {
		target string
		port   uint16
	}
	type addrKey struct {
		target string
		addr   netip.Addr
	}
	records, addrs := map[srvKey]bool{}, map[addrKey]bool{}
	var answer, extra []dns.RR
	for _, c := range cands {
		if k := (srvKey{c.target, c.port}); !records[k] {
			records[k] = true
			answer = append(answer, newSRV(name, ttl, weight, c.port, c.target))
		}
		if k := (addrKey{c.target, c.addr}); !addrs[k] {
			addrs[k] = true
			extra = append(extra, newAddress(c.target, ttl, c.addr))
		}
	}
	return Result{Kind: Success, Answer: answer, Extra: extra}
}

// namedPorts lists the ports that give a Service SRV names: its own for a
// Service with a cluster IP, its ready endpoints' for a headless one.
func (svc *serviceRecord) namedPorts() []portSpec {
	switch svc.kind {
	case kindClusterIP:
		return svc.ports.all()
	case kindHeadless:
		var ports []portSpec
		for _, ep := range svc.endpoints {
			ports = append(ports, ep.ports.all()...)
		}
		return ports
	}
	return nil
}

func (z *zone) ttlOf(svc *serviceRecord) uint32 {
	if svc.hasTTL {
		return svc.ttl
	}
	return z.ttl
}

func familyMatches(addr netip.Addr, qtype uint16) bool {
	return (qtype == dns.TypeA && addr.Is4()) || (qtype == dns.TypeAAAA && addr.Is6())
}

func answerOrNoData(answer []dns.RR) Result {
	if len(answer) == 0 {
		return Result{Kind: NoData}
	}
	return Result{Kind: Success, Answer: answer}
}
