package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testnet"
)

// Probe settings of the leader-change test.
const (
	leaderProbePeriod        = time.Second
	leaderProbeTimeout       = 500 * time.Millisecond
	leaderUnhealthyThreshold = 2
	leaderHealthyThreshold   = 2
)

// leaderNamespace holds the leader-change test's intent and pods.
const leaderNamespace = "leader-e2e"

// acquiredLease is what the operator logs (in any case) when it becomes
// leader.
const acquiredLease = "successfully acquired lease"

// TestLeaderChange runs two replicas of the built binary with leader
// election on one control plane, a backend failing its probe on a test
// host, and kills the leader with SIGKILL. The other replica takes over; a
// watch sees every EndpointSlice version from the moment the failure is
// published, and none may publish the failed backend ready until it serves
// again. The surviving replica's DNS is queried in a loop throughout; every
// query must be answered.
func TestLeaderChange(t *testing.T) {
	p := findPaths(t)
	cp := startControlPlane(t, p)
	k := cp.adminKubectl
	ctx := t.Context()

	k.must(t, "", "apply", "--server-side", "-k", filepath.Join(p.configDir, "crd"))
	k.must(t, "", "wait", "--for=condition=Established", "--timeout=30s", "crd/networkintents.networking.netintent.io")
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
	dead, live, newcomer := tn.Hosts[0], tn.Hosts[1], tn.Hosts[2]
	for _, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	makePod := func(name string, h *testnet.Host) {
		t.Helper()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: leaderNamespace, Name: name, Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
		}
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		pod.Status.Phase = corev1.PodRunning
		pod.Status.PodIP = h.IP.String()
		pod.Status.PodIPs = []corev1.PodIP{{IP: h.IP.String()}}
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		if err := c.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	makePod("dead", dead)
	makePod("live", live)
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: leaderNamespace, Name: "web"},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ports:    []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(testnet.HTTPPort))}},
			HealthCheck: &v1alpha1.HealthCheck{
				ProbeHandler:       v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{Path: "/healthz"}},
				Period:             &metav1.Duration{Duration: leaderProbePeriod},
				Timeout:            &metav1.Duration{Duration: leaderProbeTimeout},
				UnhealthyThreshold: ptr.To[int32](leaderUnhealthyThreshold),
				HealthyThreshold:   ptr.To[int32](leaderHealthyThreshold),
			},
		},
	}
	if err := c.Create(ctx, in); err != nil {
		t.Fatal(err)
	}

	upstream := startFakeUpstream(t, "example.com.", net.ParseIP("192.0.2.53"))
	ops := []*operatorProcess{
		startOperator(t, p, k.kubeconfig, "--dns-upstreams="+upstream.addr),
		startOperator(t, p, k.kubeconfig, "--dns-upstreams="+upstream.addr),
	}
	var leader, follower *operatorProcess
	eventually(t, 60*time.Second, "one replica leads", func() error {
		for i, op := range ops {
			if strings.Contains(strings.ToLower(op.log.String()), acquiredLease) {
				leader, follower = op, ops[1-i]
				return nil
			}
		}
		return fmt.Errorf("no replica has logged %q", acquiredLease)
	})

	published := func() (map[string]bool, string, error) {
		list := &discoveryv1.EndpointSliceList{}
		if err := c.List(ctx, list, client.InNamespace(leaderNamespace), client.MatchingLabels{discoveryv1.LabelServiceName: "web"}); err != nil {
			return nil, "", err
		}
		ready := map[string]bool{}
		for _, s := range list.Items {
			for _, ep := range s.Endpoints {
				ready[ep.Addresses[0]] = ptr.Deref(ep.Conditions.Ready, false)
			}
		}
		return ready, list.ResourceVersion, nil
	}
	waitPublished := func(timeout time.Duration, want map[*testnet.Host]bool) string {
		t.Helper()
		var rv string
		eventually(t, timeout, "published endpoints", func() error {
			ready, listRV, err := published()
			if err != nil {
				return err
			}
			for h, w := range want {
				if r, ok := ready[h.IP.String()]; !ok || r != w {
					return fmt.Errorf("%s published ready=%v (listed %v), want ready=%v", h.IP, r, ok, w)
				}
			}
			rv = listRV
			return nil
		})
		return rv
	}
	waitPublished(30*time.Second, map[*testnet.Host]bool{dead: true, live: true})
	svc := &corev1.Service{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(in), svc); err != nil {
		t.Fatal(err)
	}

	if err := dead.Stop(); err != nil {
		t.Fatal(err)
	}
	rv := waitPublished(10*time.Second, map[*testnet.Host]bool{dead: false, live: true})

	// Every slice version from here on.
	var isDead atomic.Bool
	isDead.Store(true)
	var versions, bad atomic.Int64
	watchCtx, stopWatch := context.WithCancel(ctx)
	rw, err := watchtools.NewRetryWatcherWithContext(watchCtx, rv, &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		o.LabelSelector = discoveryv1.LabelServiceName + "=web"
		return cs.DiscoveryV1().EndpointSlices(leaderNamespace).Watch(ctx, o)
	}})
	if err != nil {
		t.Fatal(err)
	}
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		defer rw.Stop()
		for {
			select {
			case <-watchCtx.Done():
				return
			case ev, ok := <-rw.ResultChan():
				if !ok {
					return
				}
				s, isSlice := ev.Object.(*discoveryv1.EndpointSlice)
				if !isSlice || (ev.Type != watch.Added && ev.Type != watch.Modified) {
					continue
				}
				versions.Add(1)
				for _, ep := range s.Endpoints {
					if isDead.Load() && ep.Addresses[0] == dead.IP.String() && ptr.Deref(ep.Conditions.Ready, false) {
						bad.Add(1)
						t.Errorf("slice %s version %s publishes the failed backend %s ready", s.Name, s.ResourceVersion, dead.IP)
					}
				}
			}
		}
	}()

	// The surviving replica's DNS, in a loop, throughout.
	name := "web." + leaderNamespace + ".svc.cluster.local"
	var queries, failures atomic.Int64
	var failMu sync.Mutex
	var firstFailures []string
	dnsCtx, stopDNS := context.WithCancel(ctx)
	dnsDone := make(chan struct{})
	go func() {
		defer close(dnsDone)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-dnsCtx.Done():
				return
			case <-tick.C:
			}
			queries.Add(1)
			r, err := query("udp", follower.dnsAddr, name, dns.TypeA)
			why := ""
			switch {
			case err != nil:
				why = err.Error()
			case r.Rcode != dns.RcodeSuccess:
				why = "rcode " + dns.RcodeToString[r.Rcode]
			case len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != svc.Spec.ClusterIP:
				why = fmt.Sprintf("answer %v, want %s", r.Answer, svc.Spec.ClusterIP)
			}
			if why != "" {
				failures.Add(1)
				failMu.Lock()
				if len(firstFailures) < 5 {
					firstFailures = append(firstFailures, why)
				}
				failMu.Unlock()
			}
		}
	}()

	killed := time.Now()
	if err := leader.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-leader.done
	eventually(t, 60*time.Second, "the surviving replica takes over", func() error {
		if !strings.Contains(strings.ToLower(follower.log.String()), acquiredLease) {
			return fmt.Errorf("it has not logged %q", acquiredLease)
		}
		return nil
	})
	t.Logf("the surviving replica became leader %s after the SIGKILL", time.Since(killed).Round(time.Millisecond))

	// A new backend makes the new leader write the slices.
	makePod("newcomer", newcomer)
	waitPublished(30*time.Second, map[*testnet.Host]bool{dead: false, live: true, newcomer: true})
	// Long enough for a prober that forgot the failure to fail it again.
	end := time.Now().Add(leaderProbePeriod*leaderUnhealthyThreshold*11/10 + leaderProbeTimeout + time.Second)
	for time.Now().Before(end) {
		ready, _, err := published()
		if err != nil {
			t.Fatal(err)
		}
		if ready[dead.IP.String()] {
			t.Fatalf("failed backend %s published ready after the leader change", dead.IP)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// It serves again: it returns after its passes.
	isDead.Store(false)
	if err := dead.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitPublished(10*leaderProbePeriod, map[*testnet.Host]bool{dead: true, live: true, newcomer: true})
	stopDNS()
	<-dnsDone
	stopWatch()
	<-watchDone

	t.Logf("leader change with a failed backend: %d slice versions watched, %d published the failed backend ready", versions.Load(), bad.Load())
	t.Logf("DNS of the surviving replica during the leader change: %d queries, %d failed %v", queries.Load(), failures.Load(), firstFailures)
	if versions.Load() < 2 {
		t.Errorf("watched %d slice versions; the new leader's write and the return should both show", versions.Load())
	}
	if failures.Load() > 0 {
		t.Errorf("%d of %d DNS queries to the surviving replica failed: %v", failures.Load(), queries.Load(), firstFailures)
	}
}
