package dnsserver

import (
	"strconv"
	"sync"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netintent_dns_requests_total",
		Help: "DNS requests answered, by question type and response code.",
	}, []string{"qtype", "rcode"})

	requestDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "netintent_dns_request_duration_seconds",
		Help:    "Time from receiving a DNS request to writing its reply.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	})

	cacheHitsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "netintent_dns_cache_hits_total",
		Help: "Upstream questions answered from the cache while fresh.",
	})

	cacheMissesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "netintent_dns_cache_misses_total",
		Help: "Upstream questions not found fresh in the cache.",
	})

	staleAnswersTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "netintent_dns_stale_answers_total",
		Help: "Expired cached answers served because every upstream failed (RFC 8767).",
	})

	upstreamErrorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netintent_dns_upstream_errors_total",
		Help: "Failed exchanges with an upstream resolver, by upstream address.",
	}, []string{"upstream"})

	upstreamOverloadTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "netintent_dns_upstream_overload_total",
		Help: "Questions answered SERVFAIL at once because the most upstream queries allowed were already in flight.",
	})

	cacheBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "netintent_dns_cache_bytes",
		Help: "Estimated memory held by the upstream answer cache, in bytes.",
	})

	packedRepliesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "netintent_dns_packed_replies_total",
		Help: "UDP requests answered with a reply kept in wire form, without unpacking the request (also counted in netintent_dns_requests_total).",
	})

	panicsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "netintent_dns_panics_total",
		Help: "Panics recovered in the DNS handler; each was answered SERVFAIL.",
	})

	registerMetricsOnce sync.Once
)

// registerMetrics adds the DNS collectors to controller-runtime's registry,
// which the manager serves on its metrics endpoint. Safe to call many times.
func registerMetrics() {
	registerMetricsOnce.Do(func() {
		metrics.Registry.MustRegister(requestsTotal, requestDuration, cacheHitsTotal,
			cacheMissesTotal, staleAnswersTotal, upstreamErrorsTotal, upstreamOverloadTotal, cacheBytes, packedRepliesTotal, panicsTotal)
	})
}

// metricTypes bounds the qtype label: any client can send any of 65536 types,
// and each label value is a time series.
var metricTypes = map[uint16]bool{
	dns.TypeA: true, dns.TypeAAAA: true, dns.TypeSRV: true, dns.TypeCNAME: true,
	dns.TypeNS: true, dns.TypeSOA: true, dns.TypeANY: true, dns.TypeTXT: true,
	dns.TypePTR: true, dns.TypeMX: true, dns.TypeHTTPS: true, dns.TypeSVCB: true,
	dns.TypeCAA: true, dns.TypeDS: true, dns.TypeDNSKEY: true, dns.TypeAXFR: true,
	dns.TypeIXFR: true,
}

func qtypeLabel(qtype uint16) string {
	if metricTypes[qtype] {
		return dns.TypeToString[qtype]
	}
	return "other"
}

func rcodeLabel(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return strconv.Itoa(rcode)
}
