package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/test/churn"
)

// churnSample is the operator's footprint at one point of the churn.
type churnSample struct {
	at         time.Duration
	heap, rss  int64
	goroutines int64
}

// benchChurn runs the operator with its defaults and churns intents through
// creates, edits and deletes for o.churnDuration, reading its heap after GC,
// RSS and goroutines along the way; then checks that everything the
// operator made matches the intents that remain.
func benchChurn(o options, work string) (string, error) {
	ctx := context.Background()
	cp, err := startControlPlane(o.root, work, !o.noPolicy)
	if err != nil {
		return "", err
	}
	defer cp.stop()
	dnsPort, err := freePort()
	if err != nil {
		return "", err
	}
	p, err := startOperator(o, cp, work, "", nil, fmt.Sprintf("--dns-listen-address=127.0.0.1:%d", dnsPort), "--dns-upstreams=127.0.0.1:1")
	if err != nil {
		return "", err
	}
	defer func() { p.stop() }()
	if err := settle(p, 0); err != nil {
		return "", err
	}
	const ns = "churn"
	if err := cp.client.Create(ctx, namespace(ns)); err != nil {
		return "", err
	}
	pool := &v1alpha1.AddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: "churn"},
		Spec:       v1alpha1.AddressPoolSpec{Addresses: []string{"203.0.113.0/24"}},
	}
	if err := cp.client.Create(ctx, pool); err != nil {
		return "", err
	}
	var samples []churnSample
	var sampleErr error
	sample := func(at time.Duration) {
		if sampleErr != nil {
			return
		}
		s := churnSample{at: at}
		if s.heap, sampleErr = churn.HeapFloor(p.pprofAddr, 3); sampleErr != nil {
			return
		}
		if s.rss, sampleErr = p.rss(); sampleErr != nil {
			return
		}
		if s.goroutines, sampleErr = churn.Goroutines(p.pprofAddr); sampleErr != nil {
			return
		}
		samples = append(samples, s)
		if o.churnProfiles != "" {
			// Profiles to compare with pprof -base: what the churn retains.
			sampleErr = saveProfile(p.pprofAddr, "/debug/pprof/heap", filepath.Join(o.churnProfiles, fmt.Sprintf("heap-%02d.pb.gz", len(samples)-1)))
		}
		fmt.Fprintf(os.Stderr, "churn %s: heap %s, RSS %s, %d goroutines\n", at.Round(time.Second), mib(s.heap), mib(s.rss), s.goroutines)
	}
	sample(0)
	co := churn.Options{
		Namespace: ns, Names: o.churnNames, Rate: o.churnRate, Duration: o.churnDuration,
		Pods: 40, Pool: pool.Name, Every: sample, SampleEvery: o.churnDuration / 30, Workers: 4, Seed: 1,
	}
	fmt.Fprintf(os.Stderr, "churn: %s at %.0f operations/s over %d names\n", o.churnDuration, o.churnRate, o.churnNames)
	st, err := churn.Run(ctx, cp.client, co)
	if err != nil {
		return "", err
	}
	if sampleErr != nil {
		return "", fmt.Errorf("reading the operator's memory: %w", sampleErr)
	}
	start := time.Now()
	if err := poll(2*time.Minute, "the churned namespace matches its intents", func() error {
		if err := p.Alive(); err != nil {
			return err
		}
		return churn.Check(ctx, cp.client, ns)
	}); err != nil {
		return "", err
	}
	settled := time.Since(start)
	sample(o.churnDuration + settled)
	return churnTable(o, st, samples, settled), nil
}

// saveProfile writes the profile at url (a path with its query) of the
// process serving pprof at addr to path.
func saveProfile(addr, url, path string) error {
	resp, err := http.Get("http://" + addr + url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func churnTable(o options, st churn.Stats, samples []churnSample, settled time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Churn: intents created, edited and deleted for %s\n\n", o.churnDuration)
	fmt.Fprintf(&b, "%.0f operations a second over %d names (about three quarters live; ClusterIP with static backends or a selector, headless, ExternalName, LoadBalancer from a pool), one pod's readiness flipped with each: %s. The operator with its defaults; heap after a forced GC, the least of three readings taken one after the other.\n\n", o.churnRate, o.churnNames, st)
	heaps := make([]int64, 0, len(samples))
	fmt.Fprintf(&b, "| at | heap after GC | RSS | goroutines |\n|---:|---:|---:|---:|\n")
	for _, s := range samples {
		heaps = append(heaps, s.heap)
		fmt.Fprintf(&b, "| %s | %s | %s | %d |\n", s.at.Round(time.Second), mib(s.heap), mib(s.rss), s.goroutines)
	}
	// The first sample is before the churn and the last after it.
	during := heaps[1 : len(heaps)-1]
	first, last := churn.Thirds(during)
	fmt.Fprintf(&b, "\nHeap after GC, lower quartile of the first third of the churn %s, of the last third %s (%+.1f%%). After the churn, every intent's Service and slices were right and nothing was left over, %s after the last operation.\n\n",
		mib(first), mib(last), 100*float64(last-first)/float64(first), settled.Round(100*time.Millisecond))
	return b.String()
}
