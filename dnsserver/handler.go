package dnsserver

import (
	"context"
	"fmt"
	"net"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/miekg/dns"
)

// maxUDPSize caps the UDP answers the server sends whatever buffer the client
// offers: the DNS flag day 2020 value, which avoids IP fragmentation.
const maxUDPSize = 1232

// handler is the miekg handler. It does no DNS logic of its own: it checks the
// message, asks the resolver about its question, and writes the Result as a
// reply that fits the transport.
type handler struct {
	resolver *resolver
	log      logr.Logger
	// packed keeps UDP replies in wire form for the read loop to answer
	// again (fastpath.go); stopping tells the read loop the server is
	// shutting down.
	packed   *packedReplies
	stopping atomic.Bool
}

var _ dns.Handler = &handler{}

func newHandler(r *resolver, log logr.Logger) *handler {
	return &handler{resolver: r, log: log, packed: newPackedReplies()}
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
	// Kept before the write, so that a client asking again as soon as it
	// has this reply is answered from it.
	if udp && from != nil {
		if key, ok := msgKey(nil, req); ok {
			h.packed.put(key, from, hold, h.resolver.now, packed, req.Question[0].Qtype, rcode)
		}
	}
	if _, err := w.Write(packed); err != nil {
		h.log.V(1).Info("Could not write a DNS reply", "question", questionString(req), "error", err.Error())
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
	r, s := h.resolver.question(context.Background(), q)
	switch r.Kind {
	case Success, NoData:
		m.Rcode = dns.RcodeSuccess
	case NameError:
		m.Rcode = dns.RcodeNameError
	case Refused:
		m.Rcode = dns.RcodeRefused
		return nil, 0
	case NotImplemented:
		m.Rcode = dns.RcodeNotImplemented
		return nil, 0
	default:
		m.Rcode = dns.RcodeServerFailure
		return nil, 0
	}
	// AA only when the final data is the server's own (RFC 1035 section
	// 4.1.1: the bit speaks of the last name of a CNAME chain).
	m.Authoritative = !r.upstream
	m.Answer, m.Ns, m.Extra = r.Answer, r.Ns, r.Extra
	if r.forwarded {
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
