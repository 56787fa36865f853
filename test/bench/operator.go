package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/test/churn"
)

// convergence is one run of N intents applied at once.
type convergence struct {
	intents int
	// created is when the API server had taken the last create; ready,
	// when the last intent was Ready.
	created, ready time.Duration
	writes         float64
	byVerb         string // writes per intent by HTTP method
	// cpu is the CPU time each process used from the first create until
	// all were Ready.
	cpu cpuShare
}

// cpuShare is the CPU time (user and system) used by each process the
// convergence runs on the machine.
type cpuShare struct{ apiServer, etcd, operator, bench time.Duration }

func readCPUShare(p *process) (cpuShare, error) {
	op, err := p.cpuTime()
	children := childCPU()
	return cpuShare{apiServer: children["kube-apiserver"], etcd: children["etcd"], operator: op, bench: selfCPU()}, err
}

func (c cpuShare) since(before cpuShare) cpuShare {
	return cpuShare{c.apiServer - before.apiServer, c.etcd - before.etcd, c.operator - before.operator, c.bench - before.bench}
}

func (c cpuShare) total() time.Duration { return c.apiServer + c.etcd + c.operator + c.bench }

// memory is the operator's footprint at one point.
type memory struct {
	what      string
	rss, heap int64
	// intents is how many intents there were.
	intents int
	// resident is what the operator has resident (rss its total);
	// coreDNSResident, CoreDNS's on the same cluster at that moment (zero:
	// not measured); goStats, the operator's runtime.MemStats.
	resident, coreDNSResident residentSet
	goStats                   map[string]int64
}

// benchOperator runs the operator binary (all CPUs) and applies N intents at
// once for each N, then restarts it to count a no-op resync's writes, and
// reads its memory along the way and CoreDNS's on the same cluster.
func benchOperator(ctx context.Context, o options, cp *controlPlane, work string) (string, error) {
	dnsPort, err := freePort()
	if err != nil {
		return "", err
	}
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	args := append([]string{"--dns-listen-address=" + dnsAddr, "--dns-upstreams=127.0.0.1:1"}, o.operator...)
	p, err := startOperator(o, cp, work, "", nil, args...)
	if err != nil {
		return "", err
	}
	defer func() { p.stop() }()
	if err := settle(p, 0); err != nil {
		return "", err
	}
	var mems []memory
	m, err := readMemory(o, p, "no intents")
	if err != nil {
		return "", err
	}
	mems = append(mems, m)

	// Readiness is read from a watch, not from lists of every intent a few
	// times a second, which would load the API server the operator uses.
	watched, err := cache.New(cp.Config, cache.Options{Scheme: cp.client.Scheme()})
	if err != nil {
		return "", err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if _, err := watched.GetInformer(watchCtx, &v1alpha1.NetworkIntent{}); err != nil {
		return "", err
	}
	go func() { _ = watched.Start(watchCtx) }()
	if !watched.WaitForCacheSync(watchCtx) {
		return "", errors.New("the benchmark's own intent cache did not sync")
	}

	var runs []convergence
	total := 0
	for _, n := range o.intents {
		fmt.Fprintf(os.Stderr, "convergence: %d intents\n", n)
		ns := fmt.Sprintf("conv-%d", n)
		if err := cp.client.Create(ctx, namespace(ns)); err != nil {
			return "", err
		}
		before, err := counters(p)
		if err != nil {
			return "", err
		}
		if o.pods {
			// The pods are there and Ready before the intents come: what
			// is timed is the intents' convergence.
			if err := readyPods(ctx, cp, ns, n); err != nil {
				return "", err
			}
			if before, err = counters(p); err != nil {
				return "", err
			}
		}
		if o.cpuProfiles != "" {
			// What the operator spends its CPU on while the intents converge.
			go func() {
				path := filepath.Join(o.cpuProfiles, fmt.Sprintf("cpu-%d.pb.gz", n))
				if err := saveProfile(p.pprofAddr, "/debug/pprof/profile?seconds=10", path); err != nil {
					fmt.Fprintf(os.Stderr, "CPU profile: %v\n", err)
				}
			}()
		}
		if o.apiProfiles != "" {
			// What the API server spends its CPU on meanwhile: its
			// /debug/pprof, which it serves to an admin.
			go func() {
				path := filepath.Join(o.apiProfiles, fmt.Sprintf("apiserver-cpu-%d.pb.gz", n))
				if err := cp.saveProfile(ctx, 10*time.Second, path); err != nil {
					fmt.Fprintf(os.Stderr, "kube-apiserver CPU profile: %v\n", err)
				}
			}()
		}
		cpu0, err := readCPUShare(p)
		if err != nil {
			return "", err
		}
		start := time.Now()
		if err := cp.createAll(ctx, intents(ns, n, o.pods, o.headless)); err != nil {
			return "", err
		}
		created := time.Since(start)
		err = poll(5*time.Minute, fmt.Sprintf("%d intents Ready", n), func() error {
			if err := p.Alive(); err != nil {
				return err
			}
			return allReady(ctx, watched, ns, n)
		})
		if err != nil {
			return "", err
		}
		ready := time.Since(start)
		cpu1, err := readCPUShare(p)
		if err != nil {
			return "", err
		}
		total += n
		if err := settle(p, total); err != nil {
			return "", err
		}
		after, err := counters(p)
		if err != nil {
			return "", err
		}
		var verbs []string
		for i, m := range writeMethods {
			if d := after.byMethod[i] - before.byMethod[i]; d > 0 {
				verbs = append(verbs, fmt.Sprintf("%s %.2f", m, float64(d)/float64(n)))
			}
		}
		// Reads past the cache are no writes, but load the API server too.
		verbs = append(verbs, fmt.Sprintf("and GET %.2f", float64(after.gets-before.gets)/float64(n)))
		runs = append(runs, convergence{intents: n, created: created, ready: ready, writes: float64(after.writes-before.writes) / float64(n), byVerb: strings.Join(verbs, ", "), cpu: cpu1.since(cpu0)})
		m, err := readMemory(o, p, fmt.Sprintf("%d intents, right after converging", total))
		if err != nil {
			return "", err
		}
		m.intents = total
		// CoreDNS started on the cluster as it is now, for its RSS next
		// to the operator's.
		if m.coreDNSResident, err = coreDNSMemory(o, cp, work, fmt.Sprintf("app-%d.%s.svc.cluster.local.", n-1, ns)); err != nil {
			return "", err
		}
		mems = append(mems, m)
	}

	// A restart reconciles every intent again with nothing to change.
	fmt.Fprintln(os.Stderr, "no-op resync: restarting the operator")
	p.stop()
	if p, err = startOperator(o, cp, work, "", nil, args...); err != nil {
		return "", err
	}
	if err := settle(p, total); err != nil {
		return "", err
	}
	resync, err := counters(p)
	if err != nil {
		return "", err
	}
	if m, err = readMemory(o, p, fmt.Sprintf("%d intents, after a restart", total)); err != nil {
		return "", err
	}
	m.intents = total
	mems = append(mems, m)

	if o.services > 0 {
		fmt.Fprintf(os.Stderr, "memory: %d plain Services\n", o.services)
		ns := "plain"
		if err := cp.client.Create(ctx, namespace(ns)); err != nil {
			return "", err
		}
		objs := make([]client.Object, o.services)
		for i := range objs {
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("plain-%d", i)},
				Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}},
			}
			if o.endpoints > 0 {
				svc.Spec.ClusterIP = corev1.ClusterIPNone // answered from its endpoints
			}
			objs[i] = svc
		}
		if err := cp.createAll(ctx, objs); err != nil {
			return "", err
		}
		row := fmt.Sprintf("%d intents and %d plain Services", total, o.services)
		if o.endpoints > 0 {
			row += fmt.Sprintf(" of %d endpoints", o.endpoints)
			if err := cp.createAll(ctx, podSlices(objs, o.endpoints)); err != nil {
				return "", err
			}
		}
		// Every Service answered (from its endpoints, when it has some).
		if err := poll(2*time.Minute, "the operator's DNS knows every plain Service", func() error {
			for _, svc := range objs {
				if err := answers(dnsAddr, fmt.Sprintf("%s.%s.svc.cluster.local.", svc.GetName(), ns)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return "", err
		}
		last := fmt.Sprintf("plain-%d.%s.svc.cluster.local.", o.services-1, ns)
		if m, err = readMemory(o, p, row); err != nil {
			return "", err
		}
		if m.coreDNSResident, err = coreDNSMemory(o, cp, work, last); err != nil {
			return "", err
		}
		mems = append(mems, m)
	}
	return operatorTable(o, runs, resync.writes, mems, total), nil
}

// coreDNSMemory starts CoreDNS on the cluster, waits until it answers
// last (the name of the last object made), and returns what it has
// resident.
func coreDNSMemory(o options, cp *controlPlane, work, last string) (residentSet, error) {
	port, err := freePort()
	if err != nil {
		return residentSet{}, err
	}
	cd, err := startCoreDNS(o, cp, work, "", port, "127.0.0.1:1")
	if err != nil {
		return residentSet{}, err
	}
	defer cd.stop()
	err = poll(2*time.Minute, "CoreDNS knows "+last, func() error {
		if err := cd.Alive(); err != nil {
			return err
		}
		return answers(fmt.Sprintf("127.0.0.1:%d", port), last)
	})
	if err != nil {
		return residentSet{}, err
	}
	return cd.residentSet()
}

// intents are n ClusterIP intents (headless ones with headless) with two
// backends each: static addresses, or with pods the two pods readyPods
// made for each.
func intents(ns string, n int, pods, headless bool) []client.Object {
	objs := make([]client.Object, n)
	for i := range objs {
		in := &v1alpha1.NetworkIntent{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("app-%d", i)},
			Spec: v1alpha1.NetworkIntentSpec{
				Exposure: v1alpha1.ExposureClusterIP,
				Ports:    []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(8080))}},
				Headless: headless,
			},
		}
		if pods {
			in.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": in.Name}}
		} else {
			in.Spec.Backends = []v1alpha1.Backend{{Address: backendAddress(0, i)}, {Address: backendAddress(1, i)}}
		}
		objs[i] = in
	}
	return objs
}

// backendAddress is the address of intent i's backend j (0 or 1).
func backendAddress(j, i int) string {
	return fmt.Sprintf("10.%d.%d.%d", 250-j, i/250, i%250+1)
}

// readyPods makes two pods for each of n intents, Ready with their address
// (no kubelet runs here: the status is written as a kubelet would).
func readyPods(ctx context.Context, cp *controlPlane, ns string, n int) error {
	pods := make([]client.Object, 0, 2*n)
	addrs := make(map[string]string, 2*n) // by pod name
	for i := range n {
		for j := range 2 {
			name := fmt.Sprintf("app-%d-%d", i, j)
			addrs[name] = backendAddress(j, i)
			pods = append(pods, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": fmt.Sprintf("app-%d", i)}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
			})
		}
	}
	if err := cp.createAll(ctx, pods); err != nil {
		return err
	}
	return forAll(pods, "marking ready", func(o client.Object) error {
		pod := o.(*corev1.Pod)
		addr := addrs[pod.Name]
		pod.Status = corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      addr,
			PodIPs:     []corev1.PodIP{{IP: addr}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
		}
		return cp.client.Status().Update(ctx, pod)
	})
}

// allReady returns nil when n intents in ns are Ready for their current
// generation.
func allReady(ctx context.Context, c client.Reader, ns string, n int) error {
	var list v1alpha1.NetworkIntentList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	ready := 0
	for _, in := range list.Items {
		cond := apimeta.FindStatusCondition(in.Status.Conditions, "Ready")
		if cond != nil && cond.Status == metav1.ConditionTrue && in.Status.ObservedGeneration == in.Generation {
			ready++
		}
	}
	if ready < n {
		return fmt.Errorf("%d of %d Ready", ready, n)
	}
	return nil
}

// answers returns nil when the server answers name with an address.
func answers(addr, name string) error {
	r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(new(dns.Msg).SetQuestion(name, dns.TypeA), addr)
	if err != nil {
		return err
	}
	if len(r.Answer) == 0 {
		return fmt.Errorf("%s: %s", name, dns.RcodeToString[r.Rcode])
	}
	return nil
}

// writeMethods are the HTTP methods of API requests that change something.
var writeMethods = [...]string{"POST", "PUT", "PATCH", "DELETE"}

// operatorCounters are sums of the operator's own metrics.
type operatorCounters struct {
	writes     int64 // API requests that change something: POST, PUT, PATCH, DELETE
	byMethod   [len(writeMethods)]int64
	gets       int64 // GET requests: reads from the API server, past the cache (lists and watches included)
	reconciles int64 // of the NetworkIntent controllers
}

func counters(p *process) (operatorCounters, error) {
	var c operatorCounters
	resp, err := http.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, "rest_client_requests_total{"):
			for i, m := range writeMethods {
				if strings.Contains(line, `method="`+m+`"`) {
					c.writes += int64(v)
					c.byMethod[i] += int64(v)
				}
			}
			if strings.Contains(line, `method="GET"`) {
				c.gets += int64(v)
			}
		case strings.HasPrefix(line, "controller_runtime_reconcile_total{"):
			c.reconciles += int64(v)
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return c, sc.Err()
}

// settle waits until the operator has reconciled at least intents times
// and its writes and reconciles have stopped changing for two seconds.
func settle(p *process, intents int) error {
	var last operatorCounters
	stable := time.Now()
	return poll(5*time.Minute, "the operator settles", func() error {
		if err := p.Alive(); err != nil {
			return err
		}
		c, err := counters(p)
		if err != nil {
			return err
		}
		if c != last {
			last, stable = c, time.Now()
		}
		if c.reconciles < int64(intents) {
			return fmt.Errorf("%d reconciles, want at least %d", c.reconciles, intents)
		}
		if time.Since(stable) < 2*time.Second {
			return fmt.Errorf("still busy: %+v", c)
		}
		return nil
	})
}

// memoryProfiles counts the heap profiles readMemory has written.
var memoryProfiles int

// readMemory reads the operator's RSS and, after two forced garbage
// collections (churn.MemStatsAfterGC), its runtime.MemStats and so its
// live heap; and, when o.heapProfiles is set, writes the operator's
// heap profile there.
func readMemory(o options, p *process, what string) (memory, error) {
	m := memory{what: what}
	var err error
	if m.goStats, err = churn.MemStatsAfterGC(p.pprofAddr); err != nil {
		return m, fmt.Errorf("the operator's heap: %w", err)
	}
	m.heap = m.goStats["HeapAlloc"]
	if o.heapProfiles != "" {
		// What the heap holds, by where it was allocated.
		memoryProfiles++
		path := filepath.Join(o.heapProfiles, fmt.Sprintf("heap-%d.pb.gz", memoryProfiles))
		if err := saveProfile(p.pprofAddr, "/debug/pprof/heap?gc=1", path); err != nil {
			return m, err
		}
		fmt.Fprintf(os.Stderr, "memory: heap profile %s: %s\n", path, what)
	}
	m.resident, err = p.residentSet()
	m.rss = m.resident.total
	return m, err
}

func operatorTable(o options, runs []convergence, resyncWrites int64, mems []memory, total int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Convergence: intents applied at once, operator on all CPUs\n\n")
	policy := "with config/admission's policy setting the finalizer at create"
	if o.noPolicy {
		policy = "without config/admission's policy (the operator adds each finalizer)"
	}
	backends := "two static backends each"
	if o.pods {
		backends = "two Ready pods each (made before the intents)"
	}
	kind := "ClusterIP"
	if o.headless {
		kind = "Headless ClusterIP"
	}
	fmt.Fprintf(&b, "%s intents with %s, created by 16 writers, %s; the operator's flags: `%s`.\n\n", kind, backends, policy, strings.Join(o.operator, " "))
	fmt.Fprintf(&b, "| intents | seconds until all created | seconds until all Ready | API writes per intent | by method |\n|---:|---:|---:|---:|---|\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "| %d | %.1f | %.1f | %.2f | %s |\n", r.intents, r.created.Seconds(), r.ready.Seconds(), r.writes, r.byVerb)
	}
	fmt.Fprintf(&b, "\nCPU time used from the first create until all were Ready, in seconds, by process (the benchmark's 16 writers and its watch are the benchmark), against what the machine's %d CPUs had in that time:\n\n", runtime.NumCPU())
	fmt.Fprintf(&b, "| intents | kube-apiserver | etcd | operator | benchmark | together | the CPUs had | kube-apiserver and etcd per intent |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		c := r.cpu
		fmt.Fprintf(&b, "| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f ms |\n", r.intents, c.apiServer.Seconds(), c.etcd.Seconds(), c.operator.Seconds(), c.bench.Seconds(), c.total().Seconds(),
			r.ready.Seconds()*float64(runtime.NumCPU()), float64((c.apiServer+c.etcd).Milliseconds())/float64(r.intents))
	}
	fmt.Fprintf(&b, "\nA no-op resync (the operator restarted over %d Ready intents) wrote %d times.\n\n", total, resyncWrites)
	fmt.Fprintf(&b, "## Memory\n\nHeap per intent is the heap after GC (the second of two forced collections, which a sync.Pool's contents do not outlive) above the operator's with no intents, over the intents (each with its Service and slice). CoreDNS is started on the cluster as it is after each convergence, and its RSS read once it answers the name of the last Service made.\n\n")
	fmt.Fprintf(&b, "| operator with | RSS | heap after GC | heap per intent | CoreDNS RSS |\n|---|---:|---:|---:|---:|\n")
	for _, m := range mems {
		perIntent, coreDNS := "", ""
		if m.intents > 0 && len(mems) > 0 {
			perIntent = fmt.Sprintf("%.1f KiB", float64(m.heap-mems[0].heap)/float64(m.intents)/1024)
		}
		if m.coreDNSResident.total > 0 {
			coreDNS = mib(m.coreDNSResident.total)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", m.what, mib(m.rss), mib(m.heap), perIntent, coreDNS)
	}
	fmt.Fprintf(&b, "\nWhere the RSS is, at the same moments: pages of the executable (file-backed, its text and data as far as they were touched) and the rest (anonymous); of the operator's, from its runtime.MemStats right after the forced collections, the heap spans in use, the heap spans free but not yet returned to the system (HeapIdle less HeapReleased), and the goroutine stacks.\n\n")
	fmt.Fprintf(&b, "| operator with | RSS from the executable | anonymous | heap spans in use | free, not returned | stacks | CoreDNS from the executable | anonymous |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range mems {
		coreFile, coreAnon := "", ""
		if c := m.coreDNSResident; c.total > 0 {
			coreFile, coreAnon = mib(c.file), mib(c.anon)
		}
		g := m.goStats
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", m.what, mib(m.resident.file), mib(m.resident.anon),
			mib(g["HeapInuse"]), mib(g["HeapIdle"]-g["HeapReleased"]), mib(g["Stack"]), coreFile, coreAnon)
	}
	b.WriteString("\n")
	return b.String()
}

// podSlices are the EndpointSlices Kubernetes' EndpointSlice controller
// would write for services (created, so with their UIDs), each of perService
// ready pod endpoints, up to 100 a slice: each endpoint with its pod as
// target, a node and a zone; addresses from 10.128.0.0 on, one each.
func podSlices(services []client.Object, perService int) []client.Object {
	var slices []client.Object
	next, n := netip.MustParseAddr("10.128.0.0"), 0
	for _, svc := range services {
		for first := 0; first < perService; first += 100 {
			s := &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: svc.GetNamespace(), Name: fmt.Sprintf("%s-%d", svc.GetName(), first/100), GenerateName: svc.GetName() + "-",
					Labels: map[string]string{
						discoveryv1.LabelServiceName: svc.GetName(),
						discoveryv1.LabelManagedBy:   "endpointslice-controller.k8s.io",
					},
					Annotations:     map[string]string{corev1.EndpointsLastChangeTriggerTime: "2026-12-05T00:00:00Z"},
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))},
				},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
			}
			for i := first; i < min(first+100, perService); i++ {
				pod := fmt.Sprintf("%s-%d", svc.GetName(), i)
				s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
					Addresses:  []string{next.String()},
					Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
					TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: svc.GetNamespace(), Name: pod, UID: types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", n))},
					NodeName:   ptr.To(fmt.Sprintf("node-%d", i%50)),
					Zone:       ptr.To(fmt.Sprintf("zone-%d", i%3)),
				})
				next, n = next.Next(), n+1
			}
			slices = append(slices, s)
		}
	}
	return slices
}
