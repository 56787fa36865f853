package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// The shape of the bulk-failure test: bulkIntents intents of bulkPerIntent
// static backends each, all on one farm; of each intent's backends,
// bulkDeadEach vanish and bulkFailEach answer 503 at one instant.
const (
	bulkNamespace  = "bulk-e2e"
	bulkIntents    = 20
	bulkPerIntent  = 100
	bulkDeadEach   = 10
	bulkFailEach   = 10
	bulkPeriod     = time.Second
	bulkTimeout    = 500 * time.Millisecond
	bulkUnhealthy  = 2
	bulkRateWindow = 5 * time.Second
)

// bulkDetection is how soon after its death a backend must be published not
// ready: unhealthyThreshold periods, one timeout, and a second for the
// writes and the watch.
const bulkDetection = bulkPeriod*bulkUnhealthy + bulkTimeout + time.Second

// TestBulkFailures runs the built binary, with its default flags, against
// 2,000 static backends on one farm (20 intents of 100), and kills 10% of
// them (vanished: connects time out, as a dead node's do) and fails another
// 10% (/healthz answers 503) at one instant. A watch sees every
// EndpointSlice version: each dead backend must be published not ready
// within bulkDetection of its death, no healthy one may ever be published
// not ready, and the healthy backends' probe rate must not sag (by more
// than 10%) while the dead ones are probed. Then all return, and must be
// published ready again.
func TestBulkFailures(t *testing.T) {
	began := time.Now()
	p := findPaths(t)
	ic := startIntentCluster(t, p, "e2e-bulk", bulkNamespace)
	c, cs, k := ic.client, ic.clientset, ic.adminKubectl
	ctx := t.Context()

	farm := testnet.NewFarm(t, bulkIntents*bulkPerIntent)
	t.Logf("a farm of %d backends in %s", len(farm.Addrs), farm.Prefix)

	// Backend i of intent j is farm address j*bulkPerIntent+i. Of each
	// intent's, every tenth from the first vanishes, every tenth from the
	// fifth fails.
	var dead, failing, healthy []int
	for i := range farm.Addrs {
		switch i % bulkPerIntent % 10 {
		case 0:
			dead = append(dead, i)
		case 5:
			failing = append(failing, i)
		default:
			healthy = append(healthy, i)
		}
	}
	if len(dead) != bulkIntents*bulkDeadEach || len(failing) != bulkIntents*bulkFailEach {
		t.Fatalf("chose %d dead and %d failing backends, want %d and %d", len(dead), len(failing), bulkIntents*bulkDeadEach, bulkIntents*bulkFailEach)
	}
	intentOf := func(i int) string { return fmt.Sprintf("bulk-%02d", i/bulkPerIntent) }

	startOperator(t, p, k.kubeconfig)

	for j := range bulkIntents {
		in := farmIntent(bulkNamespace, intentOf(j*bulkPerIntent), farm.Addrs[j*bulkPerIntent:(j+1)*bulkPerIntent], bulkPeriod, bulkTimeout, bulkUnhealthy)
		if err := c.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	// Deleted while the operator runs (cleanups run last first), so that
	// its finalizer is honoured.
	t.Cleanup(func() { deleteBulkIntents(t, c) })

	created := time.Now()
	testenv.Await(t, "every intent Ready with all its backends healthy", 60*time.Second, func() error {
		var list v1alpha1.NetworkIntentList
		if err := c.List(ctx, &list, client.InNamespace(bulkNamespace)); err != nil {
			return err
		}
		var notYet []string
		for _, in := range list.Items {
			ready := meta.IsStatusConditionTrue(in.Status.Conditions, v1alpha1.IntentConditionReady)
			if e := in.Status.Endpoints; !ready || e == nil || e.Total != bulkPerIntent || e.Healthy != bulkPerIntent {
				notYet = append(notYet, fmt.Sprintf("%s (ready %v, endpoints %+v)", in.Name, ready, e))
			}
		}
		if len(list.Items) != bulkIntents || len(notYet) > 0 {
			return fmt.Errorf("%d intents listed, not yet: %s", len(list.Items), strings.Join(notYet, ", "))
		}
		return nil
	})
	t.Logf("all %d intents Ready with %d/%d healthy %s after their creation", bulkIntents, bulkPerIntent, bulkPerIntent, time.Since(created).Round(time.Millisecond))

	// Every slice version from here on, from the version listed.
	rec := newSliceRecorder(farm.Addrs)
	var rv string
	testenv.Await(t, "every backend published ready in the slices", 30*time.Second, func() error {
		var list discoveryv1.EndpointSliceList
		if err := c.List(ctx, &list, client.InNamespace(bulkNamespace)); err != nil {
			return err
		}
		rec.reset()
		now := time.Now()
		for i := range list.Items {
			rec.record(&list.Items[i], now)
		}
		if n := rec.readyCount(); n != len(farm.Addrs) {
			return fmt.Errorf("%d of %d backends published ready", n, len(farm.Addrs))
		}
		rv = list.ResourceVersion
		return nil
	})
	stop, err := testenv.WatchSlices(ctx, cs, bulkNamespace, "", rv, func(ev watch.Event, now time.Time) {
		s, isSlice := ev.Object.(*discoveryv1.EndpointSlice)
		switch {
		case !isSlice:
			if ev.Type == watch.Error {
				rec.fail(fmt.Sprintf("watch error: %v", apierrors.FromObject(ev.Object)))
			}
		case ev.Type == watch.Deleted:
			rec.forget(s, now)
		case ev.Type == watch.Added || ev.Type == watch.Modified:
			rec.record(s, now)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	// The healthy backends' probe rate before and after the deaths.
	rateOf := func(from, to []uint64, over time.Duration) float64 {
		var n uint64
		for _, i := range healthy {
			n += to[i] - from[i]
		}
		return float64(n) / over.Seconds()
	}
	before0, t0 := farm.Requests(), time.Now()
	time.Sleep(bulkRateWindow) // a measurement window, not a wait for anything
	before1, death := farm.Requests(), time.Now()
	rateBefore := rateOf(before0, before1, death.Sub(t0))

	addrs := func(idx []int) []netip.Addr {
		out := make([]netip.Addr, len(idx))
		for n, i := range idx {
			out[n] = farm.Addrs[i]
		}
		return out
	}
	farm.SetFailing(addrs(failing), true)
	if err := farm.Vanish(addrs(dead)); err != nil {
		t.Fatal(err)
	}
	vanished := time.Since(death)

	time.Sleep(time.Until(death.Add(bulkRateWindow))) // the second window
	after, t1 := farm.Requests(), time.Now()
	rateDuring := rateOf(before1, after, t1.Sub(death))

	// Stragglers: long enough to say how late they are.
	lateWait := 30 * time.Second
	deadline := death.Add(lateWait)
	for time.Now().Before(deadline) && !rec.allDown(slices.Concat(dead, failing), death) {
		time.Sleep(100 * time.Millisecond)
	}

	deadTimes, deadMissing := rec.detections(dead, death)
	failTimes, failMissing := rec.detections(failing, death)
	t.Logf("healthy backends' probe rate: %.0f/s in the %s before the deaths, %.0f/s in the %s after (want at least 90%%, %.0f/s; %d backends at a %s period make %.0f/s)",
		rateBefore, death.Sub(t0).Round(time.Millisecond), rateDuring, t1.Sub(death).Round(time.Millisecond), 0.9*rateBefore, len(healthy), bulkPeriod, float64(len(healthy))/bulkPeriod.Seconds())
	t.Logf("vanished %d backends in %s; published not ready after: p50 %s, p90 %s, max %s (%d never within %s)",
		len(dead), vanished.Round(time.Millisecond), quantile(deadTimes, 0.5), quantile(deadTimes, 0.9), quantile(deadTimes, 1), len(deadMissing), lateWait)
	t.Logf("503 from %d backends; published not ready after: p50 %s, p90 %s, max %s (%d never within %s)",
		len(failing), quantile(failTimes, 0.5), quantile(failTimes, 0.9), quantile(failTimes, 1), len(failMissing), lateWait)

	// All return.
	farm.SetFailing(addrs(failing), false)
	if err := farm.Restore(addrs(dead)); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	returnWait := 20 * time.Second
	for time.Since(restored) < returnWait && rec.readyCount() != len(farm.Addrs) {
		time.Sleep(100 * time.Millisecond)
	}
	returned := time.Since(restored)
	allBack := rec.readyCount() == len(farm.Addrs)
	// Whatever may still come about the healthy ones is seen.
	stop()

	t.Logf("%d slice versions watched; restored backends all published ready again: %v, in %s", rec.versionCount(), allBack, returned.Round(time.Millisecond))
	if msg := rec.failure(); msg != "" {
		t.Errorf("the watch: %s", msg)
	}
	if late := lateOnes(farm.Addrs, dead, deadTimes, deadMissing, intentOf, "vanished"); len(late) > 0 {
		t.Errorf("%d of %d vanished backends were not published not ready within %s of their death: %s",
			len(late), len(dead), bulkDetection, summarise(late))
	}
	if late := lateOnes(farm.Addrs, failing, failTimes, failMissing, intentOf, "failing (503)"); len(late) > 0 {
		t.Errorf("%d of %d failing backends were not published not ready within %s of their failure: %s",
			len(late), len(failing), bulkDetection, summarise(late))
	}
	if flaps := rec.unready(healthy); len(flaps) > 0 {
		var lines []string
		for _, i := range flaps {
			lines = append(lines, fmt.Sprintf("%s (%s): %s", farm.Addrs[i], intentOf(i), rec.history(i, death)))
		}
		t.Errorf("%d healthy backends were published not ready: %s", len(flaps), summarise(lines))
	}
	if rateDuring < 0.9*rateBefore {
		t.Errorf("healthy backends were probed %.0f times a second while the dead ones were probed, %.0f%% of the %.0f before: probes of dead backends hold up the live ones",
			rateDuring, 100*rateDuring/rateBefore, rateBefore)
	}
	if !allBack {
		var notBack []string
		for _, i := range slices.Concat(dead, failing) {
			if !rec.isReady(i) {
				notBack = append(notBack, fmt.Sprintf("%s (%s): %s", farm.Addrs[i], intentOf(i), rec.history(i, death)))
			}
		}
		t.Errorf("%d backends not published ready %s after they came back: %s", len(notBack), returnWait, summarise(notBack))
	}
	t.Logf("bulk-failure test took %s", time.Since(began).Round(time.Millisecond))
}

// deleteBulkIntents deletes the test's intents and waits until they are
// gone.
func deleteBulkIntents(t *testing.T, c client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.DeleteAllOf(ctx, &v1alpha1.NetworkIntent{}, client.InNamespace(bulkNamespace)); err != nil {
		t.Errorf("deleting the intents: %v", err)
		return
	}
	for {
		var list v1alpha1.NetworkIntentList
		err := c.List(ctx, &list, client.InNamespace(bulkNamespace))
		if err == nil && len(list.Items) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("intents not gone 60s after their deletion: %d left (%v)", len(list.Items), err)
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sliceRecorder keeps, for each backend, every ready value published for
// it with the time the watch received it (a new entry when the value
// changes; being left out of a slice counts as not ready).
type sliceRecorder struct {
	index map[string]int // address -> farm index

	mu           sync.Mutex
	events       [][]readyEvent     // by farm index
	inSlice      map[string][]int   // slice name -> the backends its last version held
	firstUnready map[int]readyEvent // healthy or not, the first not-ready event per backend
	versions     int
	errs         []string
}

type readyEvent struct {
	at    time.Time
	ready bool
	why   string // the slice and its version
}

func newSliceRecorder(addrs []netip.Addr) *sliceRecorder {
	r := &sliceRecorder{index: map[string]int{}}
	for i, a := range addrs {
		r.index[a.String()] = i
	}
	r.reset()
	return r
}

// reset forgets everything recorded.
func (r *sliceRecorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = make([][]readyEvent, len(r.index))
	r.inSlice = map[string][]int{}
	r.firstUnready = map[int]readyEvent{}
	r.versions = 0
	r.errs = nil
}

func (r *sliceRecorder) add(i int, e readyEvent) {
	ev := r.events[i]
	if len(ev) > 0 && ev[len(ev)-1].ready == e.ready {
		return
	}
	r.events[i] = append(ev, e)
	if !e.ready {
		if _, seen := r.firstUnready[i]; !seen {
			r.firstUnready[i] = e
		}
	}
}

// record takes in one version of a slice.
func (r *sliceRecorder) record(s *discoveryv1.EndpointSlice, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versions++
	why := fmt.Sprintf("slice %s version %s", s.Name, s.ResourceVersion)
	var held []int
	for _, ep := range s.Endpoints {
		for _, a := range ep.Addresses {
			i, ok := r.index[a]
			if !ok {
				r.errs = append(r.errs, fmt.Sprintf("%s publishes %s, not a backend of the test", why, a))
				continue
			}
			held = append(held, i)
			// The API says to read an unset ready as true.
			r.add(i, readyEvent{at: at, ready: ptr.Deref(ep.Conditions.Ready, true), why: why})
		}
	}
	for _, i := range r.inSlice[s.Name] {
		if !slices.Contains(held, i) {
			r.add(i, readyEvent{at: at, ready: false, why: why + " (left out)"})
		}
	}
	r.inSlice[s.Name] = held
}

// forget takes in the deletion of a slice.
func (r *sliceRecorder) forget(s *discoveryv1.EndpointSlice, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versions++
	for _, i := range r.inSlice[s.Name] {
		r.add(i, readyEvent{at: at, ready: false, why: fmt.Sprintf("slice %s deleted", s.Name)})
	}
	delete(r.inSlice, s.Name)
}

func (r *sliceRecorder) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, msg)
}

func (r *sliceRecorder) failure() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return summarise(r.errs)
}

func (r *sliceRecorder) versionCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.versions
}

func (r *sliceRecorder) isReady(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events[i]
	return len(ev) > 0 && ev[len(ev)-1].ready
}

// readyCount is how many backends are published ready now.
func (r *sliceRecorder) readyCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if len(ev) > 0 && ev[len(ev)-1].ready {
			n++
		}
	}
	return n
}

// firstDown is when backend i was first published not ready at or after
// since.
func (r *sliceRecorder) firstDown(i int, since time.Time) (time.Time, bool) {
	for _, e := range r.events[i] {
		if !e.ready && !e.at.Before(since) {
			return e.at, true
		}
	}
	return time.Time{}, false
}

// allDown says whether every one of idx has been published not ready
// since.
func (r *sliceRecorder) allDown(idx []int, since time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, i := range idx {
		if _, ok := r.firstDown(i, since); !ok {
			return false
		}
	}
	return true
}

// detections returns, by backend, how long after since each was first
// published not ready (-1 if never), and the backends never published so.
func (r *sliceRecorder) detections(idx []int, since time.Time) (map[int]time.Duration, []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[int]time.Duration{}
	var missing []int
	for _, i := range idx {
		at, ok := r.firstDown(i, since)
		if !ok {
			missing = append(missing, i)
			continue
		}
		out[i] = at.Sub(since)
	}
	return out, missing
}

// unready returns those of idx ever published not ready.
func (r *sliceRecorder) unready(idx []int) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, i := range idx {
		if _, ok := r.firstUnready[i]; ok {
			out = append(out, i)
		}
	}
	return out
}

// history tells what was published for backend i, times relative to t0.
func (r *sliceRecorder) history(i int, t0 time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for _, e := range r.events[i] {
		parts = append(parts, fmt.Sprintf("ready=%v at %+.3fs (%s)", e.ready, e.at.Sub(t0).Seconds(), e.why))
	}
	return strings.Join(parts, ", ")
}

// lateOnes describes the backends of idx detected later than bulkDetection
// or never, latest first.
func lateOnes(addrs []netip.Addr, idx []int, times map[int]time.Duration, missing []int, intentOf func(int) string, kind string) []string {
	var late []int
	for _, i := range idx {
		if d, ok := times[i]; ok && d > bulkDetection {
			late = append(late, i)
		}
	}
	slices.SortFunc(late, func(a, b int) int { return int(times[b] - times[a]) })
	var out []string
	for _, i := range missing {
		out = append(out, fmt.Sprintf("%s (%s, %s): never", addrs[i], intentOf(i), kind))
	}
	for _, i := range late {
		out = append(out, fmt.Sprintf("%s (%s, %s): after %s, %s late", addrs[i], intentOf(i), kind,
			times[i].Round(time.Millisecond), (times[i]-bulkDetection).Round(time.Millisecond)))
	}
	return out
}

// quantile is the q-quantile (0-1) of the durations, 0 if there are none.
func quantile(m map[int]time.Duration, q float64) time.Duration {
	if len(m) == 0 {
		return 0
	}
	ds := make([]time.Duration, 0, len(m))
	for _, d := range m {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	n := int(q*float64(len(ds)-1) + 0.5)
	return ds[n].Round(time.Millisecond)
}

// summarise joins the first 20 lines and says how many more there are.
func summarise(lines []string) string {
	const most = 20
	if len(lines) <= most {
		return strings.Join(lines, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(lines[:most], "; "), len(lines)-most)
}

// farmIntent is a ClusterIP intent over static backends on a farm, probed
// over HTTP at the farm's /healthz every period.
func farmIntent(namespace, name string, backends []netip.Addr, period, timeout time.Duration, unhealthyThreshold int32) *v1alpha1.NetworkIntent {
	return testenv.Intent(namespace, name).HTTPPort(testnet.FarmPort).Backends(backends...).
		HTTPProbe(period, timeout, unhealthyThreshold).ProbePort(testnet.FarmPort).Build()
}
