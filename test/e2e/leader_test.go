package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// leaderLease is the operator's leader election Lease, in operatorNamespace.
const leaderLease = "netintent.networking.netintent.io"

// Probe settings of the leader-change tests: leaderProbe's, unless a test
// says otherwise.
type leaderProbeSettings struct {
	period, timeout                      time.Duration
	unhealthyThreshold, healthyThreshold int32
}

var leaderProbe = leaderProbeSettings{period: time.Second, timeout: 500 * time.Millisecond, unhealthyThreshold: 2, healthyThreshold: 2}

// detection is the longest a dead backend that refuses connections takes
// to fail unhealthyThreshold probes: that many periods, the last probe's
// timeout on top.
func (ps leaderProbeSettings) detection() time.Duration {
	return time.Duration(ps.unhealthyThreshold)*ps.period + ps.timeout
}

// leaderNamespace holds the leader-change tests' intent and pods.
const leaderNamespace = "leader-e2e"

// acquiredLease is what the operator logs (in any case) when it becomes
// leader.
const acquiredLease = "successfully acquired lease"

// leaderScenario is two replicas of the built binary with leader election
// on one control plane, and an intent "web" whose pods are on test hosts:
// dead (the one that fails) and live from the start, newcomer when a test
// adds it.
type leaderScenario struct {
	t     *testing.T
	ctx   context.Context
	c     client.Client
	cs    kubernetes.Interface
	probe leaderProbeSettings

	dead, live, newcomer *testnet.Host
	svc                  *corev1.Service
	leader, follower     *operatorProcess
}

// splitMembers names two replicas so that the probe share gives hosts a
// and b to different ones: whichever leads, one of the two is its own.
func splitMembers(t *testing.T, key types.NamespacedName, a, b *testnet.Host) [2]string {
	for i := range 1000 {
		names := [2]string{fmt.Sprintf("e2e-a-%d", i), fmt.Sprintf("e2e-b-%d", i)}
		if health.Owner(names[:], key, a.IP.String()) != health.Owner(names[:], key, b.IP.String()) {
			return names
		}
	}
	t.Fatal("no pair of member names splits the two hosts")
	return [2]string{}
}

// startLeaderScenario starts the control plane, the test hosts, the intent
// with its two pods and the two replicas, and returns once one replica
// leads and both backends are published ready.
func startLeaderScenario(t *testing.T, probe leaderProbeSettings) *leaderScenario {
	p := findPaths(t)
	cp := startControlPlane(t, p)
	k := cp.adminKubectl
	ctx := t.Context()

	k.must(t, "", "apply", "--server-side", "-k", filepath.Join(p.configDir, "crd"))
	k.waitEstablished(t, "networkintents.networking.netintent.io")
	k.must(t, "", "create", "namespace", operatorNamespace)
	k.must(t, "", "create", "namespace", leaderNamespace)
	watcher, err := cp.env.AddUser(envtest.User{Name: "e2e-watcher", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(watcher.Config())
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	c, err := client.New(watcher.Config(), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	tn := testnet.New(t, 3)
	s := &leaderScenario{t: t, ctx: ctx, c: c, cs: cs, probe: probe, dead: tn.Hosts[0], live: tn.Hosts[1], newcomer: tn.Hosts[2]}
	for _, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s.makePod("dead", s.dead)
	s.makePod("live", s.live)
	in := testenv.Intent(leaderNamespace, "web").SelectApp("web").HTTPPort(testnet.HTTPPort).
		HTTPProbe(probe.period, probe.timeout, probe.unhealthyThreshold).HealthyThreshold(probe.healthyThreshold).Build()
	if err := c.Create(ctx, in); err != nil {
		t.Fatal(err)
	}

	upstream := startFakeUpstream(t, "example.com.", net.ParseIP("192.0.2.53"))
	key := client.ObjectKeyFromObject(in)
	names := splitMembers(t, key, s.dead, s.live)
	ops := []*operatorProcess{
		startOperator(t, p, k.kubeconfig, "--dns-upstreams="+upstream.Addr, "--probe-share-member-name="+names[0]),
		startOperator(t, p, k.kubeconfig, "--dns-upstreams="+upstream.Addr, "--probe-share-member-name="+names[1]),
	}
	var leaderName string
	testenv.Await(t, "one replica leads", 60*time.Second, func() error {
		for i, op := range ops {
			if leads(op) {
				s.leader, s.follower, leaderName = op, ops[1-i], names[i]
				return nil
			}
		}
		return fmt.Errorf("no replica has logged %q", acquiredLease)
	})
	// The backend that dies is one the leader probes, not the standby: the
	// worst case, where the standby learns of the death only from probes
	// of its own once the leader's share is its.
	if health.Owner(names[:], key, s.dead.IP.String()) != leaderName {
		s.dead, s.live = s.live, s.dead
	}
	t.Logf("members %v, %s leads and probes %s, the backend that dies", names, leaderName, s.dead.IP)
	s.waitPublished(30*time.Second, map[*testnet.Host]bool{s.dead: true, s.live: true})
	s.svc = &corev1.Service{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(in), s.svc); err != nil {
		t.Fatal(err)
	}
	// Both replicas answer the Service's name before a test queries one
	// through a leader change. A replica that has just started may not
	// have seen the Service yet when the slices are published: each kind
	// has its own watch, and a Service watch was seen to deliver the
	// Service 356 and 391 ms after the slice watch delivered its slice.
	for _, op := range ops {
		checkA(t, "udp", op.DNSAddr, leaderServiceName, s.svc.Spec.ClusterIP)
	}
	return s
}

// leaderServiceName is the DNS name of the intent's Service.
const leaderServiceName = "web." + leaderNamespace + ".svc.cluster.local"

// leads reports whether the replica has logged that it became leader.
func leads(op *operatorProcess) bool {
	return strings.Contains(strings.ToLower(op.Log()), acquiredLease)
}

// makePod creates a Running, Ready pod of the intent on host h.
func (s *leaderScenario) makePod(name string, h *testnet.Host) {
	s.t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: leaderNamespace, Name: name, Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
	if err := s.c.Create(s.ctx, pod); err != nil {
		s.t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = h.IP.String()
	pod.Status.PodIPs = []corev1.PodIP{{IP: h.IP.String()}}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if err := s.c.Status().Update(s.ctx, pod); err != nil {
		s.t.Fatal(err)
	}
}

// published is the ready state of each address in the intent's slices, and
// the resource version of the list.
func (s *leaderScenario) published() (map[string]bool, string, error) {
	return testenv.PublishedReady(s.ctx, s.c, leaderNamespace, "web")
}

// waitPublished polls until the slices publish each host as want says, and
// returns the resource version of the list that did.
func (s *leaderScenario) waitPublished(timeout time.Duration, want map[*testnet.Host]bool) string {
	s.t.Helper()
	return testenv.WaitPublished(s.t, s.c, leaderNamespace, "web", timeout, testnet.ByIP(want))
}

// sliceWatch sees every version of the intent's slices from a resource
// version on, and checks each against the dead host: while it is dead, no
// version may publish it ready once one has published it not ready.
type sliceWatch struct {
	versions, bad atomic.Int64
	// isDead says the dead host does not serve; out is when the first
	// version publishing it not ready arrived while it was dead.
	isDead atomic.Bool
	mu     sync.Mutex
	out    time.Time
	stop   func()
}

// watchSlices starts a sliceWatch at rv; isDead says whether the dead host
// is dead, and published not ready, already.
func (s *leaderScenario) watchSlices(rv string, isDead bool) *sliceWatch {
	t := s.t
	w := &sliceWatch{}
	w.isDead.Store(isDead)
	if isDead {
		w.out = time.Now()
	}
	dead := s.dead.IP.String()
	var err error
	w.stop, err = testenv.WatchSlices(s.ctx, s.cs, leaderNamespace, "web", rv, func(ev watch.Event, arrived time.Time) {
		sl, isSlice := ev.Object.(*discoveryv1.EndpointSlice)
		if !isSlice || (ev.Type != watch.Added && ev.Type != watch.Modified) {
			return
		}
		w.versions.Add(1)
		for _, ep := range sl.Endpoints {
			if ep.Addresses[0] != dead || !w.isDead.Load() {
				continue
			}
			w.mu.Lock()
			ready, wasOut := ptr.Deref(ep.Conditions.Ready, false), !w.out.IsZero()
			if !ready && !wasOut {
				w.out = arrived
			}
			w.mu.Unlock()
			if ready && wasOut {
				w.bad.Add(1)
				t.Errorf("slice %s version %s publishes the failed backend %s ready", sl.Name, sl.ResourceVersion, dead)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// outOfTraffic is when the first version publishing the dead host not ready
// arrived; zero before one has.
func (w *sliceWatch) outOfTraffic() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out
}

// dnsLoop queries a replica's DNS for the intent's name every 50 ms until
// stopped; every answer must be the Service's cluster IP.
type dnsLoop struct {
	queries, failures atomic.Int64
	mu                sync.Mutex
	firstFailures     []string
	stop              func()
}

func (s *leaderScenario) queryDNSThroughout(op *operatorProcess) *dnsLoop {
	l := &dnsLoop{}
	ctx, stop := context.WithCancel(s.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.queries.Add(1)
			r, err := query("udp", op.DNSAddr, leaderServiceName, dns.TypeA)
			why := ""
			switch {
			case err != nil:
				why = err.Error()
			case r.Rcode != dns.RcodeSuccess:
				why = "rcode " + dns.RcodeToString[r.Rcode]
			case len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != s.svc.Spec.ClusterIP:
				why = fmt.Sprintf("answer %v, want %s", r.Answer, s.svc.Spec.ClusterIP)
			}
			if why != "" {
				l.failures.Add(1)
				l.mu.Lock()
				if len(l.firstFailures) < 5 {
					l.firstFailures = append(l.firstFailures, why)
				}
				l.mu.Unlock()
			}
		}
	}()
	l.stop = func() {
		stop()
		<-done
	}
	return l
}

// check stops the loop and fails the test if a query failed.
func (l *dnsLoop) check(t *testing.T, what string) {
	t.Helper()
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("DNS of the surviving replica %s: %d queries, %d failed %v", what, l.queries.Load(), l.failures.Load(), l.firstFailures)
	if l.failures.Load() > 0 {
		t.Errorf("%d of %d DNS queries to the surviving replica failed: %v", l.failures.Load(), l.queries.Load(), l.firstFailures)
	}
}

// waitTakeover waits until the follower logs that it leads, and returns
// how long after since that was.
func (s *leaderScenario) waitTakeover(since time.Time) time.Duration {
	s.t.Helper()
	testenv.Await(s.t, "the surviving replica takes over", 60*time.Second, func() error {
		if !leads(s.follower) {
			return fmt.Errorf("it has not logged %q", acquiredLease)
		}
		return nil
	})
	return time.Since(since)
}

// TestLeaderChange kills the leader with SIGKILL after a backend's failure
// was published. The other replica takes over; a watch sees every
// EndpointSlice version from the moment the failure is published, and none
// may publish the failed backend ready until it serves again. The
// surviving replica's DNS is queried in a loop throughout; every query must
// be answered.
func TestLeaderChange(t *testing.T) {
	s := startLeaderScenario(t, leaderProbe)
	if err := s.dead.Stop(); err != nil {
		t.Fatal(err)
	}
	rv := s.waitPublished(10*time.Second, map[*testnet.Host]bool{s.dead: false, s.live: true})
	w := s.watchSlices(rv, true)
	dnsQueries := s.queryDNSThroughout(s.follower)

	killed := time.Now()
	if err := s.leader.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.leader.Done()
	t.Logf("the surviving replica became leader %s after the SIGKILL", s.waitTakeover(killed).Round(time.Millisecond))

	// A new backend makes the new leader write the slices.
	s.makePod("newcomer", s.newcomer)
	s.waitPublished(30*time.Second, map[*testnet.Host]bool{s.dead: false, s.live: true, s.newcomer: true})
	s.checkStaysOut(time.Now().Add(s.probe.detection() + time.Second))
	s.serveAgain(w, s.live, s.newcomer)
	dnsQueries.check(t, "during the leader change")
	t.Logf("leader change with a failed backend: %d slice versions watched, %d published the failed backend ready", w.versions.Load(), w.bad.Load())
	if w.versions.Load() < 2 {
		t.Errorf("watched %d slice versions; the new leader's write and the return should both show", w.versions.Load())
	}
}

// checkStaysOut polls until end that the dead host is not published ready:
// long enough, from a leader change, for a prober that forgot the failure
// to fail it again.
func (s *leaderScenario) checkStaysOut(end time.Time) {
	s.t.Helper()
	for time.Now().Before(end) {
		ready, _, err := s.published()
		if err != nil {
			s.t.Fatal(err)
		}
		if ready[s.dead.IP.String()] {
			s.t.Fatalf("failed backend %s published ready after the leader change", s.dead.IP)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serveAgain starts the dead host's server again and waits until it is
// published ready after its passes, beside the other hosts given; then
// stops the watch.
func (s *leaderScenario) serveAgain(w *sliceWatch, others ...*testnet.Host) {
	s.t.Helper()
	w.isDead.Store(false)
	if err := s.dead.Start(s.ctx); err != nil {
		s.t.Fatal(err)
	}
	want := map[*testnet.Host]bool{s.dead: true}
	for _, h := range others {
		want[h] = true
	}
	s.waitPublished(10*s.probe.period+10*time.Second, want)
	w.stop()
}

// TestLeaderKilledAsBackendDies kills the leader with SIGKILL at the moment
// a backend dies (a node lost with the leader on it). The standby has
// probed all along: once it holds the Lease, its first writes publish the
// dead backend not ready. From a watch of every slice version: the dead
// backend is published ready at most 5 s after its death, and never again
// while it is dead.
func TestLeaderKilledAsBackendDies(t *testing.T) {
	testLeaderLeavesAsBackendDies(t, syscall.SIGKILL, "SIGKILL", leaderProbe, 5*time.Second)
}

// fastProbe detects a death well within a second, so that a handover that
// took a lease's time would show beside it.
var fastProbe = leaderProbeSettings{period: 250 * time.Millisecond, timeout: 200 * time.Millisecond, unhealthyThreshold: 2, healthyThreshold: 2}

// TestLeaderStoppedAsBackendDies stops the leader with SIGTERM (a rolling
// update, a drain) at the moment a backend dies. The leader releases the
// Lease as it exits, and the standby takes over on its next look: the dead
// backend is published ready at most its detection time + 1 s after its
// death.
func TestLeaderStoppedAsBackendDies(t *testing.T) {
	testLeaderLeavesAsBackendDies(t, syscall.SIGTERM, "SIGTERM", fastProbe, fastProbe.detection()+time.Second)
}

// firstWriteWithin is how soon a new leader's first writes follow its
// taking the Lease, or the end of a death's detection if later: a new
// leader that had not probed would need a probe period more.
const firstWriteWithin = 500 * time.Millisecond

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// leaseAcquired is when the Lease's holder acquired it, by the holder's
// clock (this machine's).
func (s *leaderScenario) leaseAcquired() time.Time {
	s.t.Helper()
	lease, err := s.cs.CoordinationV1().Leases(operatorNamespace).Get(s.ctx, leaderLease, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	if lease.Spec.AcquireTime == nil {
		s.t.Fatalf("lease %s has no acquire time", leaderLease)
	}
	return lease.Spec.AcquireTime.Time
}

func testLeaderLeavesAsBackendDies(t *testing.T, sig syscall.Signal, sigName string, probe leaderProbeSettings, bound time.Duration) {
	s := startLeaderScenario(t, probe)
	rv := s.waitPublished(10*time.Second, map[*testnet.Host]bool{s.dead: true, s.live: true})
	// Both replicas have probed the backends for some periods.
	w := s.watchSlices(rv, false)
	dnsQueries := s.queryDNSThroughout(s.follower)

	w.isDead.Store(true)
	died := time.Now()
	if err := s.dead.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.leader.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.leader.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("the leader has not exited 30 s after %s", sig)
	}
	exited := time.Since(died)
	s.waitTakeover(died)
	acquired := s.leaseAcquired()
	testenv.Await(t, "a slice version publishes the dead backend not ready", 30*time.Second, func() error {
		if w.outOfTraffic().IsZero() {
			return fmt.Errorf("%s is still published ready", s.dead.IP)
		}
		return nil
	})
	out := w.outOfTraffic()
	inTraffic := out.Sub(died)
	t.Logf("%s of the leader as a backend died: the leader exited after %s, the standby took the Lease after %s, the dead backend was published ready for %s (bound %s; its detection takes up to %s)",
		sigName, exited.Round(time.Millisecond), acquired.Sub(died).Round(time.Millisecond), inTraffic.Round(time.Millisecond), bound, probe.detection())
	if inTraffic > bound {
		t.Errorf("the dead backend %s was published ready for %s after its death, more than %s", s.dead.IP, inTraffic.Round(time.Millisecond), bound)
	}
	// The new leader acts on what it observed as a standby: its first
	// writes take the backend out if its death had been detected by then,
	// rather than after probes of its own.
	if due := later(acquired, died.Add(probe.detection())).Add(firstWriteWithin); out.After(due) {
		t.Errorf("the dead backend %s was published not ready %s after the standby took the Lease (and %s after its death, whose detection takes up to %s): more than %s after both",
			s.dead.IP, out.Sub(acquired).Round(time.Millisecond), inTraffic.Round(time.Millisecond), probe.detection(), firstWriteWithin)
	}
	s.checkStaysOut(time.Now().Add(probe.detection() + time.Second))
	s.serveAgain(w, s.live)
	dnsQueries.check(t, "during the leader change")
	t.Logf("%d slice versions watched, %d published the failed backend ready after it was out", w.versions.Load(), w.bad.Load())
}
