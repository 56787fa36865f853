package dnsserver

import (
	"context"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
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
}

var _ dns.Handler = &handler{}

func newHandler(z *zone, idx *Index, fwd *forwarder, log logr.Logger) *handler {
	return &handler{zone: z, index: idx, forwarder: fwd, lookup: z.lookup, log: log}
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
	reply := h.answer(req)
	fit(reply, req, udp)
	// Packed here rather than in WriteMsg, so that a reply that cannot be
	// packed is still answered.
	packed, err := reply.Pack()
	if err != nil {
		h.log.Error(err, "Could not pack a DNS reply", "question", questionString(req))
		reply = new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
		if packed, err = reply.Pack(); err != nil {
			return
		}
	}
	rcode = reply.Rcode
	if _, err := w.Write(packed); err != nil {
		h.log.V(1).Info("Could not write a DNS reply", "question", questionString(req), "error", err.Error())
	}
}

// answer builds the reply to req, before it is fitted to the transport.
func (h *handler) answer(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
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
		return m
	case opt != nil && opt.Version() != 0:
		m.Rcode = dns.RcodeBadVers
	case req.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
	case len(req.Question) != 1:
		m.Rcode = dns.RcodeFormatError
	default:
		h.answerQuestion(m, req.Question[0])
	}
	if opt != nil {
		m.Extra = append(m.Extra, newOPT(opt))
	}
	return m
}

func (h *handler) answerQuestion(m *dns.Msg, q dns.Question) {
	// Not an open resolver: only names in the zone are answered, and only
	// they can cause an upstream query.
	if q.Qclass != dns.ClassINET || !h.zone.contains(q.Name) {
		m.Rcode = dns.RcodeRefused
		return
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		m.Rcode = dns.RcodeRefused
		return
	}
	s := h.index.snapshot()
	if s == nil {
		// Until the index has seen everything, a missing name may exist.
		m.Rcode = dns.RcodeServerFailure
		return
	}
	r := h.resolve(s, q.Name, q.Qtype)
	switch r.Kind {
	case Success, NoData:
		m.Rcode = dns.RcodeSuccess
	case NameError:
		m.Rcode = dns.RcodeNameError
	case Refused:
		m.Rcode = dns.RcodeRefused
		return
	default:
		m.Rcode = dns.RcodeServerFailure
		return
	}
	m.Authoritative = true
	m.Answer, m.Ns, m.Extra = r.Answer, r.Ns, r.Extra
}

// resolve looks a question up in the snapshot and, while the answer leads out
// of the zone, continues it upstream, across as many hops as the chain allows.
func (h *handler) resolve(s *snapshot, qname string, qtype uint16) Result {
	c := newChain(qname)
	r := h.lookup(s, qname, qtype, c)
	for r.Kind == Delegation {
		if h.forwarder == nil {
			return Result{Kind: ServerFailure}
		}
		up, err := h.forwarder.resolve(context.Background(), r.Target, qtype)
		if err != nil {
			h.log.V(1).Info("Upstream resolution failed", "target", r.Target, "error", err.Error())
			return Result{Kind: ServerFailure}
		}
		records, end, done, err := followUpstream(up, r.Target, qtype, c)
		if err != nil {
			return Result{Kind: ServerFailure}
		}
		answer := append(r.Answer[:len(r.Answer):len(r.Answer)], records...)
		switch {
		case done:
			return upstreamResult(up, answer, qtype)
		case h.zone.contains(end):
			r = h.lookup(s, end, qtype, c)
			r.Answer = append(answer, r.Answer...)
		default:
			r = Result{Kind: Delegation, Answer: answer, Target: end}
		}
	}
	return r
}

// followUpstream takes from an upstream answer for start the CNAMEs that lead
// on from it and the records of the asked type at the end of them, recording
// each hop in the chain. done is false when the answer stops at a CNAME whose
// target it does not resolve (an upstream that does not recurse, or a target
// back in the zone); end is then the name to resolve next.
func followUpstream(up *upstreamAnswer, start string, qtype uint16, c *chain) (records []dns.RR, end string, done bool, err error) {
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
			return nil, "", false, err
		}
		records = append(records, next)
		end = strings.ToLower(next.Target)
	}
	data := 0
	for _, rr := range up.answer {
		if strings.EqualFold(rr.Header().Name, end) && (rr.Header().Rrtype == qtype || qtype == dns.TypeANY) {
			records = append(records, rr)
			data++
		}
	}
	done = data > 0 || end == start || up.rcode == dns.RcodeNameError
	return records, end, done, nil
}

// upstreamResult is the Result of a question whose answer ended upstream.
func upstreamResult(up *upstreamAnswer, answer []dns.RR, qtype uint16) Result {
	kind := NoData
	for _, rr := range answer {
		if rr.Header().Rrtype == qtype || qtype == dns.TypeANY || qtype == dns.TypeCNAME {
			kind = Success
			break
		}
	}
	switch {
	case up.rcode == dns.RcodeNameError:
		return Result{Kind: NameError, Answer: answer, Ns: up.ns}
	case kind == NoData:
		return Result{Kind: NoData, Answer: answer, Ns: up.ns}
	}
	return Result{Kind: Success, Answer: answer}
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
