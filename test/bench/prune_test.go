package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

func TestMain(m *testing.M) {
	// Host.Start runs this binary as each test host's server.
	testnet.Main(m)
}

// pruneBackends and pruneKills: backends behind the intent, and how many of
// them die one after another in each run.
const (
	pruneBackends = 50
	pruneKills    = 15
)

// BenchmarkPrune measures how long a dead backend stays in traffic: the
// built operator probes pruneBackends test hosts (network namespaces,
// root needed) behind one intent, and backends die one at a time; each
// sample is the time from the server's death to its endpoint published not
// ready. Run by make bench, which puts the table written to
// $BENCH_PRUNE_OUT into its report.
func BenchmarkPrune(b *testing.B) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	tn := testnet.New(b, pruneBackends)
	for _, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			b.Fatal(err)
		}
	}
	work := b.TempDir()
	cp, err := startControlPlane(root, work, true)
	if err != nil {
		b.Fatal(err)
	}
	defer cp.stop()
	o := options{root: root, netintent: filepath.Join(root, "bin", "netintent")}
	p, err := startOperator(o, cp, work, "", nil, "--dns-listen-address=")
	if err != nil {
		b.Fatal(err)
	}
	defer p.stop()

	var report strings.Builder
	fmt.Fprintf(&report, "## Prune: a dead backend's time in traffic\n\n")
	fmt.Fprintf(&report, "One ClusterIP intent over %d test hosts (network namespaces) with an HTTP probe; %d of them die one after another "+
		"(the server stops); from the death to the endpoint published ready=false.\n\n", pruneBackends, pruneKills)
	fmt.Fprintf(&report, "| period | unhealthyThreshold | p50 | p99 (max of %d) |\n|---:|---:|---:|---:|\n", pruneKills)
	for _, run := range []struct {
		period    time.Duration
		threshold int32
	}{{time.Second, 2}, {250 * time.Millisecond, 2}} {
		ns := fmt.Sprintf("prune-%dms", run.period.Milliseconds())
		if err := cp.client.Create(ctx, namespace(ns)); err != nil {
			b.Fatal(err)
		}
		backends := make([]v1alpha1.Backend, 0, len(tn.Hosts))
		for _, h := range tn.Hosts {
			backends = append(backends, v1alpha1.Backend{Address: h.IP.String()})
		}
		in := &v1alpha1.NetworkIntent{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "prune"},
			Spec: v1alpha1.NetworkIntentSpec{
				Exposure: v1alpha1.ExposureClusterIP,
				Ports:    []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(testnet.HTTPPort))}},
				Backends: backends,
				HealthCheck: &v1alpha1.HealthCheck{
					ProbeHandler:       v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{Path: "/healthz", Port: ptr.To[int32](testnet.HTTPPort)}},
					Period:             &metav1.Duration{Duration: run.period},
					UnhealthyThreshold: ptr.To(run.threshold),
				},
			},
		}
		if err := cp.client.Create(ctx, in); err != nil {
			b.Fatal(err)
		}
		if err := poll(time.Minute, "every backend ready", func() error {
			ready, err := readiness(ctx, cp.client, ns)
			if err != nil {
				return err
			}
			if n := countTrue(ready); n != pruneBackends {
				return fmt.Errorf("%d of %d ready", n, pruneBackends)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		var samples []time.Duration
		for _, h := range tn.Hosts[:pruneKills] {
			died := time.Now()
			if err := h.Stop(); err != nil {
				b.Fatal(err)
			}
			var gone time.Duration
			err := testenv.Poll(context.Background(), 5*time.Millisecond, 30*time.Second, "the dead backend out of traffic", func() error {
				ready, err := readiness(ctx, cp.client, ns)
				if err != nil {
					return err
				}
				if r, ok := ready[h.IP]; !ok || r {
					return fmt.Errorf("%s still ready", h.IP)
				}
				gone = time.Since(died)
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			samples = append(samples, gone)
		}
		for _, h := range tn.Hosts[:pruneKills] {
			if err := h.Start(ctx); err != nil {
				b.Fatal(err)
			}
		}
		slices.Sort(samples)
		p50, p99 := samples[len(samples)/2], samples[len(samples)-1]
		b.ReportMetric(float64(p50.Milliseconds()), fmt.Sprintf("p50-ms@%s", run.period))
		b.ReportMetric(float64(p99.Milliseconds()), fmt.Sprintf("p99-ms@%s", run.period))
		fmt.Fprintf(&report, "| %s | %d | %d ms | %d ms |\n", run.period, run.threshold, p50.Milliseconds(), p99.Milliseconds())
	}
	report.WriteString("\n")
	if out := os.Getenv("BENCH_PRUNE_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.Log("\n" + report.String())
}

// readiness is the published readiness of each endpoint address of the
// intent's slices in ns.
func readiness(ctx context.Context, c client.Client, ns string) (map[netip.Addr]bool, error) {
	var list discoveryv1.EndpointSliceList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	ready := map[netip.Addr]bool{}
	for _, s := range list.Items {
		for _, ep := range s.Endpoints {
			for _, a := range ep.Addresses {
				if addr, err := netip.ParseAddr(a); err == nil {
					ready[addr] = ep.Conditions.Ready == nil || *ep.Conditions.Ready
				}
			}
		}
	}
	return ready, nil
}

func countTrue(m map[netip.Addr]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}
