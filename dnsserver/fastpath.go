package dnsserver

import (
	"encoding/binary"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// maxPackedReplies and maxPackedBytes bound the packed reply cache, in
// entries and in bytes of keys and replies. Question names come from
// clients, so the key space is unbounded: when full, the cache starts over.
const (
	maxPackedReplies = 10000
	maxPackedBytes   = 4 << 20
)

// packedReplies keeps UDP replies in wire form, keyed by the request's bytes
// less its ID. A request with the same bytes gets the same reply with only
// the ID rewritten, read and written by the UDP read loop itself: no
// unpacking, no lookup, no packing, no goroutine. A new snapshot invalidates
// every entry. A reply that an upstream took part in (an ExternalName's
// target) is kept for at most maxUpstreamHold and its lowest TTL; SERVFAIL
// and REFUSED are never kept.
type packedReplies struct {
	mu       sync.RWMutex
	snapshot *snapshot // the snapshot every entry was answered from
	entries  map[string]packedReply
	bytes    int
}

// packedReply is one cached reply and the request counter it adds to.
type packedReply struct {
	wire     []byte
	requests prometheus.Counter
	expires  time.Time // zero: while the snapshot stands
}

func newPackedReplies() *packedReplies {
	return &packedReplies{entries: make(map[string]packedReply)}
}

// get returns the reply for key if it was answered from current and is
// still good by the upstream cache's clock, now.
func (c *packedReplies) get(key []byte, current *snapshot, now func() time.Time) (packedReply, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if current == nil || c.snapshot != current {
		return packedReply{}, false
	}
	r, ok := c.entries[string(key)]
	if !ok || (!r.expires.IsZero() && !now().Before(r.expires)) {
		return packedReply{}, false
	}
	return r, true
}

// put keeps wire as the reply to key, answered from s, for hold by the
// upstream cache's clock (0: while s stands).
func (c *packedReplies) put(key []byte, s *snapshot, hold time.Duration, now func() time.Time, wire []byte, qtype uint16, rcode int) {
	r := packedReply{wire: wire, requests: requestsTotal.WithLabelValues(qtypeLabel(qtype), rcodeLabel(rcode))}
	if hold > 0 {
		r.expires = now().Add(hold)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	size := len(key) + len(wire)
	if c.snapshot != s || len(c.entries) >= maxPackedReplies || c.bytes+size > maxPackedBytes {
		c.snapshot = s
		clear(c.entries)
		c.bytes = 0
	}
	if old, ok := c.entries[string(key)]; ok {
		c.bytes -= len(key) + len(old.wire)
	}
	c.entries[string(key)] = r
	c.bytes += size
}

// DNS header flag bits, as packed.
const (
	flagQR = 1 << 15
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagRD = 1 << 8
	flagRA = 1 << 7
	flagZ  = 1 << 6
	flagAD = 1 << 5
	flagCD = 1 << 4
)

// wireKey returns the packed-cache key of a raw request, appended to dst,
// for the one shape the cache serves: a query (QR clear, opcode QUERY) with
// one question whose name has no compression, no answer or authority
// records, and at most an OPT record without options; nothing after it. The
// key is the flags and everything after the header, so that two requests
// share a key only if they differ in nothing but their ID.
func wireKey(dst, b []byte) ([]byte, bool) {
	if len(b) < 12+1+4 {
		return dst, false
	}
	flags := binary.BigEndian.Uint16(b[2:])
	qd, an, ns, ar := binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:]), binary.BigEndian.Uint16(b[8:]), binary.BigEndian.Uint16(b[10:])
	if flags&flagQR != 0 || (flags>>11)&0xF != dns.OpcodeQuery || qd != 1 || an != 0 || ns != 0 || ar > 1 {
		return dst, false
	}
	off := 12
	for {
		if off >= len(b) || off-12 > 255 {
			return dst, false
		}
		l := int(b[off])
		if l == 0 {
			off++
			break
		}
		if l&0xC0 != 0 {
			return dst, false
		}
		off += 1 + l
	}
	off += 4 // type and class
	if ar == 1 {
		// Root owner, type OPT, then class, TTL and an empty RDATA.
		if off+11 != len(b) || b[off] != 0 || binary.BigEndian.Uint16(b[off+1:]) != dns.TypeOPT || binary.BigEndian.Uint16(b[off+9:]) != 0 {
			return dst, false
		}
		off += 11
	}
	if off != len(b) {
		return dst, false
	}
	dst = append(dst, b[2:4]...)
	return append(dst, b[12:]...), true
}

// msgKey returns the key wireKey gives for the bytes of req, appended to
// dst, or false when req does not have the shape the cache serves.
func msgKey(dst []byte, req *dns.Msg) ([]byte, bool) {
	if req.Response || req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 || len(req.Answer) != 0 || len(req.Ns) != 0 || len(req.Extra) > 1 {
		return dst, false
	}
	var opt *dns.OPT
	if len(req.Extra) == 1 {
		o, ok := req.Extra[0].(*dns.OPT)
		if !ok || o.Hdr.Name != "." || len(o.Option) != 0 {
			return dst, false
		}
		opt = o
	}
	flags := uint16(req.Opcode)<<11 | uint16(req.Rcode&0xF)
	for _, f := range []struct {
		set  bool
		flag uint16
	}{
		{req.Authoritative, flagAA}, {req.Truncated, flagTC}, {req.RecursionDesired, flagRD},
		{req.RecursionAvailable, flagRA}, {req.Zero, flagZ}, {req.AuthenticatedData, flagAD}, {req.CheckingDisabled, flagCD},
	} {
		if f.set {
			flags |= f.flag
		}
	}
	dst = binary.BigEndian.AppendUint16(dst, flags)
	q := req.Question[0]
	var name [256]byte
	n, err := dns.PackDomainName(q.Name, name[:], 0, nil, false)
	if err != nil {
		return dst, false
	}
	dst = append(dst, name[:n]...)
	dst = binary.BigEndian.AppendUint16(dst, q.Qtype)
	dst = binary.BigEndian.AppendUint16(dst, q.Qclass)
	if opt != nil {
		dst = append(dst, 0)
		dst = binary.BigEndian.AppendUint16(dst, dns.TypeOPT)
		dst = binary.BigEndian.AppendUint16(dst, opt.Hdr.Class)
		dst = binary.BigEndian.AppendUint32(dst, opt.Hdr.Ttl)
		dst = binary.BigEndian.AppendUint16(dst, 0)
	}
	return dst, true
}

// fastReader is the UDP read loop's reader: it answers requests whose reply
// is in the packed cache itself, and passes every other one on to the
// server, which unpacks it and calls the handler.
type fastReader struct {
	dns.Reader
	handler *handler
	buf     []byte // the read buffer, reused while requests are answered here
	// wildcard is set until the first read when the socket is bound to
	// the unspecified address, where replies must name their source.
	wildcard bool
	key      []byte
	out      []byte
}

// decorateReader is the dns.Server hook that installs the fast path.
func (h *handler) decorateReader(r dns.Reader) dns.Reader {
	return &fastReader{Reader: r, handler: h, buf: make([]byte, dns.DefaultMsgSize), wildcard: true}
}

// ReadUDP returns the next request the packed cache cannot answer.
func (f *fastReader) ReadUDP(conn *net.UDPConn, timeout time.Duration) ([]byte, *dns.SessionUDP, error) {
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
		f.wildcard = false
	}
	for {
		if f.handler.stopping.Load() {
			// The server's own read respects its shutdown.
			return f.Reader.ReadUDP(conn, timeout)
		}
		// No read deadline: the server's shutdown sets one in the past,
		// which ends this read, and the next goes to the server's reader.
		n, session, err := dns.ReadFromSessionUDP(conn, f.buf)
		if err != nil {
			return nil, nil, err
		}
		if f.answer(conn, f.buf[:n], session) {
			continue
		}
		// The server keeps the request past this call.
		return append([]byte(nil), f.buf[:n]...), session, nil
	}
}

// answer writes the packed reply to req if there is one.
func (f *fastReader) answer(conn *net.UDPConn, req []byte, session *dns.SessionUDP) bool {
	start := time.Now()
	var ok bool
	if f.key, ok = wireKey(f.key[:0], req); !ok {
		return false
	}
	r, ok := f.handler.packed.get(f.key, f.handler.resolver.index.snapshot(), f.handler.resolver.now)
	if !ok {
		return false
	}
	f.out = append(f.out[:0], r.wire...)
	copy(f.out, req[:2]) // the request's ID
	// Counted before the write, so that a client that has its reply sees
	// it counted.
	r.requests.Inc()
	packedRepliesTotal.Inc()
	var err error
	if f.wildcard {
		// The reply's source must be the address the request came to.
		_, err = dns.WriteToSessionUDP(conn, f.out, session)
	} else {
		_, err = conn.WriteToUDP(f.out, session.RemoteAddr().(*net.UDPAddr))
	}
	if err != nil {
		f.handler.log.V(1).Info("Could not write a DNS reply", "error", err.Error())
	}
	requestDuration.Observe(time.Since(start).Seconds())
	return true
}
