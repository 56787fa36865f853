package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/miekg/dns"
)

// maxUDPSize caps the UDP answers the server sends whatever buffer the client
// offers: the DNS flag day 2020 value, which avoids IP fragmentation.
const maxUDPSize = 1232

// lookupFunc is the lookup a handler uses; tests replace it to inject faults.
type lookupFunc func(s *snapshot, qname string, qtype uint16, c *chain) Result

// handler is the miekg handler. It does no DNS logic of its own: it checks the
// message, asks the lookup (and the forwarder for out-of-zone CNAME targets),
// and writes the Result as a reply that fits the transport.
type handler struct {
	zone      *zone
	index     *Index
	forwarder *forwarder // nil when no upstream is configured
	lookup    lookupFunc
	log       logr.Logger
	// packed keeps UDP replies in wire form for the read loop to answer
	// again (fastpath.go); stopping tells the read loop the server is
	// shutting down.
	packed   *packedReplies
	stopping atomic.Bool
}

var _ dns.Handler = &handler{}

func newHandler(z *zone, idx *Index, fwd *forwarder, log logr.Logger) *handler {
	return &handler{zone: z, index: idx, forwarder: fwd, lookup: z.lookup, log: log, packed: newPackedReplies()}
}

// ServeDNS answers one request. A panic while answering, or while packing the
// reply, is recovered and answered SERVFAIL: one bad question must not take
// the server down.
func (h *handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	rcode := dns.RcodeServerFailure
	defer func() {
		if v := recover(); v != nil {
			rcode = dns.RcodeServerFailure
			panicsTotal.Inc()
			h.log.Error(fmt.Errorf("panic: %v", v), "Recovered from a panic while answering a DNS question",
				"question", questionString(req), "stack", string(debug.Stack()))
			_ = w.WriteMsg(new(dns.Msg).SetRcode(req, dns.RcodeServerFailure))
		}
		qtype := uint16(0)
		if len(req.Question) > 0 {
			qtype = req.Question[0].Qtype
		}
		requestsTotal.WithLabelValues(qtypeLabel(qtype), rcodeLabel(rcode)).Inc()
		requestDuration.Observe(time.Since(start).Seconds())
	}()
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	reply, from, hold := h.answer(req)
	fit(reply, req, udp)
	// Packed here rather than in WriteMsg, so that a reply that cannot be
	// packed is still answered.
	packed, err := reply.Pack()
	if err != nil {
		h.log.Error(err, "Could not pack a DNS reply", "question", questionString(req))
		reply, from = new(dns.Msg).SetRcode(req, dns.RcodeServerFailure), nil
		if packed, err = reply.Pack(); err != nil {
			return
		}
	}
	rcode = reply.Rcode
	if _, err := w.Write(packed); err != nil {
		h.log.V(1).Info("Could not write a DNS reply", "question", questionString(req), "error", err.Error())
	}
	if udp && from != nil {
		if key, ok := msgKey(nil, req); ok {
			h.packed.put(key, from, hold, h.upstreamNow, packed, req.Question[0].Qtype, rcode)
		}
	}
}

// answer builds the reply to req, before it is fitted to the transport.
// from is the snapshot the reply was answered from, and nil when the reply
// may not be given again (packedReplies); hold is how long it may be, when
// an upstream took part, and 0 when the snapshot alone answered.
func (h *handler) answer(req *dns.Msg) (m *dns.Msg, from *snapshot, hold time.Duration) {
	m = new(dns.Msg)
	m.SetReply(req)
	opt, opts := req.IsEdns0(), 0
	for _, rr := range req.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opts++
		}
	}
	switch {
	case opts > 1: // RFC 6891 section 6.1.1
		m.Rcode = dns.RcodeFormatError
		return m, nil, 0
	case opt != nil && opt.Version() != 0:
		m.Rcode = dns.RcodeBadVers
	case req.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
	case len(req.Question) != 1:
		m.Rcode = dns.RcodeFormatError
	default:
		from, hold = h.answerQuestion(m, req.Question[0])
	}
	if opt != nil {
		m.Extra = append(m.Extra, newOPT(opt))
	}
	return m, from, hold
}

// answerQuestion answers q into m. It returns the snapshot the answer came
// from when it may be given again, and for how long when an upstream took
// part (0: as long as the snapshot stands).
func (h *handler) answerQuestion(m *dns.Msg, q dns.Question) (*snapshot, time.Duration) {
	// Not an open resolver: only names in the zone are answered, and only
	// they can cause an upstream query.
	if q.Qclass != dns.ClassINET || !h.zone.contains(q.Name) {
		m.Rcode = dns.RcodeRefused
		return nil, 0
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		m.Rcode = dns.RcodeRefused
		return nil, 0
	}
	if !dataType(q.Qtype) {
		m.Rcode = dns.RcodeNotImplemented
		return nil, 0
	}
	s := h.index.snapshot()
	if s == nil {
		// Until the index has seen everything, a missing name may exist.
		m.Rcode = dns.RcodeServerFailure
		return nil, 0
	}
	r, forwarded := h.resolveForwarded(context.Background(), s, q.Name, q.Qtype)
	switch r.Kind {
	case Success, NoData:
		m.Rcode = dns.RcodeSuccess
	case NameError:
		m.Rcode = dns.RcodeNameError
	case Refused:
		m.Rcode = dns.RcodeRefused
		return nil, 0
	default:
		m.Rcode = dns.RcodeServerFailure
		return nil, 0
	}
	// AA only when the final data is the server's own (RFC 1035 section
	// 4.1.1: the bit speaks of the last name of a CNAME chain).
	m.Authoritative = !r.upstream
	m.Answer, m.Ns, m.Extra = r.Answer, r.Ns, r.Extra
	if forwarded {
		if hold := upstreamHold(m.Answer); hold > 0 {
			return s, hold
		}
		return nil, 0
	}
	return s, 0
}

// maxUpstreamHold is the longest a reply that an upstream took part in is
// given again as packed: the upstream cache lowers TTLs by whole seconds, so
// a reply held for at most a second shows TTLs at most a second high.
const maxUpstreamHold = time.Second

// upstreamHold is how long a reply with these answers may be given again:
// up to maxUpstreamHold, and never past the lowest TTL; 0 (not at all) when
// a TTL is 0 or there is no answer.
func upstreamHold(answer []dns.RR) time.Duration {
	if len(answer) == 0 {
		return 0
	}
	hold := maxUpstreamHold
	for _, rr := range answer {
		hold = min(hold, time.Duration(rr.Header().Ttl)*time.Second)
	}
	return hold
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
// from the index, whatever the upstream said about it.
func (h *handler) resolve(ctx context.Context, s *snapshot, qname string, qtype uint16) Result {
	r, _ := h.resolveForwarded(ctx, s, qname, qtype)
	return r
}

// resolveForwarded is resolve, and reports whether an upstream was asked.
func (h *handler) resolveForwarded(ctx context.Context, s *snapshot, qname string, qtype uint16) (r Result, forwarded bool) {
	c := newChain(qname)
	r = Result{Kind: Delegation, Target: strings.ToLower(dns.Fqdn(qname))}
	if h.zone.contains(qname) {
		r = h.lookup(s, qname, qtype, c)
	}
	for r.Kind == Delegation {
		if h.forwarder == nil {
			return Result{Kind: ServerFailure}, false
		}
		forwarded = true
		up, err := h.forwarder.resolve(ctx, r.Target, qtype)
		if err != nil {
			h.log.V(1).Info("Upstream resolution failed", "target", r.Target, "error", err.Error())
			return Result{Kind: ServerFailure}, true
		}
		records, end, err := h.followUpstream(up, r.Target, qtype, c)
		if err != nil {
			return Result{Kind: ServerFailure}, true
		}
		answer := append(r.Answer[:len(r.Answer):len(r.Answer)], records...)
		switch {
		case h.zone.contains(end):
			r = h.lookup(s, end, qtype, c)
			r.Answer = append(answer, r.Answer...)
		case len(records) > 0 && records[len(records)-1].Header().Rrtype != dns.TypeCNAME,
			end == r.Target, up.rcode == dns.RcodeNameError:
			return upstreamResult(up, answer), true
		default:
			// The upstream stopped at a CNAME it did not follow (it does
			// not recurse): ask for the target in turn.
			r = Result{Kind: Delegation, Answer: answer, Target: end}
		}
	}
	return r, forwarded
}

// resolveHost resolves the addresses of host, an absolute name, the way
// questions for it would be answered: from the index inside the zone, through
// the forwarder outside it.
func (h *handler) resolveHost(ctx context.Context, host string) ([]netip.Addr, error) {
	name := strings.ToLower(dns.Fqdn(host))
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, fmt.Errorf("resolving %q: not a domain name", host)
	}
	// Even outside the zone: a chain may lead back into it.
	s := h.index.snapshot()
	if s == nil {
		return nil, fmt.Errorf("resolving %s: %w", name, ErrNotSynced)
	}
	var addrs []netip.Addr
	var errs []error
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		r := h.resolve(ctx, s, name, qtype)
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

// followUpstream takes from an upstream answer for start what may be passed
// on: the CNAMEs that lead on from start through names outside the zone, and
// the records of the asked type at the end of them. Each hop is recorded in
// the chain. end is the last name reached; when it is inside the zone,
// nothing the upstream says about it is taken. Any other record (other
// owners, NS, SOA, glue) is dropped.
func (h *handler) followUpstream(up *upstreamAnswer, start string, qtype uint16, c *chain) (records []dns.RR, end string, err error) {
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
		if h.zone.contains(end) {
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
	if up.rcode == dns.RcodeNameError {
		return Result{Kind: NameError, Answer: answer, upstream: true}
	}
	if len(answer) == 0 || answer[len(answer)-1].Header().Rrtype == dns.TypeCNAME {
		return Result{Kind: NoData, Answer: answer, upstream: true}
	}
	return Result{Kind: Success, Answer: answer, upstream: true}
}

// fit makes the reply fit the transport: the client's EDNS buffer size (at
// most maxUDPSize, at least 512) over UDP, 64 KiB over TCP. Records that do not
// fit are dropped; TC is set when answer or authority records were dropped, not
// when only additional ones were (RFC 2181 section 9).
func fit(m *dns.Msg, req *dns.Msg, udp bool) {
	size := dns.MaxMsgSize
	if udp {
		size = dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
		}
	}
	answers, authority := len(m.Answer), len(m.Ns)
	m.Truncate(size)
	if len(m.Answer) == answers && len(m.Ns) == authority {
		m.Truncated = false
	}
}

// newOPT is the OPT record of a reply to a request that had one: the server's
// own buffer size, and the DO bit copied (RFC 3225 section 3). Options are not
// echoed (RFC 6891 section 6.1.1).
func newOPT(req *dns.OPT) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(maxUDPSize)
	if req.Do() {
		o.SetDo()
	}
	return o
}

func questionString(req *dns.Msg) string {
	if req == nil || len(req.Question) == 0 {
		return ""
	}
	q := req.Question[0]
	return q.Name + " " + dns.TypeToString[q.Qtype]
}
