package members

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	liveMembers = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "netintent_probe_members",
		Help: "Replicas sharing the health checks, this one included, as this replica sees them.",
	})
	reportWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netintent_probe_report_writes_total",
		Help: "Writes of this replica's verdict report, by result (written, failed).",
	}, []string{"result"})
)

func init() { metrics.Registry.MustRegister(liveMembers, reportWrites) }
