package dnsserver

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	"github.com/miekg/dns"
)

// memoryUpstream answers upstream queries in memory, from upstreamZone, so
// that the fuzz target and benchmarks exercise forwarding without sockets.
func memoryUpstream() exchangeFunc {
	answer := zoneAnswer(upstreamZone())
	return func(_ context.Context, q *dns.Msg, network, _ string) (*dns.Msg, error) {
		w := &recordingWriter{tcp: network == "tcp"}
		answer(w, q)
		return w.reply()
	}
}

// offlineHandler is the handler of a server holding the Services of both
// fixtureIndex and externalIndex, with the in-memory upstream.
func offlineHandler(log logr.Logger) *handler {
	idx := NewIndex()
	addExternalFixtures(idx)
	addFixtures(idx)
	idx.MarkSynced()
	fwd := newForwarder([]string{"192.0.2.53:53"}, DefaultUpstreamTimeout, DefaultCacheSize, DefaultCacheMaxBytes, DefaultMaxConcurrent)
	fwd.exchange = memoryUpstream()
	return newHandler(newResolver(newZone(DefaultClusterDomain, DefaultTTL), idx, fwd, log), log)
}

// errorCounter is a logr sink that counts errors: the handler logs one for
// every panic it recovers and every reply it cannot pack.
type errorCounter struct{ errors atomic.Int64 }

func (c *errorCounter) Init(logr.RuntimeInfo)          {}
func (c *errorCounter) Enabled(int) bool               { return false }
func (c *errorCounter) Info(int, string, ...any)       {}
func (c *errorCounter) Error(error, string, ...any)    { c.errors.Add(1) }
func (c *errorCounter) WithValues(...any) logr.LogSink { return c }
func (c *errorCounter) WithName(string) logr.LogSink   { return c }

// FuzzServeDNS feeds arbitrary bytes through the path a UDP or TCP packet
// takes: unpack, the handler, and the packing of its reply. The reply must
// exist, unpack, answer the same ID, fit the transport, and come without a
// recovered panic or a packing failure.
func FuzzServeDNS(f *testing.F) {
	seed := func(name string, qtype uint16, edit ...func(*dns.Msg)) {
		q := new(dns.Msg).SetQuestion(name, qtype)
		for _, e := range edit {
			e(q)
		}
		b, err := q.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	edns := func(m *dns.Msg) { m.SetEdns0(1232, true) }
	seed("web.shop.svc.cluster.local.", dns.TypeA)
	seed("web.shop.svc.cluster.local.", dns.TypeAAAA, edns)
	seed("db.shop.svc.cluster.local.", dns.TypeA)
	seed("db-0.db.shop.svc.cluster.local.", dns.TypeAAAA)
	seed("_postgres._tcp.db.shop.svc.cluster.local.", dns.TypeSRV, edns)
	seed("_http._tcp.web.shop.svc.cluster.local.", dns.TypeSRV)
	seed("payments.shop.svc.cluster.local.", dns.TypeA)
	seed("alias.shop.svc.cluster.local.", dns.TypeA)
	seed("via.shop.svc.cluster.local.", dns.TypeA)
	seed("loop-a.shop.svc.cluster.local.", dns.TypeA)
	seed("far.shop.svc.cluster.local.", dns.TypeA)
	seed("web.shop.svc.cluster.local.", dns.TypeSRV)
	seed("db.shop.svc.cluster.local.", dns.TypeSRV, edns)
	seed("db-0.db.shop.svc.cluster.local.", dns.TypeSRV)
	seed("api-0.fast.shop.svc.cluster.local.", dns.TypeA)
	seed("web.shop.svc.cluster.local.", dns.TypeMD)
	seed("payments.shop.svc.cluster.local.", 200)
	seed("svc.cluster.local.", dns.TypeSOA)
	seed("shop.svc.cluster.local.", dns.TypeANY)
	seed("missing.shop.svc.cluster.local.", dns.TypeA)
	seed("example.com.", dns.TypeA)
	seed(`web\.shop.svc.cluster.local.`, dns.TypeA)
	seed(`a.svc\.cluster.local.`, dns.TypeA)
	seed(`\000.shop.svc.cluster.local.`, dns.TypeSRV)
	seed("svc.cluster.local.", dns.TypeAXFR)
	seed("web.shop.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(4096, false); m.IsEdns0().SetVersion(1) })
	seed("web.shop.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify })
	seed("web.shop.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) })

	errs := &errorCounter{}
	h := offlineHandler(logr.New(errs))
	f.Fuzz(func(t *testing.T, data []byte, tcp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(data); err != nil {
			return // the server drops what it cannot unpack
		}
		before := errs.errors.Load()
		w := &recordingWriter{tcp: tcp}
		h.ServeDNS(w, req)
		if errs.errors.Load() != before {
			t.Fatalf("the handler recovered a panic or could not pack its reply, for %v", req)
		}
		reply, err := w.reply()
		if err != nil {
			t.Fatalf("%v, for %v", err, req)
		}
		if reply.Id != req.Id || !reply.Response {
			t.Fatalf("reply ID %d response %v, want ID %d and a response", reply.Id, reply.Response, req.Id)
		}
		if !tcp {
			limit := dns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				limit = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
			}
			if len(w.packed) > limit {
				t.Fatalf("UDP reply of %d bytes, over the limit of %d", len(w.packed), limit)
			}
		}
	})
}
