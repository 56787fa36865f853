package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/miekg/dns"
)

// lookupFunc is the zone lookup a resolver uses; tests replace it to inject
// faults.
type lookupFunc func(s *snapshot, qname string, qtype uint16, c *chain) Result

// resolver answers the questions the server takes: it decides which it
// answers at all, looks them up in the index's snapshot, and, while an answer
// leads out of the zone (the CNAME of an ExternalName Service), continues it
// through the forwarder, which tries the upstreams in turn, so that one
// Result carries the whole chain. It writes no reply: the handler maps its
// Result onto one.
type resolver struct {
	zone      *zone
	index     *Index
	forwarder *forwarder // nil when no upstream is configured
	lookup    lookupFunc
	log       logr.Logger
}

func newResolver(z *zone, idx *Index, fwd *forwarder, log logr.Logger) *resolver {
	return &resolver{zone: z, index: idx, forwarder: fwd, lookup: z.lookup, log: log}
}

// question answers q. Refused when q is not for the zone (the server is not
// an open resolver: only names in the zone can cause an upstream query) or
// asks for a zone transfer; NotImplemented for meta and obsolete types;
// ServerFailure until the index has synced, as a missing name may then
// exist. s is the snapshot the answer came from, nil when it was not asked.
func (rv *resolver) question(ctx context.Context, q dns.Question) (r Result, s *snapshot) {
	if q.Qclass != dns.ClassINET || !rv.zone.contains(q.Name) || q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		return Result{Kind: Refused}, nil
	}
	if !dataType(q.Qtype) {
		return Result{Kind: NotImplemented}, nil
	}
	if s = rv.index.snapshot(); s == nil {
		return Result{Kind: ServerFailure}, nil
	}
	return rv.resolve(ctx, s, q.Name, q.Qtype), s
}

// typeA6 is the obsolete A6 type, which the dns package does not name.
const typeA6 = 38

// dataType reports whether qtype asks for data that may exist, rather than
// being a meta type (RFC 6895 section 3.1: OPT, TSIG, TKEY and the range
// 128-255 other than the zone transfers and ANY, handled elsewhere) or an
// obsolete one (MD, MF, MB, MG, MR, MAILA, MAILB: RFC 1035 and RFC 2505;
// NXT: RFC 3755; A6: RFC 6563). Those are answered NOTIMP and never forwarded.
func dataType(qtype uint16) bool {
	switch qtype {
	case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR:
		return true
	case dns.TypeNone, dns.TypeMD, dns.TypeMF, dns.TypeMB, dns.TypeMG, dns.TypeMR,
		dns.TypeNXT, typeA6, dns.TypeOPT, dns.TypeMAILA, dns.TypeMAILB:
		return false
	}
	return qtype < 128 || qtype > 255
}

// resolve looks a question up in the snapshot and, while the answer leads out
// of the zone, continues it upstream, across as many hops as the chain allows.
// Zone data only ever comes from the snapshot: the first name of an upstream
// chain inside the zone ends the upstream part, and the rest is answered
// from the index, whatever the upstream said about it. The Result records
// whether an upstream was asked.
func (rv *resolver) resolve(ctx context.Context, s *snapshot, qname string, qtype uint16) Result {
	c := newChain(qname)
	r := Result{Kind: Delegation, Target: strings.ToLower(dns.Fqdn(qname))}
	if rv.zone.contains(qname) {
		r = rv.lookup(s, qname, qtype, c)
	}
	for r.Kind == Delegation {
		if rv.forwarder == nil {
			return Result{Kind: ServerFailure}
		}
		up, err := rv.forwarder.resolve(ctx, r.Target, qtype)
		if err != nil {
			rv.log.V(1).Info("Upstream resolution failed", "target", r.Target, "error", err.Error())
			return Result{Kind: ServerFailure, forwarded: true}
		}
		records, end, err := rv.followUpstream(up, r.Target, qtype, c)
		if err != nil {
			return Result{Kind: ServerFailure, forwarded: true}
		}
		answer := append(r.Answer[:len(r.Answer):len(r.Answer)], records...)
		switch {
		case rv.zone.contains(end):
			r = rv.lookup(s, end, qtype, c)
			r.Answer = append(answer, r.Answer...)
			r.forwarded = true
		case len(records) > 0 && records[len(records)-1].Header().Rrtype != dns.TypeCNAME,
			end == r.Target, up.rcode == dns.RcodeNameError:
			return upstreamResult(up, answer)
		default:
			// The upstream stopped at a CNAME it did not follow (it does
			// not recurse): ask for the target in turn.
			r = Result{Kind: Delegation, Answer: answer, Target: end}
		}
	}
	return r
}

// followUpstream takes from an upstream answer for start what may be passed
// on: the CNAMEs that lead on from start through names outside the zone, and
// the records of the asked type at the end of them. Each hop is recorded in
// the chain. end is the last name reached; when it is inside the zone,
// nothing the upstream says about it is taken. Any other record (other
// owners, NS, SOA, glue) is dropped.
func (rv *resolver) followUpstream(up *upstreamAnswer, start string, qtype uint16, c *chain) (records []dns.RR, end string, err error) {
	end = start
	for qtype != dns.TypeCNAME {
		var next *dns.CNAME
		for _, rr := range up.answer {
			if cname, ok := rr.(*dns.CNAME); ok && strings.EqualFold(cname.Hdr.Name, end) {
				next = cname
				break
			}
		}
		if next == nil {
			break
		}
		if err := c.follow(next.Target); err != nil {
			return nil, "", err
		}
		records = append(records, next)
		end = strings.ToLower(next.Target)
		if rv.zone.contains(end) {
			return records, end, nil
		}
	}
	for _, rr := range up.answer {
		if strings.EqualFold(rr.Header().Name, end) && rr.Header().Rrtype == qtype {
			records = append(records, rr)
		}
	}
	return records, end, nil
}

// upstreamResult is the Result of a question whose chain ended outside the
// zone. Its rcode is the upstream's for the last name of the chain (RFC 6604
// section 3); the upstream's authority records are not passed on, as the
// server speaks for no zone but its own.
func upstreamResult(up *upstreamAnswer, answer []dns.RR) Result {
	kind := Success
	switch {
	case up.rcode == dns.RcodeNameError:
		kind = NameError
	case len(answer) == 0 || answer[len(answer)-1].Header().Rrtype == dns.TypeCNAME:
		kind = NoData
	}
	return Result{Kind: kind, Answer: answer, upstream: true, forwarded: true}
}

// addresses resolves the addresses of host, an absolute name, the way
// questions for it would be answered: from the index inside the zone, through
// the forwarder outside it.
func (rv *resolver) addresses(ctx context.Context, host string) ([]netip.Addr, error) {
	name := strings.ToLower(dns.Fqdn(host))
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, fmt.Errorf("resolving %q: not a domain name", host)
	}
	// Even outside the zone: a chain may lead back into it.
	s := rv.index.snapshot()
	if s == nil {
		return nil, fmt.Errorf("resolving %s: %w", name, ErrNotSynced)
	}
	var addrs []netip.Addr
	var errs []error
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		r := rv.resolve(ctx, s, name, qtype)
		if r.Kind == ServerFailure {
			errs = append(errs, fmt.Errorf("resolving %s %s: no answer", name, dns.TypeToString[qtype]))
			continue
		}
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(rr.A); ok {
					addrs = append(addrs, a.Unmap())
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(rr.AAAA); ok {
					addrs = append(addrs, a)
				}
			}
		}
	}
	switch {
	case len(addrs) > 0:
		return addrs, nil
	case len(errs) > 0:
		return nil, errors.Join(errs...)
	}
	return nil, fmt.Errorf("resolving %s: %w", name, ErrNoAddresses)
}

// now is the upstream cache's clock, which also times how long a reply an
// upstream took part in may be given again.
func (rv *resolver) now() time.Time {
	if rv.forwarder != nil {
		return rv.forwarder.now()
	}
	return time.Now()
}
