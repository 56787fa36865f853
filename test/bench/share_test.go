package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// shareRun is the probe part's run with two replicas sharing the probes.
type shareRun struct {
	backends int
	// probes are what the farm received in the window; each replica's
	// probes (its netintent_probe_total), CPU time and RSS.
	probes   uint64
	replicas [2]struct {
		probes float64
		cpu    time.Duration
		rss    int64
	}
	blackhole outageResult
}

// twoReplicas runs two replicas with leader election (and so the probe
// share) over the farm's first n backends, whose intents exist: a steady
// window, then the blackhole of probeVictims backends of every intent.
func twoReplicas(o options, cp *controlPlane, work string, farm *testnet.Farm, sw *sliceWatch, n int) (shareRun, error) {
	r := shareRun{backends: n}
	var ps [2]*process
	for i := range ps {
		p, err := startOperator(o, cp, work, "", nil, "--dns-listen-address=", "--leader-elect", "--leader-election-namespace=default")
		if err != nil {
			return r, err
		}
		defer p.stop()
		ps[i] = p
	}
	err := testenv.Poll(context.Background(), 200*time.Millisecond, probeBackTimeout, "both replicas share the probes", func() error {
		for _, p := range ps {
			if err := p.Alive(); err != nil {
				return err
			}
			if m, err := metricSum(p, "netintent_probe_members"); err != nil || m != 2 {
				return fmt.Errorf("a replica sees %v members (%v)", m, err)
			}
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	time.Sleep(probeWarmup) // both replicas' probes settle on their periods

	var probes0 [2]float64
	var cpu0 [2]time.Duration
	for i, p := range ps {
		if probes0[i], err = metricSum(p, "netintent_probe_total"); err != nil {
			return r, err
		}
		if cpu0[i], err = p.cpuTime(); err != nil {
			return r, err
		}
	}
	req0 := farm.Requests()
	time.Sleep(probeWindow)
	req1 := farm.Requests()
	for i, p := range ps {
		pr, err := metricSum(p, "netintent_probe_total")
		if err != nil {
			return r, err
		}
		cpu, err := p.cpuTime()
		if err != nil {
			return r, err
		}
		r.replicas[i].probes, r.replicas[i].cpu = pr-probes0[i], cpu-cpu0[i]
	}
	for i := range n {
		r.probes += req1[i] - req0[i]
	}
	steadyPerBackend := float64(r.probes) / probeWindow.Seconds() / float64(n)

	blackhole := victims(farm.Addrs, n, 0)
	r.blackhole, err = outage(farm, sw, ps[0], n, blackhole, steadyPerBackend, func() error { return farm.Vanish(addrsOf(farm.Addrs, blackhole)) })
	if err != nil {
		return r, err
	}
	if err := recovery(farm, sw, ps[0], blackhole, &r.blackhole, func() error { return farm.Restore(addrsOf(farm.Addrs, blackhole)) }); err != nil {
		return r, err
	}
	for i, p := range ps {
		if r.replicas[i].rss, err = p.rss(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// metricSum is the sum of a metric's series on the process's /metrics;
// with labels, of the series whose labels include each of them (such as
// `controller="networkintent"`).
func metricSum(p *process, name string, labels ...string) (float64, error) {
	page, err := metricsPage(p)
	if err != nil {
		return 0, err
	}
	return seriesSum(bytes.NewReader(page), name, labels...)
}

// metricsPage is the process's /metrics.
func metricsPage(p *process) ([]byte, error) {
	resp, err := http.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// seriesSum is metricSum over a /metrics page read from r.
func seriesSum(r io.Reader, name string, labels ...string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, sc.Err()
}

// histogramReading is one reading of a histogram's _sum and _count; two
// give the mean of the observations between them (meanSince).
type histogramReading struct{ sum, count float64 }

// pageHistogram reads a histogram from a /metrics page: its _sum and
// _count over the series whose labels include each of labels.
func pageHistogram(page []byte, name string, labels ...string) (histogramReading, error) {
	sum, err := seriesSum(bytes.NewReader(page), name+"_sum", labels...)
	if err != nil {
		return histogramReading{}, err
	}
	count, err := seriesSum(bytes.NewReader(page), name+"_count", labels...)
	return histogramReading{sum, count}, err
}

// meanSince is the mean observation since before, zero when there was none.
func (h histogramReading) meanSince(before histogramReading) time.Duration {
	if h.count <= before.count {
		return 0
	}
	return time.Duration((h.sum - before.sum) / (h.count - before.count) * float64(time.Second))
}

func shareTable(r shareRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Two replicas sharing the probes\n\n")
	fmt.Fprintf(&b, "The largest run's intents again, with two replicas of the operator (`--leader-elect`, its defaults otherwise) instead of one: "+
		"probes counted at the farm and by each replica (`netintent_probe_total`) over %s of steady state, each replica's CPU time from /proc over the same window; "+
		"then %d backends of every intent vanish at once, as above.\n\n", probeWindow, probeVictims)
	wanted := float64(r.backends) / probePeriod.Seconds()
	rate := float64(r.probes) / probeWindow.Seconds()
	fmt.Fprintf(&b, "| backends | probes/s at the farm (wanted) | replica | its probes/s (share) | its CPU µs/probe | its CPUs | its RSS |\n|---:|---:|---|---:|---:|---:|---:|\n")
	var total float64
	for _, rep := range r.replicas {
		total += rep.probes
	}
	for i, rep := range r.replicas {
		perProbe, share := 0.0, 0.0
		if rep.probes > 0 {
			perProbe = us(rep.cpu) / rep.probes
			share = 100 * rep.probes / total
		}
		fmt.Fprintf(&b, "| %d | %.0f (%.0f) | %d | %.0f (%.0f%%) | %.0f | %.2f | %s |\n",
			r.backends, rate, wanted, i+1, rep.probes/probeWindow.Seconds(), share, perProbe, rep.cpu.Seconds()/probeWindow.Seconds(), mib(rep.rss))
	}
	fmt.Fprintf(&b, "\nBlackhole of %d backends with two replicas: out of traffic at p50 / max %s; the healthy backends' probe rate after it %.0f%% of the steady one.",
		r.blackhole.victims, r.blackhole.latencies(), 100*r.blackhole.healthyRate)
	if res := r.blackhole; len(res.triggered) > 0 {
		// Where the time went: the decisions (by whichever replica
		// probes the backend) against what the leader published.
		fmt.Fprintf(&b, " Decided (the slice's last-change-trigger-time) at p50 %s / max %s, seen by the watch p50 %s / max %s after that.",
			seconds(pct(res.triggered, 0.5)), seconds(pct(res.triggered, 1)), seconds(pct(res.published, 0.5)), seconds(pct(res.published, 1)))
	}
	b.WriteString("\n\n")
	return b.String()
}
