// Package churn drives NetworkIntents through creates, edits and deletes at a
// steady rate, with pods whose readiness flips under them, the way a busy
// cluster does; and checks afterwards that what the operator made is exactly
// what the intents that remain ask for. The e2e churn test and make bench's
// churn part use it to find what an operator retains per change.
package churn

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
)

// Options say what to churn and how fast.
type Options struct {
	// Namespace holds the intents and pods; it must exist.
	Namespace string
	// Names is how many intent names the churn cycles over; about three
	// quarters of them exist at any time, from the start.
	Names int
	// Rate is intent operations (create, edit, delete) a second.
	Rate float64
	// Duration is how long to churn.
	Duration time.Duration
	// Pods is how many pods selector intents choose from; one pod's
	// readiness flips with every operation.
	Pods int
	// Pool, if set, is an AddressPool for the LoadBalancer intents.
	Pool string
	// Every, if set, is called about every SampleEvery while the churn runs.
	Every       func(elapsed time.Duration)
	SampleEvery time.Duration
	// Workers is how many writers share the rate, each over its own
	// names and pods (default 1).
	Workers int
	// Seed makes a run repeatable.
	Seed uint64
}

// Stats count what a run did.
type Stats struct {
	Creates, Edits, Deletes, Flips int
}

func (s Stats) String() string {
	return fmt.Sprintf("%d creates, %d edits, %d deletes, %d pod readiness flips", s.Creates, s.Edits, s.Deletes, s.Flips)
}

// Run churns until o.Duration has passed or ctx ends. A write refused
// because the cache it was based on is stale (a conflict, an intent already
// gone) is counted as nothing and the churn goes on; any other error ends
// the run.
func Run(ctx context.Context, c client.Client, o Options) (Stats, error) {
	pods, err := makePods(ctx, c, o)
	if err != nil {
		return Stats{}, err
	}
	workers := max(o.Workers, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var (
		mu       sync.Mutex
		st       Stats
		firstErr error
		wg       sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			ws, err := o.worker(ctx, c, w, workers, pods, start)
			mu.Lock()
			defer mu.Unlock()
			st.Creates, st.Edits, st.Deletes, st.Flips = st.Creates+ws.Creates, st.Edits+ws.Edits, st.Deletes+ws.Deletes, st.Flips+ws.Flips
			if err != nil && firstErr == nil {
				firstErr = err
				cancel()
			}
		})
	}
	if o.Every != nil {
		wg.Go(func() {
			tick := time.NewTicker(o.SampleEvery)
			defer tick.Stop()
			for time.Since(start) < o.Duration {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					o.Every(time.Since(start))
				}
			}
		})
	}
	wg.Wait()
	return st, firstErr
}

// worker churns names w, w+n, w+2n... and pods likewise, at its share of
// the rate.
func (o Options) worker(ctx context.Context, c client.Client, w, n int, allPods []*corev1.Pod, start time.Time) (Stats, error) {
	var st Stats
	rng := rand.New(rand.NewPCG(o.Seed, uint64(w)))
	var names []int
	for i := w; i < o.Names; i += n {
		names = append(names, i)
	}
	var pods []*corev1.Pod
	for k := w; k < len(allPods); k += n {
		pods = append(pods, allPods[k])
	}
	// The churn starts from its steady state: three quarters of the names
	// live.
	live := map[int]bool{}
	for _, i := range names {
		if rng.IntN(4) == 0 {
			continue
		}
		if err := c.Create(ctx, Intent(o, i, 0)); err != nil {
			return st, fmt.Errorf("intent %s: %w", name(i), err)
		}
		live[i] = true
		st.Creates++
	}
	if len(names) == 0 {
		return st, nil
	}
	tick := time.NewTicker(time.Duration(float64(n) * float64(time.Second) / o.Rate))
	defer tick.Stop()
	for time.Since(start) < o.Duration {
		select {
		case <-ctx.Done():
			return st, nil
		case <-tick.C:
		}
		i := names[rng.IntN(len(names))]
		var err error
		switch {
		case !live[i]:
			err = c.Create(ctx, Intent(o, i, 0))
			if err == nil {
				live[i] = true
				st.Creates++
			}
		case rng.IntN(3) == 0:
			err = c.Delete(ctx, &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: name(i)}})
			if err == nil || apierrors.IsNotFound(err) {
				live[i], err = false, nil
				st.Deletes++
			}
		default:
			err = edit(ctx, c, o, i, rng.IntN(1000))
			if err == nil {
				st.Edits++
			}
		}
		if apierrors.IsAlreadyExists(err) {
			// Deleted a moment ago and still finalizing.
			live[i], err = true, nil
		}
		if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			if ctx.Err() != nil {
				return st, nil
			}
			return st, fmt.Errorf("intent %s: %w", name(i), err)
		}
		if len(pods) > 0 {
			if err := flip(ctx, c, pods[rng.IntN(len(pods))]); err != nil && !apierrors.IsConflict(err) {
				if ctx.Err() != nil {
					return st, nil
				}
				return st, err
			}
			st.Flips++
		}
	}
	return st, nil
}

func name(i int) string { return fmt.Sprintf("churn-%03d", i) }

// kinds are the shapes of intent the churn cycles through, by name.
const kinds = 5

// Intent is intent i of the churn in its version v: by i a ClusterIP
// intent with static backends, one with a selector, a headless one, an
// ExternalName and a LoadBalancer (or NodePort without a pool). No probe is
// configured: nothing is sent to any address.
func Intent(o Options, i, v int) *v1alpha1.NetworkIntent {
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: name(i), Labels: map[string]string{"churn/version": strconv.Itoa(v)}},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP,
			Ports:    []v1alpha1.IntentPort{{Name: "http", Port: 80 + int32(v%3), TargetPort: ptr.To(intstr.FromInt32(8080))}},
		},
	}
	switch i % kinds {
	case 0:
		in.Spec.Backends = []v1alpha1.Backend{{Address: backend(i, v)}, {Address: backend(i, v+1)}}
	case 1, 2:
		in.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"churn/group": group(i + v)}}
		in.Spec.Headless = i%kinds == 2
	case 3:
		in.Spec.Exposure = v1alpha1.ExposureExternalName
		in.Spec.Ports = nil
		in.Spec.ExternalName = &v1alpha1.ExternalNameSpec{Targets: []v1alpha1.ExternalTarget{
			{Host: fmt.Sprintf("t%d-%d.example.com", i, v%4)}, {Host: fmt.Sprintf("backup-%d.example.com", i)},
		}}
	case 4:
		in.Spec.Exposure = v1alpha1.ExposureNodePort
		if o.Pool != "" {
			in.Spec.Exposure = v1alpha1.ExposureLoadBalancer
			in.Spec.LoadBalancer = &v1alpha1.LoadBalancerSpec{Class: v1alpha1.AddressPoolClass, Pool: o.Pool}
		}
		in.Spec.Backends = []v1alpha1.Backend{{Address: backend(i, v)}}
	}
	return in
}

// backend is a static backend address in TEST-NET-2 (no probe goes to it).
func backend(i, v int) string { return fmt.Sprintf("198.51.100.%d", 1+(i*7+v)%250) }

func group(k int) string { return fmt.Sprintf("g%d", k%8) }

// edit rewrites intent i as version v.
func edit(ctx context.Context, c client.Client, o Options, i, v int) error {
	var in v1alpha1.NetworkIntent
	if err := c.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: name(i)}, &in); err != nil {
		return err
	}
	if in.DeletionTimestamp != nil {
		return nil
	}
	want := Intent(o, i, v)
	in.Labels, in.Spec = want.Labels, want.Spec
	return c.Update(ctx, &in)
}

// makePods makes o.Pods pods over the selector groups, Ready, with
// addresses in 10.200.0.0/16 (no traffic goes to them: no kubelet runs,
// the status is written as one would).
func makePods(ctx context.Context, c client.Client, o Options) ([]*corev1.Pod, error) {
	pods := make([]*corev1.Pod, o.Pods)
	for k := range pods {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: fmt.Sprintf("churn-pod-%d", k), Labels: map[string]string{"churn/group": group(k)}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			}}},
		}
		if err := c.Create(ctx, p); err != nil {
			return nil, err
		}
		ip := fmt.Sprintf("10.200.%d.%d", k/250, k%250+1)
		p.Status = corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      ip,
			PodIPs:     []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		}
		if err := c.Status().Update(ctx, p); err != nil {
			return nil, err
		}
		pods[k] = p
	}
	return pods, nil
}

// flip turns the pod's readiness over.
func flip(ctx context.Context, c client.Client, p *corev1.Pod) error {
	if err := c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		return err
	}
	cond := &p.Status.Conditions[0]
	cond.Status = map[corev1.ConditionStatus]corev1.ConditionStatus{corev1.ConditionTrue: corev1.ConditionFalse, corev1.ConditionFalse: corev1.ConditionTrue}[cond.Status]
	return c.Status().Update(ctx, p)
}

// serviceOwners describes the Service of a name: when it was created and
// who owns it, or that there is none.
func serviceOwners(svcs []corev1.Service, name string) string {
	for i := range svcs {
		if s := &svcs[i]; s.Name == name {
			return fmt.Sprintf("its Service was created %s, owners %v", s.CreationTimestamp, s.OwnerReferences)
		}
	}
	return "it has no Service"
}

// Check compares what the operator made in the namespace with what its
// intents ask for: each intent Ready at its generation, its Service of the
// right type and ports, the slices of its Service holding exactly the
// addresses it should (static backends, or the selected pods with their
// readiness); and no Service or slice left over from an intent that is gone.
// The first mismatch is returned.
func Check(ctx context.Context, c client.Reader, ns string) error {
	var intents v1alpha1.NetworkIntentList
	var svcs corev1.ServiceList
	var slicesList discoveryv1.EndpointSliceList
	var pods corev1.PodList
	for _, l := range []client.ObjectList{&intents, &svcs, &slicesList, &pods} {
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			return err
		}
	}
	byName := map[string]*v1alpha1.NetworkIntent{}
	for i := range intents.Items {
		in := &intents.Items[i]
		if in.DeletionTimestamp != nil {
			return fmt.Errorf("intent %s is still being deleted", in.Name)
		}
		byName[in.Name] = in
		ready := findCondition(in.Status.Conditions, v1alpha1.IntentConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != in.Generation || in.Status.ObservedGeneration != in.Generation {
			return fmt.Errorf("intent %s (uid %s, created %s, generation %d) not Ready at its generation: %+v; %s", in.Name, in.UID, in.CreationTimestamp, in.Generation, ready, serviceOwners(svcs.Items, in.Name))
		}
	}
	owned := map[string]bool{}
	for i := range svcs.Items {
		s := &svcs.Items[i]
		in := byName[s.Name]
		if !ownedBy(s.OwnerReferences, in) {
			return fmt.Errorf("service %s is left over (its intent is gone or it is owned by another): %s", s.Name, serviceOwners(svcs.Items, s.Name))
		}
		owned[s.Name] = true
		if string(s.Spec.Type) != string(in.Spec.Exposure) {
			return fmt.Errorf("service %s is %s, intent says %s", s.Name, s.Spec.Type, in.Spec.Exposure)
		}
		var got, want []int32
		for _, p := range s.Spec.Ports {
			got = append(got, p.Port)
		}
		for _, p := range in.Spec.Ports {
			want = append(want, p.Port)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("service %s has ports %v, intent says %v", s.Name, got, want)
		}
	}
	slicesOf := map[string][]discoveryv1.EndpointSlice{}
	for _, sl := range slicesList.Items {
		svc := sl.Labels[discoveryv1.LabelServiceName]
		if !owned[svc] {
			return fmt.Errorf("endpoint slice %s is left over (service %q has no intent)", sl.Name, svc)
		}
		slicesOf[svc] = append(slicesOf[svc], sl)
	}
	for _, in := range byName {
		if !owned[in.Name] {
			return fmt.Errorf("intent %s has no Service", in.Name)
		}
		if in.Spec.Exposure == v1alpha1.ExposureExternalName {
			if n := len(slicesOf[in.Name]); n > 0 {
				return fmt.Errorf("ExternalName intent %s has %d slices", in.Name, n)
			}
			continue
		}
		want, err := wantEndpoints(in, pods.Items)
		if err != nil {
			return err
		}
		got := map[string]bool{}
		for _, sl := range slicesOf[in.Name] {
			for _, e := range sl.Endpoints {
				for _, a := range e.Addresses {
					got[a] = e.Conditions.Ready == nil || *e.Conditions.Ready
				}
			}
		}
		if !mapsEqual(got, want) {
			return fmt.Errorf("intent %s: slices hold %v (address: ready), want %v", in.Name, got, want)
		}
	}
	return nil
}

// wantEndpoints are the addresses an intent's slices should hold, with
// their readiness.
func wantEndpoints(in *v1alpha1.NetworkIntent, pods []corev1.Pod) (map[string]bool, error) {
	want := map[string]bool{}
	for _, b := range in.Spec.Backends {
		want[b.Address] = true
	}
	if in.Spec.Selector == nil {
		return want, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(in.Spec.Selector)
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		want[p.Status.PodIP] = len(p.Status.Conditions) > 0 && p.Status.Conditions[0].Status == corev1.ConditionTrue
	}
	return want, nil
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func ownedBy(refs []metav1.OwnerReference, in *v1alpha1.NetworkIntent) bool {
	if in == nil {
		return false
	}
	for _, r := range refs {
		if r.UID == in.UID && r.Controller != nil && *r.Controller {
			return true
		}
	}
	return false
}

func findCondition(conds []metav1.Condition, t string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// HeapAfterGC is the live heap of a Go process serving net/http/pprof at
// addr, read after two forced garbage collections (MemStatsAfterGC).
func HeapAfterGC(addr string) (int64, error) {
	stats, err := MemStatsAfterGC(addr)
	if err != nil {
		return 0, err
	}
	return stats["HeapAlloc"], nil
}

// HeapFloor is the least of n readings of HeapAfterGC taken one after the
// other. One reading counts, besides what is retained, whatever the work in
// flight holds and whatever was allocated while the forced collection ran:
// under churn two readings a few milliseconds apart differ by up to 10 MiB
// on a 10 MiB heap. The least of a few is much closer to what is retained.
func HeapFloor(addr string, n int) (int64, error) {
	var least int64
	for i := range max(n, 1) {
		h, err := HeapAfterGC(addr)
		if err != nil {
			return 0, err
		}
		if i == 0 || h < least {
			least = h
		}
	}
	return least, nil
}

// Goroutines is how many goroutines a Go process serving net/http/pprof at
// addr has.
func Goroutines(addr string) (int64, error) {
	return pprofNumber(addr, "/debug/pprof/goroutine?debug=1", "goroutine profile: total ")
}

// MemStatsAfterGC are the runtime.MemStats of a Go process serving
// net/http/pprof at addr, right after the second of two forced garbage
// collections (the heap profile's gc=1, asked twice), by name (HeapAlloc,
// HeapInuse, HeapIdle, HeapReleased, Stack...), as its text heap profile
// ends with them; of a pair ("in use / obtained"), the first. What a
// sync.Pool holds outlives one collection (netintent's decompressors for
// the cache's compact forms, some 45 KB each, are held from one read to
// the second collection after), so that one reading would hold it or not
// by when the process last read an object.
func MemStatsAfterGC(addr string) (map[string]int64, error) {
	if _, err := memStatsAfterGC(addr); err != nil {
		return nil, err
	}
	return memStatsAfterGC(addr)
}

func memStatsAfterGC(addr string) (map[string]int64, error) {
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	stats := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if !ok || strings.ContainsAny(name, " /") {
			continue
		}
		first, _, _ := strings.Cut(value, " ")
		if n, err := strconv.ParseInt(first, 10, 64); err == nil {
			stats[name] = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if _, ok := stats["HeapAlloc"]; !ok {
		return nil, fmt.Errorf("no HeapAlloc in the heap profile of %s", addr)
	}
	return stats, nil
}

// pprofNumber reads the number after prefix in a text profile.
func pprofNumber(addr, path, prefix string) (int64, error) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %q in %s", prefix, path)
}

// Thirds compares the samples' first and last thirds: the lower quartile
// of each. A sample of the heap after GC is what is retained plus what the
// work in flight at that moment holds (a reconcile's lists, a watch's
// buffered events), which comes and goes by several MiB from one sample to
// the next; what is retained per operation raises every sample, so it
// shows in the low ones, which the work in flight spares.
func Thirds(samples []int64) (first, last int64) {
	n := len(samples) / 3
	if n == 0 {
		return 0, 0
	}
	return lowerQuartile(samples[:n]), lowerQuartile(samples[len(samples)-n:])
}

func lowerQuartile(s []int64) int64 {
	c := slices.Clone(s)
	slices.Sort(c)
	return c[len(c)/4]
}
