package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// The probe part's shape: intents of probeBackendsPerIntent farm
// addresses each, probed over HTTP every probePeriod; in each outage,
// probeVictims backends of every intent die or fail.
const (
	probeVictims   = 10
	probePeriod    = time.Second
	probeTimeout   = 500 * time.Millisecond
	probeThreshold = 2
	probeNamespace = "probe"
)

// Its timings, chosen so that both default runs take under four minutes.
const (
	// probeWarmup passes before a rate is measured: every backend has been
	// probed by then (the operator) or every prober goroutine has started
	// (the minimal prober).
	probeWarmup = 3 * time.Second
	// probeWindow is the steady-state window of rates and CPU.
	probeWindow = 10 * time.Second
	// probeAfterDeath is the window after an outage's start in which the
	// healthy backends' probe rate is read.
	probeAfterDeath = 5 * time.Second
	// probeOutageTimeout bounds the wait for every victim out of traffic;
	// slower ones are reported as more than it.
	probeOutageTimeout = 25 * time.Second
	// probeReadyTimeout bounds the wait for every new backend in traffic
	// and probed; probeBackTimeout the wait for an outage's victims back
	// in traffic after it ends. A run goes on after either, and the table
	// says how many were missing.
	probeReadyTimeout = 20 * time.Second
	probeBackTimeout  = 10 * time.Second
)

// probeBusyOthers is the CPUs other processes may take in a steady window
// before the table calls the machine busy.
const probeBusyOthers = 0.2

// minimalEnv, when set, turns the test binary into the minimal prober: it
// probes the addresses in the file the variable names.
const minimalEnv = "BENCH_MINIMAL_PROBER"

func init() {
	// Before TestMain: the minimal prober is this binary re-executed, so
	// that its CPU time is its own.
	if file, ok := os.LookupEnv(minimalEnv); ok {
		if err := minimalProber(file); err != nil {
			fmt.Fprintln(os.Stderr, "minimal prober:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
}

// minimalProber is the least an HTTP prober can do: one goroutine per
// address, each on a ticker of the period started at a random phase, a
// GET /healthz on a fresh connection with the probe timeout. It runs until
// SIGTERM.
func minimalProber(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var urls []string
	for _, line := range strings.Fields(string(b)) {
		a, err := netip.ParseAddr(line)
		if err != nil {
			return err
		}
		urls = append(urls, "http://"+netip.AddrPortFrom(a, testnet.FarmPort).String()+"/healthz")
	}
	c := &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, u := range urls {
		go func() {
			time.Sleep(rand.N(probePeriod)) // jitter: spread the probes over the period
			tick := time.NewTicker(probePeriod)
			for {
				if resp, err := c.Get(u); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				<-tick.C
			}
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return nil
}

// probeRun is what one backend count measured.
type probeRun struct {
	backends int
	// operator and minimal are the steady windows of the operator and of
	// the minimal prober.
	operator, minimal measured
	blackhole, fail   outageResult
	rss               int64
	// notReady are the backends not in traffic when the wait for all of
	// them ended; flaps how many times one left traffic in the steady
	// window, where every backend answers.
	notReady, flaps int
}

// outageResult is one outage: how long each victim took to leave the
// published endpoints, and the healthy backends' probe rate after it began
// as a fraction of the steady rate.
type outageResult struct {
	victims int
	// out are the victims' times out of traffic, sorted; victims that
	// were still in after probeOutageTimeout are missing.
	out         []time.Duration
	healthyRate float64
	// notReadyBefore are victims already out of traffic when the outage
	// began; they are not counted.
	notReadyBefore int
	// decided are, for victims that still answer (503), the times from
	// the start until the farm received the unhealthyThreshold-th probe,
	// the one that decides, sorted: what is left of out is the
	// operator's time to publish. Empty for victims that vanish.
	decided []time.Duration
	// triggered are the victims' times from the start to the
	// last-change-trigger-time of the slice version that took each out
	// (the operator's decision), and published the times from there to
	// this watch seeing that version (the write, the API server and the
	// watch), both sorted.
	triggered, published []time.Duration
	// collateral counts the backends that kept answering and were yet
	// published not ready after the start.
	collateral int
	// reconcileErrors counts the operator's failed reconciles from the
	// start until every victim was out.
	reconcileErrors int
	// stages are the mean times, over the same span, of the intents'
	// reconciles in their queue and at work, and of the operator's
	// EndpointSlice writes.
	stages stages
	// probedBack and back are, after the outage ends, the times until
	// each victim's first probe at the farm and until it is published
	// ready again, sorted.
	probedBack, back []time.Duration
	// notBack are the victims still out of traffic probeBackTimeout
	// after the end.
	notBack int
	// start is how long the outage took to begin: the farm's removal of
	// every victim's address, timed from its start.
	start time.Duration
}

// BenchmarkProbe measures the operator's active health checking at scale:
// the built operator, with its default flags, probes a farm of HTTP
// backends (one network namespace with an address for each; root needed)
// behind intents of 100 backends each, next to a minimal Go prober on the
// same addresses. Run by make bench, which sets $BENCH_PROBE_BACKENDS (the
// counts, multiples of 100), $BENCH_NETINTENT (the binary) and
// $BENCH_PROBE_OUT (where the table goes).
func BenchmarkProbe(b *testing.B) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		b.Fatal(err)
	}
	counts, err := parseProbeBackends(os.Getenv("BENCH_PROBE_BACKENDS"))
	if err != nil {
		b.Fatal(err)
	}
	bin := os.Getenv("BENCH_NETINTENT")
	if bin == "" {
		bin = filepath.Join(root, "bin", "netintent")
	}
	// The harness's own clients log nothing worth reading.
	ctrllog.SetLogger(logr.Discard())
	ctx := context.Background()
	work := b.TempDir()
	started := time.Now()
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "probe: %3.0fs "+format+"\n", append([]any{time.Since(started).Seconds()}, args...)...)
	}

	// Two runs at once would measure each other: one waits for the other.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "netintent-bench-probe.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		progress("waiting for another probe run on this machine to end")
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
			b.Fatal(err)
		}
		started = time.Now()
	}

	progress("a farm of %d backends", counts[len(counts)-1])
	farm := testnet.NewFarm(b, counts[len(counts)-1])
	runs := make([]probeRun, len(counts))

	// The minimal prober first, while nothing else probes the farm.
	for i, n := range counts {
		progress("minimal prober, %d backends", n)
		runs[i].backends = n
		if runs[i].minimal, err = runMinimal(farm, work, n); err != nil {
			b.Fatal(err)
		}
		m := runs[i].minimal
		progress("minimal prober, %d backends: %.0f probes/s, %.0f µs CPU a probe", n, m.rate(), us(m.perProbe(m.cpu)))
	}

	cp, err := startControlPlane(root, work, true)
	if err != nil {
		b.Fatal(err)
	}
	defer cp.stop()
	o := options{root: root, netintent: bin}
	// The operator's defaults but for its DNS server, which this part
	// does not use.
	p, err := startOperator(o, cp, work, "", nil, append([]string{"--dns-listen-address="}, strings.Fields(os.Getenv("BENCH_OPERATOR_ARGS"))...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer p.stop()
	if err := cp.client.Create(ctx, namespace(probeNamespace)); err != nil {
		b.Fatal(err)
	}
	// The watch of every slice version speaks protobuf, as the operator
	// does: what it costs the API server is the benchmark's, not the
	// operator's.
	watchCfg := rest.CopyConfig(cp.Config)
	watchCfg.ContentType = runtime.ContentTypeProtobuf
	watchCfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	cs, err := kubernetes.NewForConfig(watchCfg)
	if err != nil {
		b.Fatal(err)
	}
	profileAPIServer = func(path string) error { return cp.saveProfile(ctx, 5*time.Second, path) }
	apiServerMetrics = func() ([]byte, error) { return cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx) }
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	sw, err := watchSlices(watchCtx, cs, probeNamespace)
	if err != nil {
		b.Fatal(err)
	}

	made := 0 // intents made so far: each run adds to the last one's
	for i := range runs {
		r := &runs[i]
		n := r.backends
		addrs := farm.Addrs[:n]
		before := farm.Requests()
		var objs []client.Object
		for ; made < n/probeBackendsPerIntent; made++ {
			objs = append(objs, probeIntent(made, farm.Addrs[made*probeBackendsPerIntent:(made+1)*probeBackendsPerIntent]))
		}
		progress("operator, %d backends: %d intents more", n, len(objs))
		if err := cp.createAll(ctx, objs); err != nil {
			b.Fatal(err)
		}
		if r.notReady, err = sw.waitReady(p, addrs, probeReadyTimeout); err != nil {
			b.Fatal(err)
		}
		if r.notReady > 0 {
			progress("operator, %d backends: %d not in traffic after %s; going on", n, r.notReady, probeReadyTimeout)
		}
		if err := testenv.Poll(context.Background(), 200*time.Millisecond, probeBackTimeout, "every backend probed", func() error {
			if err := p.Alive(); err != nil {
				return err
			}
			reqs, unprobed := farm.Requests(), 0
			for j := range n {
				if reqs[j] == before[j] {
					unprobed++
				}
			}
			if unprobed > 0 {
				return fmt.Errorf("%d of %d backends not probed yet", unprobed, n)
			}
			return nil
		}); err != nil {
			if p.Alive() != nil {
				b.Fatal(err)
			}
			progress("operator, %d backends: %v; going on", n, err)
		}
		time.Sleep(probeWarmup)

		progress("operator, %d backends: steady state", n)
		outs0 := sw.outs()
		if r.operator, err = window(farm, p, n); err != nil {
			b.Fatal(err)
		}
		r.flaps = sw.outs() - outs0
		progress("operator, %d backends: %.0f probes/s, %.0f µs CPU a probe", n, r.operator.rate(), us(r.operator.perProbe(r.operator.cpu)))
		steadyPerBackend := r.operator.rate() / float64(n)

		// Backends 0-9 of every intent vanish, then 10-19 fail.
		blackhole, failing := victims(farm.Addrs, n, 0), victims(farm.Addrs, n, probeVictims)
		progress("operator, %d backends: %d vanish", n, len(blackhole))
		r.blackhole, err = outage(farm, sw, p, n, blackhole, steadyPerBackend, func() error { return farm.Vanish(addrsOf(farm.Addrs, blackhole)) })
		if err != nil {
			b.Fatal(err)
		}
		progress("operator, %d backends: restored", n)
		err = recovery(farm, sw, p, blackhole, &r.blackhole, func() error { return farm.Restore(addrsOf(farm.Addrs, blackhole)) })
		if err != nil {
			b.Fatal(err)
		}
		progress("operator, %d backends: %d answer 503", n, len(failing))
		r.fail, err = outage(farm, sw, p, n, failing, steadyPerBackend, func() error {
			farm.SetFailing(addrsOf(farm.Addrs, failing), true)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		progress("operator, %d backends: 200 again", n)
		err = recovery(farm, sw, p, failing, &r.fail, func() error {
			farm.SetFailing(addrsOf(farm.Addrs, failing), false)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if r.rss, err = p.rss(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.operator.rate(), fmt.Sprintf("probes/s@%d", n))
		b.ReportMetric(us(r.operator.perProbe(r.operator.cpu)), fmt.Sprintf("cpu-µs/probe@%d", n))
	}
	// The largest run again with two replicas sharing the probes.
	p.stop()
	n := runs[len(runs)-1].backends
	progress("two replicas, %d backends", n)
	shared, err := twoReplicas(o, cp, work, farm, sw, n)
	if err != nil {
		b.Fatal(err)
	}
	progress("done")

	report := probeTable(runs) + shareTable(shared)
	if out := os.Getenv("BENCH_PROBE_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			b.Fatal(err)
		}
		return
	}
	b.Log("\n" + report)
}

// probeIntent is intent i over backends, probed as the part says.
func probeIntent(i int, backends []netip.Addr) *v1alpha1.NetworkIntent {
	return testenv.Intent(probeNamespace, fmt.Sprintf("farm-%03d", i)).HTTPPort(testnet.FarmPort).Backends(backends...).
		HTTPProbe(probePeriod, probeTimeout, probeThreshold).ProbePort(testnet.FarmPort).Build()
}

// victims are the indexes of probeVictims backends of every intent among
// the first n addresses, from the from-th backend of each.
func victims(addrs []netip.Addr, n, from int) []int {
	var out []int
	for i := 0; i < n; i += probeBackendsPerIntent {
		for j := range probeVictims {
			out = append(out, i+from+j)
		}
	}
	return out
}

func addrsOf(addrs []netip.Addr, idx []int) []netip.Addr {
	out := make([]netip.Addr, len(idx))
	for i, j := range idx {
		out[i] = addrs[j]
	}
	return out
}

// measured is one window of steady probing.
type measured struct {
	// probes are the probes the farm received from the prober, cpu the
	// prober's CPU time.
	probes uint64
	cpu    time.Duration
	// idle is the machine's idle share; farm this process's CPU time (the
	// farm's server, mostly), children that of its other children (the
	// control plane, when it runs), kernel the kernel's outside any
	// process (interrupts and its threads: network processing, mostly),
	// others the rest of the machine's: other work on it.
	idle                           float64
	farm, children, kernel, others time.Duration
}

// rate is the probes a second.
func (m measured) rate() float64 { return float64(m.probes) / probeWindow.Seconds() }

// perProbe is d divided among the probes.
func (m measured) perProbe(d time.Duration) time.Duration {
	if m.probes == 0 {
		return 0
	}
	return d / time.Duration(m.probes)
}

// window measures the prober p over the farm's first n addresses for
// probeWindow.
func window(farm *testnet.Farm, p *process, n int) (measured, error) {
	var m measured
	req0, idle0, self0 := farm.Requests(), machineIdle(), selfCPU()
	ours0, kernel0 := procCPU()
	cpu0, err := p.cpuTime()
	if err != nil {
		return m, err
	}
	time.Sleep(probeWindow)
	req1, idle1, self1 := farm.Requests(), machineIdle(), selfCPU()
	ours1, kernel1 := procCPU()
	cpu1, err := p.cpuTime()
	if err != nil {
		return m, err
	}
	if err := p.Alive(); err != nil {
		return m, err
	}
	for i := range n {
		m.probes += req1[i] - req0[i]
	}
	m.cpu = cpu1 - cpu0
	m.idle = idle1.since(idle0)
	m.farm = self1 - self0
	m.children = max(0, ours1-ours0-m.farm-m.cpu)
	m.kernel = kernel1 - kernel0 + idle1.irqSince(idle0)
	m.others = max(0, idle1.busySince(idle0)-(ours1-ours0)-m.kernel)
	return m, nil
}

// runMinimal runs the minimal prober over the farm's first n addresses and
// returns its rate (probes a second at the farm) and CPU time a probe.
func runMinimal(farm *testnet.Farm, work string, n int) (measured, error) {
	var list strings.Builder
	for _, a := range farm.Addrs[:n] {
		list.WriteString(a.String() + "\n")
	}
	file := filepath.Join(work, fmt.Sprintf("minimal-%d.addrs", n))
	if err := os.WriteFile(file, []byte(list.String()), 0o644); err != nil {
		return measured{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return measured{}, err
	}
	p, err := startProcess(work, "minimal", "", []string{minimalEnv + "=" + file}, self)
	if err != nil {
		return measured{}, err
	}
	defer p.stop()
	time.Sleep(probeWarmup)
	m, err := window(farm, p, n)
	if err != nil || m.probes == 0 {
		return m, errors.Join(err, p.failed("probing", fmt.Errorf("%d probes", m.probes)))
	}
	return m, nil
}

// outage starts one with kill, over the backends at indexes victims of the
// first n, and measures how long each victim takes to leave the published
// endpoints and the other backends' probe rate in the probeAfterDeath that
// follow, against steadyPerBackend.
// profileAPIServer saves the API server's CPU profile of the next 5 s.
var profileAPIServer func(path string) error

// profiles counts the outages profiled (BENCH_PROBE_PROFILES names a folder
// for the operator's CPU profile of the 5 s after each).
var profiles int

func outage(farm *testnet.Farm, sw *sliceWatch, p *process, n int, victims []int, steadyPerBackend float64, kill func() error) (outageResult, error) {
	res := outageResult{victims: len(victims)}
	addrs := addrsOf(farm.Addrs, victims)
	ready := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if sw.ready(a) {
			ready = append(ready, a)
		} else {
			res.notReadyBefore++
		}
	}
	isVictim := make([]bool, n)
	for _, i := range victims {
		isVictim[i] = true
	}
	req0 := farm.Requests()
	// The outage begins when kill is called; it has reached every victim
	// when kill returns (a few milliseconds later, for the farm's
	// address removal).
	if dir := os.Getenv("BENCH_PROBE_PROFILES"); dir != "" {
		// Where the operator's CPU goes in the seconds after the outage.
		profiles++
		go func(path string) {
			if err := saveProfile(p.pprofAddr, "/debug/pprof/profile?seconds=5", path); err != nil {
				fmt.Fprintf(os.Stderr, "CPU profile: %v\n", err)
			}
		}(filepath.Join(dir, fmt.Sprintf("cpu-%d-outage-%d.pb.gz", n, profiles)))
		if profileAPIServer != nil {
			go func(path string) {
				if err := profileAPIServer(path); err != nil {
					fmt.Fprintf(os.Stderr, "API server CPU profile: %v\n", err)
				}
			}(filepath.Join(dir, fmt.Sprintf("apiserver-%d-outage-%d.pb.gz", n, profiles)))
		}
	}
	errs0, err := metricSum(p, "controller_runtime_reconcile_errors_total")
	if err != nil {
		return res, err
	}
	stages0, err := readStages(p)
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	if err := kill(); err != nil {
		return res, err
	}
	res.start = time.Since(t0)
	after := make(chan []uint64, 1)
	go func() {
		time.Sleep(time.Until(t0.Add(probeAfterDeath)))
		after <- farm.Requests()
	}()
	// The probe that decides: the unhealthyThreshold-th since the start.
	decided := nthRequest(farm, victims, req0, t0, probeThreshold)
	res.out = sw.waitOut(ready, t0, probeOutageTimeout)
	res.triggered, res.published = sw.triggers(ready, t0)
	others := make([]netip.Addr, 0, n-len(victims))
	for i := range n {
		if !isVictim[i] {
			others = append(others, farm.Addrs[i])
		}
	}
	errs1, err := metricSum(p, "controller_runtime_reconcile_errors_total")
	if err != nil {
		return res, err
	}
	res.reconcileErrors = int(errs1 - errs0)
	stages1, err := readStages(p)
	if err != nil {
		return res, err
	}
	res.stages = stages1.since(stages0)
	req1 := <-after
	res.decided = decided()
	// After the probes counted: every healthy backend has been probed a
	// few times since the start.
	res.collateral = sw.leftSince(others, t0)
	elapsed := probeAfterDeath.Seconds()
	var healthy uint64
	for i := range n {
		if !isVictim[i] {
			healthy += req1[i] - req0[i]
		}
	}
	if others := n - len(victims); others > 0 && steadyPerBackend > 0 {
		res.healthyRate = float64(healthy) / elapsed / float64(others) / steadyPerBackend
	}
	return res, p.Alive()
}

// cpuTimes are the machine's CPU time counters (/proc/stat's first line),
// in ticks.
type cpuTimes struct{ idle, irq, total uint64 }

func machineIdle() cpuTimes {
	var c cpuTimes
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		if i < 7 { // user nice system idle iowait irq softirq; steal is no one's here, guest is in user
			c.total += v
		}
		switch i {
		case 3, 4:
			c.idle += v
		case 5, 6:
			c.irq += v
		}
	}
	return c
}

// busySince is the CPU time spent from before to c.
func (c cpuTimes) busySince(before cpuTimes) time.Duration {
	busy := (c.total - c.idle) - (before.total - before.idle)
	return time.Duration(busy) * time.Second / clockTicks
}

// irqSince is the CPU time spent in interrupts (softirqs included) from
// before to c: the kernel's network processing, mostly, charged to no
// process.
func (c cpuTimes) irqSince(before cpuTimes) time.Duration {
	return time.Duration(c.irq-before.irq) * time.Second / clockTicks
}

// procCPU returns the CPU time of this process and its children that run
// (the operator, the control plane, the minimal prober), and that of the
// kernel's threads (ksoftirqd's network processing among them).
func procCPU() (ours, kernel time.Duration) {
	ours = selfCPU()
	self := strconv.Itoa(os.Getpid())
	for _, st := range procStats() {
		switch {
		case st.ppid == self:
			ours += st.cpu
		case st.ppid == "2" || st.pid == "2": // kthreadd and its threads
			kernel += st.cpu
		}
	}
	return ours, kernel
}

// since is the idle share of the time from before to c.
func (c cpuTimes) since(before cpuTimes) float64 {
	if c.total <= before.total {
		return 0
	}
	return float64(c.idle-before.idle) / float64(c.total-before.total)
}

// nthRequest reads the farm's counts every 20 ms and, when the returned
// function is called, returns after how long from t0 each of the backends
// at indexes idx had received its nth request since the counts req0,
// sorted (the ones that had not are missing).
func nthRequest(farm *testnet.Farm, idx []int, req0 []uint64, t0 time.Time, nth uint64) func() []time.Duration {
	stop := make(chan struct{})
	result := make(chan []time.Duration, 1)
	go func() {
		at := make(map[int]time.Duration, len(idx))
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				out := make([]time.Duration, 0, len(at))
				for _, d := range at {
					out = append(out, d)
				}
				slices.Sort(out)
				result <- out
				return
			case <-tick.C:
			}
			reqs, now := farm.Requests(), time.Since(t0)
			for _, i := range idx {
				if _, ok := at[i]; !ok && reqs[i]-req0[i] >= nth {
					at[i] = now
				}
			}
		}
	}()
	return func() []time.Duration {
		close(stop)
		return <-result
	}
}

// recovery ends the outage of the backends at indexes idx with heal, waits
// until they are published ready again, and records in res how long each
// took from heal's call to its first probe at the farm and to being
// published ready.
func recovery(farm *testnet.Farm, sw *sliceWatch, p *process, idx []int, res *outageResult, heal func() error) error {
	req0 := farm.Requests()
	t0 := time.Now()
	if err := heal(); err != nil {
		return err
	}
	first := nthRequest(farm, idx, req0, t0, 1)
	addrs := addrsOf(farm.Addrs, idx)
	var err error
	res.notBack, err = sw.waitReady(p, addrs, probeBackTimeout)
	res.probedBack, res.back = first(), sw.inSince(addrs, t0)
	return err
}

// sliceWatch follows every version of the EndpointSlices in a namespace
// through a watch from a list's resourceVersion, and keeps for each address
// how many slices publish it ready and when it last stopped being
// published ready.
type sliceWatch struct {
	mu      sync.Mutex
	slices  map[string]map[netip.Addr]bool // by slice name: address to ready
	readyIn map[netip.Addr]int             // slices publishing the address ready
	outAt   map[netip.Addr]time.Time       // when it last left every slice's ready set
	trigAt  map[netip.Addr]time.Time       // the last-change-trigger-time of the version that took it out
	inAt    map[netip.Addr]time.Time       // when it last entered one
	nOut    int                            // times an address left
	changed chan struct{}                  // closed at every change, then replaced
	err     error
}

func watchSlices(ctx context.Context, cs kubernetes.Interface, ns string) (*sliceWatch, error) {
	sw := &sliceWatch{
		slices:  map[string]map[netip.Addr]bool{},
		readyIn: map[netip.Addr]int{},
		outAt:   map[netip.Addr]time.Time{},
		trigAt:  map[netip.Addr]time.Time{},
		inAt:    map[netip.Addr]time.Time{},
		changed: make(chan struct{}),
	}
	rv, err := sw.relist(ctx, cs, ns)
	if err != nil {
		return nil, err
	}
	go func() {
		for ctx.Err() == nil {
			_ = sw.follow(ctx, cs, ns, rv) // that it ended is what counts, not why
			if ctx.Err() != nil {
				return
			}
			// The watch ended (it expires, or its version is too old):
			// list again and go on from there.
			var err error
			if rv, err = sw.relist(ctx, cs, ns); err != nil {
				sw.mu.Lock()
				sw.err = err
				sw.mu.Unlock()
				time.Sleep(time.Second)
			}
		}
	}()
	return sw, nil
}

// relist replaces the state with a list's and returns its resourceVersion.
func (sw *sliceWatch) relist(ctx context.Context, cs kubernetes.Interface, ns string) (string, error) {
	list, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	now := time.Now()
	seen := map[string]bool{}
	for i := range list.Items {
		seen[list.Items[i].Name] = true
		sw.apply(list.Items[i].Name, &list.Items[i], now)
	}
	sw.mu.Lock()
	var gone []string
	for name := range sw.slices {
		if !seen[name] {
			gone = append(gone, name)
		}
	}
	sw.mu.Unlock()
	for _, name := range gone {
		sw.apply(name, nil, now)
	}
	return list.ResourceVersion, nil
}

// follow applies the events of a watch from rv until it ends.
func (sw *sliceWatch) follow(ctx context.Context, cs kubernetes.Interface, ns, rv string) error {
	w, err := cs.DiscoveryV1().EndpointSlices(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
	if err != nil {
		return err
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		now := time.Now()
		s, ok := ev.Object.(*discoveryv1.EndpointSlice)
		switch {
		case ev.Type == watch.Error:
			return fmt.Errorf("watch: %v", ev.Object)
		case !ok:
		case ev.Type == watch.Added || ev.Type == watch.Modified:
			sw.apply(s.Name, s, now)
		case ev.Type == watch.Deleted:
			sw.apply(s.Name, nil, now)
		}
	}
	return errors.New("watch closed")
}

// apply takes in slice name's new version (nil: deleted), seen at now.
func (sw *sliceWatch) apply(name string, s *discoveryv1.EndpointSlice, now time.Time) {
	next := map[netip.Addr]bool{}
	var trig time.Time
	if s != nil {
		trig, _ = time.Parse(time.RFC3339Nano, s.Annotations[corev1.EndpointsLastChangeTriggerTime])
		for _, ep := range s.Endpoints {
			for _, a := range ep.Addresses {
				if addr, err := netip.ParseAddr(a); err == nil {
					next[addr] = ep.Conditions.Ready == nil || *ep.Conditions.Ready
				}
			}
		}
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	prev := sw.slices[name]
	for a, r := range prev {
		if r {
			sw.readyIn[a]--
		}
	}
	for a, r := range next {
		if r {
			if sw.readyIn[a]++; sw.readyIn[a] == 1 && !prev[a] {
				sw.inAt[a] = now
			}
		}
	}
	for a, r := range prev {
		if r && sw.readyIn[a] == 0 {
			sw.outAt[a] = now
			sw.trigAt[a] = trig
			sw.nOut++
		}
	}
	if s == nil {
		delete(sw.slices, name)
	} else {
		sw.slices[name] = next
	}
	close(sw.changed)
	sw.changed = make(chan struct{})
}

// triggers returns, for those of addrs out since since, the times from
// since to the trigger time of the slice version that took each out, and
// from there to this watch seeing it, each sorted; addresses whose version
// had no trigger time are left out.
func (sw *sliceWatch) triggers(addrs []netip.Addr, since time.Time) (triggered, published []time.Duration) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for _, a := range addrs {
		out, ok := sw.outAt[a]
		trig := sw.trigAt[a]
		if !ok || sw.readyIn[a] > 0 || out.Before(since) || trig.IsZero() {
			continue
		}
		triggered = append(triggered, trig.Sub(since))
		published = append(published, out.Sub(trig))
	}
	slices.Sort(triggered)
	slices.Sort(published)
	return triggered, published
}

// leftSince counts those of addrs that left the published ready
// endpoints after since.
func (sw *sliceWatch) leftSince(addrs []netip.Addr, since time.Time) int {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	n := 0
	for _, a := range addrs {
		if t, ok := sw.outAt[a]; ok && !t.Before(since) {
			n++
		}
	}
	return n
}

// outs is how many times an address has left the published ready
// endpoints.
func (sw *sliceWatch) outs() int {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.nOut
}

func (sw *sliceWatch) ready(a netip.Addr) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.readyIn[a] > 0
}

// waitReady waits until every one of addrs is published ready, or timeout
// passes, and returns how many are not; an error only when the operator
// exited.
func (sw *sliceWatch) waitReady(p *process, addrs []netip.Addr, timeout time.Duration) (int, error) {
	deadline := time.After(timeout)
	for {
		sw.mu.Lock()
		changed, notReady := sw.changed, 0
		for _, a := range addrs {
			if sw.readyIn[a] == 0 {
				notReady++
			}
		}
		watchErr := sw.err
		sw.mu.Unlock()
		if notReady == 0 {
			return 0, nil
		}
		if err := p.Alive(); err != nil {
			return notReady, err
		}
		select {
		case <-changed:
		case <-time.After(time.Second):
		case <-deadline:
			if watchErr != nil {
				fmt.Fprintf(os.Stderr, "probe: the EndpointSlice watch: %v\n", watchErr)
			}
			return notReady, nil
		}
	}
}

// inSince returns, for those of addrs published ready now and since since,
// after how long from since they entered, sorted.
func (sw *sliceWatch) inSince(addrs []netip.Addr, since time.Time) []time.Duration {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	var out []time.Duration
	for _, a := range addrs {
		if t, ok := sw.inAt[a]; ok && sw.readyIn[a] > 0 && !t.Before(since) {
			out = append(out, t.Sub(since))
		}
	}
	slices.Sort(out)
	return out
}

// waitOut waits until every one of addrs has left the published ready
// endpoints after since, or timeout passes, and returns the times out,
// sorted.
func (sw *sliceWatch) waitOut(addrs []netip.Addr, since time.Time, timeout time.Duration) []time.Duration {
	deadline := time.After(timeout)
	for {
		sw.mu.Lock()
		changed := sw.changed
		var out []time.Duration
		for _, a := range addrs {
			if t, ok := sw.outAt[a]; ok && sw.readyIn[a] == 0 && !t.Before(since) {
				out = append(out, t.Sub(since))
			}
		}
		sw.mu.Unlock()
		if len(out) == len(addrs) {
			slices.Sort(out)
			return out
		}
		select {
		case <-changed:
		case <-deadline:
			slices.Sort(out)
			return out
		}
	}
}

// operatorFlags says how the probe part runs the operator.
func operatorFlags() string {
	if args := os.Getenv("BENCH_OPERATOR_ARGS"); args != "" {
		return "its default flags but `" + args + "` (its DNS server off)"
	}
	return "its default flags (its DNS server off)"
}

func probeTable(runs []probeRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Probing: a farm of HTTP backends\n\n")
	fmt.Fprintf(&b, "ClusterIP intents of %d static backends each, HTTP probe of /healthz every %s (timeout %s, unhealthyThreshold %d); "+
		"the backends are one network namespace with an address each, served by one listener in the benchmark's process. "+
		"The operator runs with "+operatorFlags()+". Probes are counted at the backends over %s of steady state, "+
		"CPU time from /proc (utime+stime) over the same window, next to a minimal Go prober (net/http, a fresh connection a probe, "+
		"one goroutine an address on a %s ticker at a random phase; its own process) run on the same addresses before the operator starts, "+
		"its rate in parentheses; *saturated* marks a rate under 95%% of the wanted one, and the ratio compares like with like only where neither is. "+
		"Then %d backends of every intent vanish at once (connects time out) and are restored, and %d others answer 503 and recover: "+
		"p50 / max from the outage's start to each address no longer published ready, from a watch of every EndpointSlice version, "+
		"and the other backends' probe rate in the %s after the start against the steady one. RSS at the end of each run; "+
		"each run adds intents to the one before. *busy machine* marks a run where processes other than the benchmark's took more than %.1f CPUs "+
		"in a steady window: its figures are not the operator's alone.\n\n",
		probeBackendsPerIntent, probePeriod, probeTimeout, probeThreshold, probeWindow, probePeriod,
		probeVictims, probeVictims, probeAfterDeath, probeBusyOthers)
	fmt.Fprintf(&b, "| backends | probes/s (wanted) | CPU µs/probe operator | minimal | ratio | blackhole p50 / max | healthy rate during blackhole | 503 p50 / max | healthy rate during 503 | RSS |\n")
	fmt.Fprintf(&b, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		wanted := float64(r.backends) / probePeriod.Seconds()
		mark := func(rate float64) string {
			if rate < 0.95*wanted {
				return " *saturated*"
			}
			return ""
		}
		op, mini := r.operator.perProbe(r.operator.cpu), r.minimal.perProbe(r.minimal.cpu)
		ratio := "-"
		if mini > 0 {
			ratio = fmt.Sprintf("%.2fx", us(op)/us(mini))
		}
		busy := ""
		if max(r.operator.others, r.minimal.others).Seconds() > probeBusyOthers*probeWindow.Seconds() {
			busy = " *busy machine*"
		}
		fmt.Fprintf(&b, "| %d%s | %.0f (%.0f)%s | %.0f | %.0f (%.0f/s%s) | %s | %s | %.0f%% | %s | %.0f%% | %s |\n",
			r.backends, busy, r.operator.rate(), wanted, mark(r.operator.rate()), us(op), us(mini), r.minimal.rate(), mark(r.minimal.rate()), ratio,
			r.blackhole.latencies(), 100*r.blackhole.healthyRate, r.fail.latencies(), 100*r.fail.healthyRate, mib(r.rss))
	}
	b.WriteString("\n")
	cpus := func(d time.Duration) float64 { return d.Seconds() / probeWindow.Seconds() }
	for _, r := range runs {
		fmt.Fprintf(&b, "- %d backends\n", r.backends)
		machine := func(m measured) string {
			return fmt.Sprintf("the machine %.0f%% idle; CPUs used by the prober %.2f, the farm's server (the benchmark's process) %.2f (%.0f µs a probe), "+
				"the control plane %.2f, the kernel outside processes (interrupts, its threads) %.2f, other processes %.2f",
				100*m.idle, cpus(m.cpu), cpus(m.farm), us(m.perProbe(m.farm)), cpus(m.children), cpus(m.kernel), cpus(m.others))
		}
		fmt.Fprintf(&b, "  - the minimal prober's window: %s.\n", machine(r.minimal))
		steady := []string{machine(r.operator)}
		if r.notReady > 0 {
			steady = append(steady, fmt.Sprintf("%d backends were not in traffic %s after their intents were made", r.notReady, probeReadyTimeout))
		}
		if r.flaps > 0 {
			steady = append(steady, fmt.Sprintf("backends left traffic %d times though every one answered", r.flaps))
		}
		fmt.Fprintf(&b, "  - the operator's window: %s.\n", strings.Join(steady, "; "))
		for _, o := range []struct {
			what string
			res  outageResult
		}{{"blackhole", r.blackhole}, {"503", r.fail}} {
			var parts []string
			if o.what == "blackhole" {
				parts = append(parts, fmt.Sprintf("the farm removed the %d addresses in %s (counted in the times)", o.res.victims, o.res.start.Round(time.Millisecond)))
			}
			if o.res.notReadyBefore > 0 {
				parts = append(parts, fmt.Sprintf("%d of the %d victims were out of traffic already and are not counted", o.res.notReadyBefore, o.res.victims))
			}
			if in := o.res.victims - o.res.notReadyBefore - len(o.res.out); in > 0 {
				parts = append(parts, fmt.Sprintf("%d of %d were still in traffic after %s", in, o.res.victims-o.res.notReadyBefore, probeOutageTimeout))
			}
			if len(o.res.decided) > 0 {
				parts = append(parts, fmt.Sprintf("the probe that decides (the %s failing one) reached the farm at p50 %s / max %s",
					ordinal(probeThreshold), seconds(pct(o.res.decided, 0.5)), seconds(pct(o.res.decided, 1))))
			}
			if len(o.res.triggered) > 0 {
				parts = append(parts, fmt.Sprintf("decided (the slice's last-change-trigger-time) at p50 %s / max %s, seen by the watch p50 %s / max %s after that",
					seconds(pct(o.res.triggered, 0.5)), seconds(pct(o.res.triggered, 1)), seconds(pct(o.res.published, 0.5)), seconds(pct(o.res.published, 1))))
			}
			parts = append(parts, fmt.Sprintf("%d of the backends that kept answering published not ready after the start", o.res.collateral))
			parts = append(parts, fmt.Sprintf("meanwhile %d failed reconciles, and on average a probe started %s after it fell due, a reconcile waited %s in its queue and took %s, a slice update %s (kube-apiserver's own time for it %s)",
				o.res.reconcileErrors, ms(o.res.stages.probeStart), ms(o.res.stages.queued), ms(o.res.stages.reconcile), ms(o.res.stages.sliceWrite), ms(o.res.stages.apiSliceWrite)))
			if len(o.res.back) > 0 {
				back := fmt.Sprintf("back in traffic after its end at p50 %s / max %s", seconds(pct(o.res.back, 0.5)), seconds(pct(o.res.back, 1)))
				if len(o.res.probedBack) > 0 {
					back += fmt.Sprintf(" (the first probe at p50 %s / max %s)", seconds(pct(o.res.probedBack, 0.5)), seconds(pct(o.res.probedBack, 1)))
				}
				parts = append(parts, back)
			}
			if o.res.notBack > 0 {
				parts = append(parts, fmt.Sprintf("%d still out of traffic %s after its end", o.res.notBack, probeBackTimeout))
			}
			fmt.Fprintf(&b, "  - %s: %s.\n", o.what, strings.Join(parts, "; "))
		}
	}
	b.WriteString("\n")
	return b.String()
}

// latencies is "p50 / max" of the times out, with the victims still in
// traffic at the timeout counted as later than it.
func (o outageResult) latencies() string {
	total := o.victims - o.notReadyBefore
	if total <= 0 {
		return "-"
	}
	at := func(i int) string {
		if i < len(o.out) {
			return seconds(o.out[i])
		}
		return "> " + seconds(probeOutageTimeout)
	}
	return at(total/2) + " / " + at(total-1)
}

// us is d in microseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

// stages are readings of the histograms of where an intent's reconcile
// spends its time: waiting in its queue, at work, and writing slices; of
// how late the probes start after they fall due; and of kube-apiserver's
// own time for each slice update, from when it takes the request in to
// its reply (apiserver_request_duration_seconds). The
// rest of a slice update as the operator times it is the way there and
// back: both processes' wait for a CPU, the client, the connection.
type stages struct {
	queued, reconcile, sliceWrite, probeStart, apiSliceWrite time.Duration
	readings                                                 [5]histogramReading
}

// apiServerMetrics reads kube-apiserver's /metrics; nil: readStages leaves
// its reading out.
var apiServerMetrics func() ([]byte, error)

func readStages(p *process) (stages, error) {
	var s stages
	page, err := metricsPage(p)
	if err != nil {
		return s, err
	}
	for i, h := range []struct {
		name   string
		labels []string
	}{
		{"workqueue_queue_duration_seconds", []string{`name="networkintent"`}},
		{"controller_runtime_reconcile_time_seconds", []string{`controller="networkintent"`}},
		{"netintent_endpointslice_write_duration_seconds", []string{`verb="update"`}},
		{"netintent_probe_start_delay_seconds", nil},
	} {
		if s.readings[i], err = pageHistogram(page, h.name, h.labels...); err != nil {
			return s, err
		}
	}
	if apiServerMetrics == nil {
		return s, nil
	}
	if page, err = apiServerMetrics(); err != nil {
		return s, err
	}
	s.readings[4], err = pageHistogram(page, "apiserver_request_duration_seconds", `resource="endpointslices"`, `verb="PUT"`)
	return s, err
}

// since is the mean of each stage between two readings.
func (s stages) since(before stages) stages {
	s.queued = s.readings[0].meanSince(before.readings[0])
	s.reconcile = s.readings[1].meanSince(before.readings[1])
	s.sliceWrite = s.readings[2].meanSince(before.readings[2])
	s.probeStart = s.readings[3].meanSince(before.readings[3])
	s.apiSliceWrite = s.readings[4].meanSince(before.readings[4])
	return s
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// pct is the q-quantile of sorted ds (not empty): 0.5 the median, 1 the
// max.
func pct(ds []time.Duration, q float64) time.Duration {
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "first"
	case 2:
		return "second"
	case 3:
		return "third"
	}
	return fmt.Sprintf("%dth", n)
}

func seconds(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
