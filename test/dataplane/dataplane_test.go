package dataplane

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

func TestMain(m *testing.M) {
	testnet.Main(m)
}

// The probe settings of every intent here: a dead backend is out after two
// failed probes a second apart.
const (
	probePeriod  = time.Second
	probeTimeout = 500 * time.Millisecond
	// proxySyncSlack bounds how long kube-proxy takes to program a slice
	// change, on a loaded machine.
	proxySyncSlack     = 3 * time.Second
	unhealthyThreshold = 2
	healthyThreshold   = 1
)

// The virtual ranges the node routes into its sink: the local control
// plane's Service range (10.0.0.0/24) and the AddressPool of these tests.
var (
	serviceRange  = netip.MustParsePrefix("10.0.0.0/16")
	poolRange     = netip.MustParsePrefix("10.249.0.0/24")
	serviceRange6 = netip.MustParsePrefix("fd00:10:96::/108")
	poolRange6    = netip.MustParsePrefix("fd00:249::/120")
)

const (
	poolName = "dataplane"
	// streamInterval paces the steady stream of requests.
	streamInterval = 10 * time.Millisecond
	// settled is how many requests in a row must go right before a stream
	// counts as settled after a change.
	settled = 100
)

// TestDataplane sends traffic through kube-proxy, in nftables and then in
// iptables mode, to backends whose health the operator judges, and logs for
// each mode how many requests failed when a backend died and for how long.
func TestDataplane(t *testing.T) {
	testnet.SkipUnlessRoot(t) // its node and backends are network namespaces
	began := time.Now()
	c := startCluster(t)
	pool := &v1alpha1.AddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: poolName},
		Spec:       v1alpha1.AddressPoolSpec{Addresses: []string{"10.249.0.10-10.249.0.19", "fd00:249::10-fd00:249::19"}},
	}
	if err := c.admin.Create(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, mode := range []testnet.ProxyMode{testnet.ProxyModeNFTables, testnet.ProxyModeIPTables} {
		var node *testnet.Node
		t.Run(string(mode), func(t *testing.T) {
			testMode(t, c, mode, &node, &notes)
		})
		// The node's cleanup has run: nothing of it may be left.
		if node != nil {
			if left := node.Remains(); len(left) > 0 {
				t.Errorf("%s node not removed: %v", mode, left)
			}
		}
	}
	rootUntouched(t)
	t.Logf("probe settings: period %s, timeout %s, unhealthyThreshold %d, healthyThreshold %d; one request every %s from inside the node",
		probePeriod, probeTimeout, unhealthyThreshold, healthyThreshold, streamInterval)
	for _, n := range notes {
		t.Log(n)
	}
	t.Logf("dataplane suite took %s", time.Since(began).Round(time.Millisecond))
}

// testMode runs the walk on a node whose kube-proxy runs in mode. It sets
// *nodeOut to the node (removed when t ends) and adds the figures for the
// summary to *notes.
func testMode(t *testing.T, c *cluster, mode testnet.ProxyMode, nodeOut **testnet.Node, notes *[]string) {
	began := time.Now()
	node := testnet.NewNode(t, testnet.NodeConfig{
		KubeProxy:    c.kubeProxy,
		Mode:         mode,
		Kubeconfig:   c.proxyKubeconfig,
		Client:       c.admin,
		Backends:     5,
		SinkPrefixes: []netip.Prefix{serviceRange, poolRange, serviceRange6, poolRange6},
	})
	*nodeOut = node
	t.Cleanup(func() {
		out := node.ProxyOutput()
		// system:kube-proxy's bootstrap role must be all it needs.
		if strings.Contains(out, "forbidden") {
			t.Errorf("kube-proxy was refused by the API server")
		}
		if t.Failed() {
			t.Logf("kube-proxy output:\n%s", out)
		}
	})
	ns := "dp-" + string(mode)
	// Before the node goes (cleanups run last first): the intents go and
	// the operator stops probing their backends, whose addresses are routed
	// nowhere once the node is removed.
	t.Cleanup(func() { removeIntents(t, c, ns) })
	t.Logf("node %s up in %s", node, time.Since(began).Round(time.Millisecond))
	for _, h := range node.Backends {
		if err := h.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	b := node.Backends
	w := &walk{t: t, c: c, node: node, ns: ns, hc: node.HTTPClient(time.Second)}
	if err := c.admin.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}); err != nil {
		t.Fatal(err)
	}
	step(t, "ClusterIP, NodePort and LoadBalancer address reach every healthy backend", func(t *testing.T) {
		w.t = t
		w.exposeStatic(b[0], b[1], b[2])
	})
	step(t, "a backend dies under a steady stream of requests", func(t *testing.T) {
		w.t = t
		*notes = append(*notes, string(mode)+": "+w.backendDies(b[2], b[0], b[1]))
	})
	step(t, "a pod turns not ready under a steady stream of requests", func(t *testing.T) {
		w.t = t
		*notes = append(*notes, string(mode)+": "+w.podTurnsNotReady(b[3], b[4]))
	})
	step(t, "below the floor every backend stays in traffic", func(t *testing.T) {
		w.t = t
		w.belowFloor(b[2], b[0], b[1], b[2])
	})
	step(t, "ExternalName clients reach the active target's backend", func(t *testing.T) {
		w.t = t
		w.externalNameReach(b[3], b[4])
	})
	step(t, "zone hints keep traffic in the node's zone until its backend dies", func(t *testing.T) {
		w.t = t
		*notes = append(*notes, string(mode)+": "+w.zoneHints(b[0], b[1]))
	})
	step(t, "dual-stack: both families reach every backend, and a dead IPv6 listener leaves IPv4 serving", func(t *testing.T) {
		w.t = t
		w.dualStack(b[3], b[4])
	})
	t.Logf("%s walk took %s", mode, time.Since(began).Round(time.Millisecond))
}

// step runs one step of a walk and stops the walk if it failed.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

// walk is the state one mode's steps share.
type walk struct {
	t    *testing.T
	c    *cluster
	node *testnet.Node
	ns   string
	hc   *http.Client

	// Addresses of the static intent's Service, host:port.
	clusterIP, nodePort, lbAddr string
}

const staticIntent = "web"

func healthCheck() *v1alpha1.HealthCheck {
	return &v1alpha1.HealthCheck{
		ProbeHandler:       v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{Path: "/healthz", Port: ptr.To[int32](testnet.HTTPPort)}},
		Period:             &metav1.Duration{Duration: probePeriod},
		Timeout:            &metav1.Duration{Duration: probeTimeout},
		UnhealthyThreshold: ptr.To[int32](unhealthyThreshold),
		HealthyThreshold:   ptr.To[int32](healthyThreshold),
	}
}

// exposeStatic makes a LoadBalancer intent over static backends (a
// LoadBalancer Service also has a ClusterIP and a NodePort) and checks that
// each of its three addresses reaches every backend.
func (w *walk) exposeStatic(backends ...*testnet.Host) {
	t := w.t
	hc := healthCheck()
	hc.MinHealthyPercent = ptr.To[int32](50)
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Name: staticIntent, Namespace: w.ns},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure:     v1alpha1.ExposureLoadBalancer,
			Ports:        []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(testnet.HTTPPort))}},
			LoadBalancer: &v1alpha1.LoadBalancerSpec{Class: v1alpha1.AddressPoolClass, Pool: poolName},
			HealthCheck:  hc,
		},
	}
	for _, h := range backends {
		in.Spec.Backends = append(in.Spec.Backends, v1alpha1.Backend{Address: h.IP.String()})
	}
	if err := w.c.admin.Create(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	var svc corev1.Service
	testenv.Await(t, "the Service has a ClusterIP, a NodePort and a LoadBalancer address", 30*time.Second, func() error {
		if err := w.c.admin.Get(t.Context(), client.ObjectKey{Namespace: w.ns, Name: staticIntent}, &svc); err != nil {
			return err
		}
		if svc.Spec.ClusterIP == "" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].NodePort == 0 || len(svc.Status.LoadBalancer.Ingress) == 0 {
			return fmt.Errorf("service spec %+v status %+v", svc.Spec, svc.Status)
		}
		return nil
	})
	port := strconv.Itoa(int(svc.Spec.Ports[0].Port))
	w.clusterIP = net.JoinHostPort(svc.Spec.ClusterIP, port)
	w.nodePort = net.JoinHostPort(w.node.IP.String(), strconv.Itoa(int(svc.Spec.Ports[0].NodePort)))
	w.lbAddr = net.JoinHostPort(svc.Status.LoadBalancer.Ingress[0].IP, port)
	w.waitReady(staticIntent, backends, nil)
	ips := addrs(backends...)
	for _, addr := range []string{w.clusterIP, w.nodePort, w.lbAddr} {
		w.waitAnswers(addr)
		reachAll(t, w.hc, addr, ips...)
	}
	// An address of the sink's ranges that kube-proxy did not take goes
	// nowhere.
	if from, err := whoami(w.hc, unusedVirtual); err == nil {
		t.Errorf("%s, which no Service has, answered as %s", unusedVirtual, from)
	}
}

// unusedVirtual is routed into the node's sink and belongs to no Service:
// outside the AddressPool, inside its sink range.
const unusedVirtual = "10.249.0.200:80"

// waitAnswers waits until addr answers at all: kube-proxy syncs the
// Service a moment after the operator writes it.
func (w *walk) waitAnswers(addr string) {
	testenv.Await(w.t, addr+" answers through kube-proxy", 30*time.Second, func() error {
		_, err := whoami(w.hc, addr)
		return err
	})
}

// backendDies stops dead while a stream of requests runs against the
// ClusterIP, and returns the figures.
func (w *walk) backendDies(dead *testnet.Host, alive ...*testnet.Host) string {
	t := w.t
	s := startStream(w.hc, w.clusterIP, streamInterval)
	s.waitTail(t, 10*time.Second, 50, "requests before the death", func(r request) bool { return r.err == nil })
	// The death is when the server is told to stop: from then on its
	// requests may fail.
	died := time.Now()
	if err := dead.Stop(); err != nil {
		t.Fatal(err)
	}
	w.waitReady(staticIntent, alive, []*testnet.Host{dead})
	out := time.Since(died)
	s.waitTail(t, 30*time.Second, settled, "requests succeeding again", func(r request) bool { return r.err == nil })
	reqs := s.finish()
	w.waitBalancedOver(staticIntent, alive...)
	if err := before(reqs, died, failed); err != nil {
		t.Errorf("a request failed before the backend died: %v", err)
	}
	total, nfailed, last := impact(reqs, died, failed)
	note := fmt.Sprintf("backend died: %d/%d requests failed, last failure %.2fs after the death (endpoint not ready after %.2fs)",
		nfailed, total, last.Seconds(), out.Seconds())
	t.Log(note)
	// Out of traffic within the probes' verdict and a kube-proxy sync.
	if limit := probePeriod*unhealthyThreshold*11/10 + probeTimeout + proxySyncSlack; last > limit {
		t.Errorf("requests failed until %.2fs after the death, more than %v", last.Seconds(), limit)
	}
	w.afterwards(w.clusterIP, alive...)
	return note
}

// afterwards checks that every request to addr succeeds and reaches only
// want.
func (w *walk) afterwards(addr string, want ...*testnet.Host) {
	t := w.t
	ips := addrs(want...)
	for i := range 50 {
		from, err := whoami(w.hc, addr)
		if err != nil {
			t.Fatalf("request %d to %s after the change: %v", i+1, addr, err)
		}
		if !slices.Contains(ips, from) {
			t.Fatalf("request %d to %s after the change answered by %s, want one of %v", i+1, addr, from, ips)
		}
	}
}

const podIntent = "pods"

// podTurnsNotReady backs an intent with Pod objects at the addresses of
// keep and drop, then marks drop's pod not ready (status subresource, as a
// kubelet would) under a stream of requests, and returns the figures.
func (w *walk) podTurnsNotReady(keep, drop *testnet.Host) string {
	t := w.t
	ctx := t.Context()
	pods := map[*testnet.Host]*corev1.Pod{}
	for i, h := range []*testnet.Host{keep, drop} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "backend-" + strconv.Itoa(i), Namespace: w.ns, Labels: map[string]string{"app": podIntent}},
			Spec: corev1.PodSpec{
				NodeName: w.node.Name,
				Containers: []corev1.Container{{
					Name:  "backend",
					Image: "backend:test",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: testnet.HTTPPort}},
				}},
			},
		}
		if err := w.c.admin.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		pod.Status = corev1.PodStatus{
			Phase:  corev1.PodRunning,
			PodIP:  h.IP.String(),
			PodIPs: []corev1.PodIP{{IP: h.IP.String()}},
		}
		setPodReady(pod, true)
		if err := w.c.admin.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
		pods[h] = pod
	}
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Name: podIntent, Namespace: w.ns},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure:    v1alpha1.ExposureClusterIP,
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": podIntent}},
			Ports:       []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromString("http"))}},
			HealthCheck: healthCheck(),
		},
	}
	if err := w.c.admin.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	var svc corev1.Service
	testenv.Await(t, "the pods' Service has a ClusterIP", 30*time.Second, func() error {
		if err := w.c.admin.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: podIntent}, &svc); err != nil {
			return err
		}
		if svc.Spec.ClusterIP == "" {
			return fmt.Errorf("no ClusterIP yet")
		}
		return nil
	})
	addr := net.JoinHostPort(svc.Spec.ClusterIP, "80")
	w.waitReady(podIntent, []*testnet.Host{keep, drop}, nil)
	w.waitAnswers(addr)
	reachAll(t, w.hc, addr, keep.IP.String(), drop.IP.String())

	s := startStream(w.hc, addr, streamInterval)
	s.waitTail(t, 10*time.Second, 50, "requests before the change", func(r request) bool { return r.err == nil })
	pod := pods[drop]
	setPodReady(pod, false)
	changed := time.Now()
	if err := w.c.admin.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	w.waitReady(podIntent, []*testnet.Host{keep}, []*testnet.Host{drop})
	out := time.Since(changed)
	fromDropped := func(r request) bool { return r.err == nil && r.from == drop.IP.String() }
	s.waitTail(t, 30*time.Second, settled, "requests reaching only the ready pod", func(r request) bool {
		return r.err == nil && !fromDropped(r)
	})
	reqs := s.finish()
	if err := before(reqs, changed, failed); err != nil {
		t.Errorf("a request failed before the change: %v", err)
	}
	if _, nfailed, _ := impact(reqs, changed, failed); nfailed > 0 {
		t.Errorf("%d requests failed although both backends kept serving", nfailed)
	}
	total, late, last := impact(reqs, changed, fromDropped)
	note := fmt.Sprintf("pod turned not ready: %d/%d requests still reached it, the last %.2fs after the change (endpoint not ready after %.2fs)",
		late, total, last.Seconds(), out.Seconds())
	t.Log(note)
	if last > proxySyncSlack {
		t.Errorf("requests reached the not-ready pod until %.2fs after the change, more than %v", last.Seconds(), proxySyncSlack)
	}
	w.afterwards(addr, keep)
	return note
}

func setPodReady(pod *corev1.Pod, ready bool) {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	now := metav1.Now()
	pod.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReady, Status: status, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: status, LastTransitionTime: now},
	}
}

// belowFloor starts restart again, waits until it is back in traffic, then
// makes every backend fail its health check while it still serves: with
// fewer healthy than minHealthyPercent the operator keeps them all in
// traffic (fail open), and kube-proxy goes on sending requests to each.
// Then every backend dies: still below the floor, kube-proxy keeps them all.
func (w *walk) belowFloor(restart *testnet.Host, all ...*testnet.Host) {
	t := w.t
	if err := restart.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.waitReady(staticIntent, all, nil)
	w.waitCondition(staticIntent, "AllHealthy")
	for _, h := range all {
		if err := h.SetHealthy(false); err != nil {
			t.Fatal(err)
		}
	}
	w.waitBelowFloor(len(all))
	w.waitReady(staticIntent, all, nil)
	// kube-proxy may still hold the last change before the floor (a
	// backend out) until its next sync.
	testenv.Await(t, "traffic reaches every backend below the floor", 10*time.Second, func() error {
		return tryReachAll(t, w.hc, w.clusterIP, addrs(all...)...)
	})

	for _, h := range all {
		if err := h.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	w.waitBelowFloor(len(all))
	w.waitReady(staticIntent, all, nil)
	w.waitBalancedOver(staticIntent, all...)
	for _, h := range all {
		if err := h.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	w.waitCondition(staticIntent, "AllHealthy")
}

// waitBalancedOver waits until kube-proxy's rules balance the intent's
// http port over exactly want.
func (w *walk) waitBalancedOver(intent string, want ...*testnet.Host) {
	var got []string
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got, err = w.balancedOver(intent, "http"); err == nil && sameSet(got, addrs(want...)) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	rules, _ := w.node.Rules()
	w.t.Fatalf("kube-proxy balances %s over %v (%v), want %v; rules:\n%s", intent, got, err, addrs(want...), rules)
}

// waitBelowFloor waits until the static intent says BelowHealthyFloor with
// none of its total backends healthy.
func (w *walk) waitBelowFloor(total int) {
	t := w.t
	testenv.Await(t, "no backend healthy, below the floor", 30*time.Second, func() error {
		var in v1alpha1.NetworkIntent
		if err := w.c.admin.Get(t.Context(), client.ObjectKey{Namespace: w.ns, Name: staticIntent}, &in); err != nil {
			return err
		}
		c := meta.FindStatusCondition(in.Status.Conditions, "EndpointsHealthy")
		if e := in.Status.Endpoints; c == nil || c.Reason != "BelowHealthyFloor" || e == nil || e.Healthy != 0 || int(e.Total) != total {
			return fmt.Errorf("EndpointsHealthy %+v, status.endpoints %+v; want BelowHealthyFloor, 0 healthy of %d", c, e, total)
		}
		return nil
	})
}

// The rules by which kube-proxy picks an endpoint of a Service port: in
// nftables mode the Service's chain (service-<hash>-<ns>/<svc>/tcp/<port>)
// DNATs to its endpoints' addresses; in iptables mode the KUBE-SVC chain's
// jumps carry the comment "<ns>/<svc>:<port> -> <ip>:<port>".
var (
	nftServiceChain = regexp.MustCompile(`^\s*chain service-[0-9A-Z]+-([^/]+)/([^/]+)/tcp/(\S+) \{`)
	ipv4            = regexp.MustCompile(`\b\d{1,3}(?:\.\d{1,3}){3}\b`)
	iptEndpoint     = regexp.MustCompile(`^-A KUBE-SVC-\S+ .*--comment "?([^/]+)/([^:]+):(\S+) -> ([0-9.]+):`)
)

// balancedOver returns the endpoint addresses the node's kube-proxy rules
// balance the Service port over.
func (w *walk) balancedOver(svc, port string) ([]string, error) {
	rules, err := w.node.Rules()
	if err != nil {
		return nil, err
	}
	var out []string
	add := func(ip string) {
		if !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	inChain := false
	for line := range strings.Lines(rules) {
		if w.node.Mode == testnet.ProxyModeIPTables {
			if m := iptEndpoint.FindStringSubmatch(line); m != nil && m[1] == w.ns && m[2] == svc && m[3] == port {
				add(m[4])
			}
			continue
		}
		if m := nftServiceChain.FindStringSubmatch(line); m != nil {
			inChain = m[1] == w.ns && m[2] == svc && m[3] == port
			continue
		}
		if inChain && strings.TrimSpace(line) == "}" {
			inChain = false
		}
		if inChain {
			for _, ip := range ipv4.FindAllString(line, -1) {
				add(ip)
			}
		}
	}
	return out, nil
}

func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool { return !slices.Contains(b, s) })
}

// externalNameReach makes an ExternalName intent over two targets that the
// fake upstream resolves to primary and backup, each probed on /healthz
// through the operator's own DNS upstreams, resolves its name through the
// operator's DNS server, and connects to the answer: the client reaches the
// active (first) target's backend, and the backup's once the primary fails
// its probes.
func (w *walk) externalNameReach(primary, backup *testnet.Host) {
	t := w.t
	suffix := "." + w.ns + ".dataplane.example.com"
	w.c.upstream.Set("primary"+suffix, primary.IP)
	w.c.upstream.Set("backup"+suffix, backup.IP)
	probe := v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{Path: "/healthz", Port: ptr.To[int32](testnet.HTTPPort)}}
	hc := healthCheck()
	hc.ProbeHandler = v1alpha1.ProbeHandler{}
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: w.ns},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure:    v1alpha1.ExposureExternalName,
			HealthCheck: hc,
			ExternalName: &v1alpha1.ExternalNameSpec{Targets: []v1alpha1.ExternalTarget{
				{Host: "primary" + suffix, ProbeHandler: probe},
				{Host: "backup" + suffix, ProbeHandler: probe},
			}},
			DNS: &v1alpha1.DNSSpec{TTL: ptr.To[int32](1)},
		},
	}
	if err := w.c.admin.Create(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	name := "ext." + w.ns + ".svc.cluster.local"
	// The client is in the root namespace, which routes the backends via
	// the node.
	direct := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	reaches := func(target string, want *testnet.Host) func() error {
		return func() error {
			cname, as, err := resolveA(w.c.operator.DNSAddr, name)
			if err != nil {
				return err
			}
			if cname != target+suffix+"." || len(as) != 1 {
				return fmt.Errorf("%s: CNAME %q, A %v; want CNAME %s%s. and its address", name, cname, as, target, suffix)
			}
			from, err := whoami(direct, net.JoinHostPort(as[0], strconv.Itoa(testnet.HTTPPort)))
			if err != nil {
				return err
			}
			if from != want.IP.String() {
				return fmt.Errorf("%s resolved to %s, answered by %s, want %s", name, as[0], from, want.IP)
			}
			return nil
		}
	}
	testenv.Await(t, name+" reaches the primary's backend", 30*time.Second, reaches("primary", primary))

	// The primary fails its health check: the alias moves to the backup.
	if err := primary.SetHealthy(false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = primary.SetHealthy(true) })
	testenv.Await(t, name+" reaches the backup's backend", 30*time.Second, reaches("backup", backup))
}

const zoneIntent = "zoned"

// zoneHints labels the node zone-a and backs a PreferSameZone intent with
// two pods: near's on the node, far's on a Node object of zone-b (Node
// objects alone: an endpoint's nodeName and its Node's label give its
// zone). kube-proxy on the node sends every request to near; when near
// dies the operator withholds the hints and every request goes to far;
// when near is back, so are the hints. It returns the figures.
func (w *walk) zoneHints(near, far *testnet.Host) string {
	t := w.t
	ctx := t.Context()
	farNode := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: w.node.Name + "-zone-b", Labels: map[string]string{corev1.LabelTopologyZone: "zone-b"}}}
	if err := w.c.admin.Create(ctx, farNode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.c.admin.Delete(context.Background(), farNode) })
	w.setNodeZone("zone-a")
	t.Cleanup(func() { w.setNodeZone("") })

	for h, on := range map[*testnet.Host]string{near: w.node.Name, far: farNode.Name} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "zoned-" + strings.ReplaceAll(h.IP.String(), ".", "-"), Namespace: w.ns, Labels: map[string]string{"app": zoneIntent}},
			Spec: corev1.PodSpec{
				NodeName:   on,
				Containers: []corev1.Container{{Name: "backend", Image: "backend:test", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: testnet.HTTPPort}}}},
			},
		}
		if err := w.c.admin.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: h.IP.String(), PodIPs: []corev1.PodIP{{IP: h.IP.String()}}}
		setPodReady(pod, true)
		if err := w.c.admin.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Name: zoneIntent, Namespace: w.ns},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure:            v1alpha1.ExposureClusterIP,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": zoneIntent}},
			Ports:               []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromString("http"))}},
			TrafficDistribution: v1alpha1.TrafficDistributionPreferSameZone,
			HealthCheck:         healthCheck(),
		},
	}
	if err := w.c.admin.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	var svc corev1.Service
	testenv.Await(t, "the zoned Service has a ClusterIP and trafficDistribution", 30*time.Second, func() error {
		if err := w.c.admin.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: zoneIntent}, &svc); err != nil {
			return err
		}
		if svc.Spec.ClusterIP == "" || ptr.Deref(svc.Spec.TrafficDistribution, "") != "PreferSameZone" {
			return fmt.Errorf("clusterIP %q, trafficDistribution %v", svc.Spec.ClusterIP, svc.Spec.TrafficDistribution)
		}
		return nil
	})
	addr := net.JoinHostPort(svc.Spec.ClusterIP, "80")
	w.waitReady(zoneIntent, []*testnet.Host{near, far}, nil)
	w.waitHints(map[string]string{near.IP.String(): "zone-a", far.IP.String(): "zone-b"})
	w.waitBalancedOver(zoneIntent, near)
	inZone := w.countAnswers(addr, near)

	if err := near.Stop(); err != nil {
		t.Fatal(err)
	}
	w.waitReady(zoneIntent, []*testnet.Host{far}, []*testnet.Host{near})
	w.waitHints(map[string]string{near.IP.String(): "", far.IP.String(): ""})
	w.waitBalancedOver(zoneIntent, far)
	fallback := w.countAnswers(addr, far)

	if err := near.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w.waitReady(zoneIntent, []*testnet.Host{near, far}, nil)
	w.waitHints(map[string]string{near.IP.String(): "zone-a", far.IP.String(): "zone-b"})
	w.waitBalancedOver(zoneIntent, near)
	back := w.countAnswers(addr, near)
	note := fmt.Sprintf("zone hints: from the zone-a node, %s; zone-a's backend dead, %s; back, %s", inZone, fallback, back)
	t.Log(note)
	return note
}

// zoneRequests is how many requests countAnswers sends: with two backends
// balanced at random, 20 reaching one alone by chance is one in a million.
const zoneRequests = 20

// countAnswers sends zoneRequests requests, each on a connection of its
// own, to addr; each must succeed and be answered by want. It returns the
// count by backend.
func (w *walk) countAnswers(addr string, want *testnet.Host) string {
	t := w.t
	by := map[string]int{}
	for i := range zoneRequests {
		from, err := whoami(w.hc, addr)
		if err != nil {
			t.Fatalf("request %d to %s: %v", i+1, addr, err)
		}
		by[from]++
	}
	if by[want.IP.String()] != zoneRequests {
		t.Fatalf("%d requests to %s answered by %v, want all by %s", zoneRequests, addr, by, want.IP)
	}
	return fmt.Sprintf("%d/%d requests answered by %s", by[want.IP.String()], zoneRequests, want.IP)
}

// setNodeZone sets the node's topology.kubernetes.io/zone label, or removes
// it for "".
func (w *walk) setNodeZone(zone string) {
	t := w.t
	testenv.Await(t, "the node's zone label is "+zone, 10*time.Second, func() error {
		var node corev1.Node
		if err := w.c.admin.Get(context.Background(), client.ObjectKey{Name: w.node.Name}, &node); err != nil {
			return err
		}
		if zone == "" {
			delete(node.Labels, corev1.LabelTopologyZone)
		} else {
			if node.Labels == nil {
				node.Labels = map[string]string{}
			}
			node.Labels[corev1.LabelTopologyZone] = zone
		}
		return w.c.admin.Update(context.Background(), &node)
	})
}

// waitHints waits until the zoned intent's slices hint each address for
// the zone of want ("" for no hint).
func (w *walk) waitHints(want map[string]string) {
	t := w.t
	testenv.Await(t, "zone hints "+fmt.Sprint(want), 30*time.Second, func() error {
		var slices discoveryv1.EndpointSliceList
		if err := w.c.admin.List(t.Context(), &slices, client.InNamespace(w.ns), client.MatchingLabels{discoveryv1.LabelServiceName: zoneIntent}); err != nil {
			return err
		}
		got := map[string]string{}
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				got[e.Addresses[0]] = ""
				if e.Hints != nil && len(e.Hints.ForZones) == 1 {
					got[e.Addresses[0]] = e.Hints.ForZones[0].Name
				}
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("hints %v", got)
		}
		return nil
	})
}

// waitReady waits until the intent's EndpointSlices publish ready as ready
// and notReady as not ready (and not serving), and nothing else.
func (w *walk) waitReady(intent string, ready, notReady []*testnet.Host) {
	t := w.t
	testenv.Await(t, intent+"'s endpoints", 30*time.Second, func() error {
		var slices discoveryv1.EndpointSliceList
		if err := w.c.admin.List(t.Context(), &slices, client.InNamespace(w.ns), client.MatchingLabels{discoveryv1.LabelServiceName: intent}); err != nil {
			return err
		}
		got := map[string]bool{}
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				r := e.Conditions.Ready == nil || *e.Conditions.Ready
				if !r && e.Conditions.Serving != nil && *e.Conditions.Serving {
					return fmt.Errorf("%s is not ready but serving", e.Addresses[0])
				}
				for _, a := range e.Addresses {
					got[a] = r
				}
			}
		}
		want := map[string]bool{}
		for _, h := range ready {
			want[h.IP.String()] = true
		}
		for _, h := range notReady {
			want[h.IP.String()] = false
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("endpoints ready %v, want %v", got, want)
		}
		return nil
	})
}

// waitCondition waits until the intent's EndpointsHealthy condition has
// reason.
func (w *walk) waitCondition(intent, reason string) {
	t := w.t
	testenv.Await(t, intent+" EndpointsHealthy "+reason, 30*time.Second, func() error {
		var in v1alpha1.NetworkIntent
		if err := w.c.admin.Get(t.Context(), client.ObjectKey{Namespace: w.ns, Name: intent}, &in); err != nil {
			return err
		}
		c := meta.FindStatusCondition(in.Status.Conditions, "EndpointsHealthy")
		if c == nil || c.Reason != reason {
			return fmt.Errorf("EndpointsHealthy is %+v", c)
		}
		return nil
	})
}

// rootUntouched checks that kube-proxy programmed only its node: the root
// namespace has none of its nftables tables or iptables chains.
func rootUntouched(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("nft", "list", "tables").CombinedOutput(); err != nil {
		t.Errorf("nft list tables: %v: %s", err, out)
	} else if strings.Contains(string(out), "kube-proxy") {
		t.Errorf("kube-proxy's nftables table is in the root namespace:\n%s", out)
	}
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		if out, err := exec.Command(save).CombinedOutput(); err != nil {
			t.Errorf("%s: %v: %s", save, err, out)
		} else if strings.Contains(string(out), "KUBE-") {
			t.Errorf("kube-proxy's %s chains are in the root namespace:\n%s", save, out)
		}
	}
}

// removeIntents deletes every intent in ns and waits until they are gone:
// the operator has let go of them (its finalizer) and stopped probing.
func removeIntents(t *testing.T, c *cluster, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.admin.DeleteAllOf(ctx, &v1alpha1.NetworkIntent{}, client.InNamespace(ns)); err != nil {
		t.Errorf("deleting the intents in %s: %v", ns, err)
		return
	}
	for {
		var list v1alpha1.NetworkIntentList
		err := c.admin.List(ctx, &list, client.InNamespace(ns))
		if err == nil && len(list.Items) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("the intents in %s are not gone: %v (%d left)", ns, err, len(list.Items))
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func addrs(hosts ...*testnet.Host) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h.IP.String())
	}
	return out
}

const dualIntent = "dual"

// dualStack makes a RequireDualStack LoadBalancer intent over both
// addresses of keep and of half: each of its cluster IPs and load-balancer
// addresses, one per family, reaches both backends by that family. Then
// only half's IPv6 listener dies: its IPv6 endpoint leaves traffic, IPv6
// requests reach keep alone, and IPv4 requests still reach both.
func (w *walk) dualStack(keep, half *testnet.Host) {
	t := w.t
	ctx := t.Context()
	for _, h := range []*testnet.Host{keep, half} {
		// Whatever an earlier step left them as: serving on both
		// families, healthy.
		if err := h.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Name: dualIntent, Namespace: w.ns},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure:       v1alpha1.ExposureLoadBalancer,
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack),
			Ports:          []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(testnet.HTTPPort))}},
			LoadBalancer:   &v1alpha1.LoadBalancerSpec{Class: v1alpha1.AddressPoolClass, Pool: poolName},
			HealthCheck:    healthCheck(),
		},
	}
	for _, h := range []*testnet.Host{keep, half} {
		in.Spec.Backends = append(in.Spec.Backends, v1alpha1.Backend{Address: h.IP.String()}, v1alpha1.Backend{Address: h.IP6.String()})
	}
	if err := w.c.admin.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	var svc corev1.Service
	testenv.Await(t, "the Service has a cluster IP and a LoadBalancer address of each family", 30*time.Second, func() error {
		if err := w.c.admin.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: dualIntent}, &svc); err != nil {
			return err
		}
		if len(svc.Spec.ClusterIPs) != 2 || len(svc.Status.LoadBalancer.Ingress) != 2 {
			return fmt.Errorf("cluster IPs %v, ingress %+v", svc.Spec.ClusterIPs, svc.Status.LoadBalancer.Ingress)
		}
		return nil
	})
	v4 := []string{keep.IP.String(), half.IP.String()}
	v6 := []string{keep.IP6.String(), half.IP6.String()}
	all := append(append([]string(nil), v4...), v6...)
	w.waitAddressesReady(dualIntent, all, nil)
	byFamily := map[bool][]string{} // is IPv6 -> host:port of the Service
	for _, ip := range append(append([]string(nil), svc.Spec.ClusterIPs...), svc.Status.LoadBalancer.Ingress[0].IP, svc.Status.LoadBalancer.Ingress[1].IP) {
		a := netip.MustParseAddr(ip)
		byFamily[a.Is6()] = append(byFamily[a.Is6()], net.JoinHostPort(ip, "80"))
	}
	if len(byFamily[false]) != 2 || len(byFamily[true]) != 2 {
		t.Fatalf("Service addresses by family: %v", byFamily)
	}
	for _, addr := range byFamily[false] {
		w.waitAnswers(addr)
		reachAll(t, w.hc, addr, v4...)
	}
	for _, addr := range byFamily[true] {
		w.waitAnswers(addr)
		reachAll(t, w.hc, addr, v6...)
	}

	// Only half's IPv6 listener dies.
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	died := time.Now()
	if err := half.CloseListeners(closeCtx, half.IP6); err != nil {
		t.Fatal(err)
	}
	w.waitAddressesReady(dualIntent, []string{keep.IP.String(), half.IP.String(), keep.IP6.String()}, []string{half.IP6.String()})
	t.Logf("IPv6 endpoint %s out of traffic %.2fs after its listener closed; %s (IPv4) stays", half.IP6, time.Since(died).Seconds(), half.IP)
	for _, addr := range byFamily[true] {
		testenv.Await(t, addr+" reaches only "+keep.IP6.String(), 10*time.Second, func() error {
			for i := range 20 {
				from, err := whoami(w.hc, addr)
				if err != nil {
					return fmt.Errorf("request %d: %w", i+1, err)
				}
				if from != keep.IP6.String() {
					return fmt.Errorf("request %d answered by %s", i+1, from)
				}
			}
			return nil
		})
	}
	for _, addr := range byFamily[false] {
		reachAll(t, w.hc, addr, v4...)
	}
	var got v1alpha1.NetworkIntent
	testenv.Await(t, "status names the IPv6 address out", 10*time.Second, func() error {
		if err := w.c.admin.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: dualIntent}, &got); err != nil {
			return err
		}
		e := got.Status.Endpoints
		if e == nil || len(e.Unhealthy) != 1 || e.Unhealthy[0].Address != half.IP6.String() || e.Unhealthy[0].Family != corev1.IPv6Protocol {
			return fmt.Errorf("endpoints status %+v", e)
		}
		return nil
	})
	t.Logf("status.endpoints.unhealthy: %+v", got.Status.Endpoints.Unhealthy)
}

// waitAddressesReady waits until the intent's slices publish exactly the
// addresses of ready as ready and those of notReady as not.
func (w *walk) waitAddressesReady(intent string, ready, notReady []string) {
	t := w.t
	testenv.Await(t, intent+"'s endpoints", 30*time.Second, func() error {
		var list discoveryv1.EndpointSliceList
		if err := w.c.admin.List(t.Context(), &list, client.InNamespace(w.ns), client.MatchingLabels{discoveryv1.LabelServiceName: intent}); err != nil {
			return err
		}
		got := map[string]bool{}
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				for _, a := range e.Addresses {
					got[a] = e.Conditions.Ready == nil || *e.Conditions.Ready
				}
			}
		}
		want := map[string]bool{}
		for _, a := range ready {
			want[a] = true
		}
		for _, a := range notReady {
			want[a] = false
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("endpoints ready %v, want %v", got, want)
		}
		return nil
	})
}
