package health

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a probe, as the result label of netintent_probe_total says.
const (
	resultSuccess = "success"
	resultFailure = "failure"
	resultRefused = "refused"
)

var (
	probeTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netintent_probe_total",
		Help: "Active health probes run, by result: success, failure, or refused (the target is an address the prober may not dial).",
	}, []string{"result"})

	probeDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "netintent_probe_duration_seconds",
		Help:    "Time taken by one active health probe, whatever its result.",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	})

	probeStartDelay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "netintent_probe_start_delay_seconds",
		Help:    "Time from when an active health probe fell due to when it started: its wait for its intent's share of probes in flight, for a CPU, and for the scheduler.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	})

	inFlightGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "netintent_probes_in_flight",
		Help: "Active health probes in flight now; at most the operator's --probe-max-in-flight.",
	})
)

func init() {
	for _, r := range []string{resultSuccess, resultFailure, resultRefused} {
		probeTotal.WithLabelValues(r)
	}
}

// Collectors are the prober's metrics, for the caller to register where it
// serves its metrics (the operator: controller-runtime's registry).
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{probeTotal, probeDuration, probeStartDelay, inFlightGauge}
}

func resultOf(err error) string {
	switch {
	case err == nil:
		return resultSuccess
	case errors.Is(err, ErrForbiddenTarget):
		return resultRefused
	default:
		return resultFailure
	}
}
