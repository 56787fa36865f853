package dnsserver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/controllers"
	"github.com/netintent/netintent/dnsserver"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// corednsVersion is the CoreDNS the answers are compared with; the Makefile's
// coredns target builds it into bin/.
const corednsVersion = "v1.14.7"

// parityNamespace holds every intent of the parity test.
const parityNamespace = "parity"

// cluster is a test control plane with the whole operator running on it in
// process: reconcilers, prober, and the DNS server with its index.
type cluster struct {
	client     client.Client
	kubeconfig string // an admin kubeconfig file, for CoreDNS
	dnsAddr    string // netintent's DNS server
}

// startCluster starts kube-apiserver and etcd with the CRDs, and a manager
// running what main.go runs, with upstream as the DNS server's upstream.
func startCluster(t *testing.T, upstream string) *cluster {
	t.Helper()
	logf.SetLogger(logr.Discard())
	cp := testenv.StartT(t, testenv.Options{})
	c := &cluster{kubeconfig: cp.AdminKubeconfigT(t, "parity-admin"), client: cp.Client}
	mgr, err := ctrl.NewManager(cp.Config, testenv.ManagerOptions(cp.Scheme))
	if err != nil {
		t.Fatal(err)
	}
	prober := health.NewProber(health.Options{})
	if err := mgr.Add(prober); err != nil {
		t.Fatal(err)
	}
	if err := controllers.SetupWithManager(mgr, controllers.Options{Prober: prober}); err != nil {
		t.Fatal(err)
	}
	idx := dnsserver.NewIndex()
	if err := mgr.Add(dnsserver.NewSource(mgr.GetCache(), idx)); err != nil {
		t.Fatal(err)
	}
	srv, err := dnsserver.New(dnsserver.Config{ListenAddress: "127.0.0.1:0", Upstreams: []string{upstream}}, idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(srv); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, "the manager", mgr.Start, srv.Listening())
	c.dnsAddr = srv.Addr()
	return c
}

// corednsBinary is the pinned CoreDNS built by `make coredns`.
func corednsBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("COREDNS")
	if bin == "" {
		bin = filepath.Join("..", "bin", "coredns-"+corednsVersion, "coredns")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(abs); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("CoreDNS %s not found at %s: run `make coredns` (make test does)", corednsVersion, abs)
	}
	return abs
}

// startCoreDNS runs CoreDNS with the Corefile made by corefile(port) on a free
// loopback port, until the test ends, and returns its address.
func startCoreDNS(t *testing.T, corefile func(port string) string) string {
	t.Helper()
	addr := testenv.FreeAddrT(t)
	startCoreDNSAt(t, addr, corefile)
	return addr
}

// startCoreDNSAt runs CoreDNS as startCoreDNS does, on a port chosen before.
func startCoreDNSAt(t *testing.T, addr string, corefile func(port string) string) {
	t.Helper()
	bin := corednsBinary(t)
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(addr)
	path := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(path, []byte(corefile(port)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-conf", path)
	cmd.Dir = dir
	p, err := testenv.StartProcess("CoreDNS", cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("CoreDNS output:\n%s", p.Log())
		}
	})
	t.Logf("CoreDNS %s on %s with Corefile:\n%s", corednsVersion, addr, corefile(port))
}

// answer is a reply reduced to what the parity test compares: the rcode and
// the answer RRset, each record in presentation format with its TTL zeroed
// and its owner in lower case, sorted.
type answer struct {
	rcode   string
	records []string
}

func (a answer) String() string {
	if len(a.records) == 0 {
		return a.rcode
	}
	return a.rcode + " " + strings.Join(a.records, " | ")
}

func (a answer) equal(b answer) bool {
	return a.rcode == b.rcode && slices.Equal(a.records, b.records)
}

// ask sends one question over UDP and reduces the reply.
func ask(addr, name string, qtype uint16) (answer, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(1232, false)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s to %s: %w", name, dns.TypeToString[qtype], addr, err)
	}
	if r.Truncated {
		c.Net = "tcp"
		if r, _, err = c.Exchange(q, addr); err != nil {
			return answer{}, fmt.Errorf("%s %s to %s over TCP: %w", name, dns.TypeToString[qtype], addr, err)
		}
	}
	a := answer{rcode: dns.RcodeToString[r.Rcode]}
	for _, rr := range r.Answer {
		rr = dns.Copy(rr)
		rr.Header().Ttl = 0
		rr.Header().Name = strings.ToLower(rr.Header().Name)
		a.records = append(a.records, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	slices.Sort(a.records)
	return a, nil
}

// question is one question of the parity test.
type question struct {
	name  string // relative to the namespace: "web" is web.parity.svc.cluster.local.
	qtype uint16
}

func (q question) fqdn() string {
	if q.name == "" {
		return parityNamespace + ".svc.cluster.local."
	}
	if strings.HasSuffix(q.name, ".") {
		return q.name
	}
	return q.name + "." + parityNamespace + ".svc.cluster.local."
}

// dashed is an endpoint's name when it has no hostname: its address with
// dashes.
func dashed(h *testnet.Host) string { return strings.ReplaceAll(h.IP.String(), ".", "-") }

// dashed6 is the name of an endpoint at the host's IPv6 address.
func dashed6(h *testnet.Host) string { return strings.ReplaceAll(h.IP6.String(), ":", "-") }

// parityIntents are intents of every exposure: static backends behind a TCP
// health check, h2 failing it (its server is not started); pods with
// hostnames, one not ready; an ExternalName.
func parityIntents(hosts []*testnet.Host) []*v1alpha1.NetworkIntent {
	backends := make([]v1alpha1.Backend, 0, len(hosts))
	var dualBackends []v1alpha1.Backend
	for _, h := range hosts {
		backends = append(backends, v1alpha1.Backend{Address: h.IP.String()})
		dualBackends = append(dualBackends, v1alpha1.Backend{Address: h.IP.String()}, v1alpha1.Backend{Address: h.IP6.String()})
	}
	check := func() *v1alpha1.HealthCheck {
		return &v1alpha1.HealthCheck{
			ProbeHandler:       v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{Port: ptr.To[int32](testnet.TCPPort)}},
			Period:             &metav1.Duration{Duration: time.Second},
			Timeout:            &metav1.Duration{Duration: 500 * time.Millisecond},
			HealthyThreshold:   ptr.To[int32](1),
			UnhealthyThreshold: ptr.To[int32](1),
		}
	}
	http := v1alpha1.IntentPort{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(testnet.HTTPPort))}
	intent := func(name string, spec v1alpha1.NetworkIntentSpec) *v1alpha1.NetworkIntent {
		return &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Namespace: parityNamespace, Name: name}, Spec: spec}
	}
	return []*v1alpha1.NetworkIntent{
		intent("web", v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP,
			Backends: backends,
			Ports: []v1alpha1.IntentPort{http,
				{Name: "dns", Port: 53, Protocol: "UDP", TargetPort: ptr.To(intstr.FromInt32(5353))}},
			HealthCheck: check(),
		}),
		intent("nodeport", v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureNodePort, Backends: backends[:1], Ports: []v1alpha1.IntentPort{http},
		}),
		intent("balanced", v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureLoadBalancer, Backends: backends[1:2], Ports: []v1alpha1.IntentPort{http},
		}),
		intent("cache", v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP, Headless: true, Backends: backends,
			Ports:       []v1alpha1.IntentPort{{Name: "redis", Port: 6379, TargetPort: ptr.To(intstr.FromInt32(testnet.TCPPort))}},
			HealthCheck: check(),
		}),
		intent("db", v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP, Headless: true,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Ports:    []v1alpha1.IntentPort{{Name: "postgres", Port: 5432}},
		}),
		// Dual-stack: a cluster IP of each family, and a headless
		// Service whose backends have an address of each.
		intent("dual", v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack),
			Backends: dualBackends, Ports: []v1alpha1.IntentPort{http}, HealthCheck: check(),
		}),
		intent("dualhead", v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP, Headless: true,
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack), IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol},
			Backends: dualBackends, Ports: []v1alpha1.IntentPort{http}, HealthCheck: check(),
		}),
		intent("payments", v1alpha1.NetworkIntentSpec{
			Exposure:     v1alpha1.ExposureExternalName,
			ExternalName: &v1alpha1.ExternalNameSpec{Targets: []v1alpha1.ExternalTarget{{Host: "api.payments.example.org"}}},
		}),
	}
}

// makeDBPod makes a pod of the db intent with a hostname under it, and sets
// its address and readiness as a kubelet would.
func makeDBPod(t *testing.T, c client.Client, hostname string, ips []string, ready bool) {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: parityNamespace, Name: hostname, Labels: map[string]string{"app": "db"}},
		Spec: corev1.PodSpec{
			Hostname:   hostname,
			Subdomain:  "db",
			Containers: []corev1.Container{{Name: "db", Image: "db:1", Ports: []corev1.ContainerPort{{Name: "postgres", ContainerPort: 5432}}}},
		},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatalf("creating pod %s: %v", hostname, err)
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = ips[0]
	pod.Status.PodIPs = nil
	for _, ip := range ips {
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatalf("setting the status of pod %s: %v", hostname, err)
	}
}

// parityQuestions are the record forms of the Kubernetes DNS specification
// inside svc.<domain>, asked about the parity intents.
func parityQuestions(hosts []*testnet.Host) []question {
	return []question{
		// Services with a cluster IP, of each exposure
		{"web", dns.TypeA}, {"web", dns.TypeAAAA}, {"nodeport", dns.TypeA}, {"balanced", dns.TypeA},
		// Headless Services: the ready, healthy endpoints
		{"cache", dns.TypeA}, {"cache", dns.TypeAAAA}, {"db", dns.TypeA}, {"db", dns.TypeAAAA},
		// Per-endpoint names: hostnames, and dashed addresses without one
		{"db-0.db", dns.TypeA}, {"db-1.db", dns.TypeA}, {"db-1.db", dns.TypeAAAA}, {"db-2.db", dns.TypeA},
		{dashed(hosts[0]) + ".cache", dns.TypeA}, {dashed(hosts[2]) + ".cache", dns.TypeA},
		{dashed(hosts[0]) + ".web", dns.TypeA},
		{"db-0.db", dns.TypeSRV}, {dashed(hosts[0]) + ".cache", dns.TypeSRV},
		// SRV for named ports and for the bare Service name
		{"_http._tcp.web", dns.TypeSRV}, {"_dns._udp.web", dns.TypeSRV}, {"web", dns.TypeSRV},
		{"_http._tcp.nodeport", dns.TypeSRV}, {"nodeport", dns.TypeSRV},
		{"_redis._tcp.cache", dns.TypeSRV}, {"cache", dns.TypeSRV},
		{"_postgres._tcp.db", dns.TypeSRV}, {"db", dns.TypeSRV},
		// ExternalName: the CNAME, and the target resolved upstream
		{"payments", dns.TypeCNAME}, {"payments", dns.TypeA}, {"payments", dns.TypeAAAA},
		// NXDOMAIN and NODATA
		{"missing", dns.TypeA}, {"web", dns.TypeTXT}, {"_http._udp.web", dns.TypeSRV}, {"_https._tcp.web", dns.TypeSRV},
		{"db-9.db", dns.TypeA}, {"", dns.TypeA}, {"nowhere.svc.cluster.local.", dns.TypeA},
		// Dual-stack: both cluster IPs; a headless Service's healthy
		// addresses of both families, each address's own name, and SRV
		// targets that resolve to both
		{"dual", dns.TypeA}, {"dual", dns.TypeAAAA}, {"_http._tcp.dual", dns.TypeSRV}, {"dual", dns.TypeSRV},
		{"dualhead", dns.TypeA}, {"dualhead", dns.TypeAAAA}, {"_http._tcp.dualhead", dns.TypeSRV}, {"dualhead", dns.TypeSRV},
		{dashed(hosts[0]) + ".dualhead", dns.TypeA}, {dashed6(hosts[0]) + ".dualhead", dns.TypeAAAA},
		{dashed6(hosts[0]) + ".dualhead", dns.TypeA}, {dashed6(hosts[2]) + ".dualhead", dns.TypeAAAA},
		{dashed6(hosts[1]) + ".dualhead", dns.TypeSRV},
		{"db-0.db", dns.TypeAAAA}, {"db-2.db", dns.TypeAAAA}, {dashed6(hosts[0]) + ".db", dns.TypeAAAA},
	}
}

// TestSameAnswersAsCoreDNS runs CoreDNS's kubernetes plugin and netintent's
// DNS server against the same cluster, asks both the same questions, and
// compares the rcode and answer RRset of each (TTL and order aside).
func TestSameAnswersAsCoreDNS(t *testing.T) {
	corednsBinary(t) // fail early, before starting anything
	tn := testnet.New(t, 3)
	ctx := context.Background()
	for _, h := range tn.Hosts[:2] {
		if err := h.Start(ctx); err != nil {
			t.Fatalf("starting test host %s: %v", h.IP, err)
		}
	}
	// The resolver both servers ask for the ExternalName's target.
	upstream := testenv.ServeDNST(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.RecursionAvailable = true
		q := r.Question[0]
		switch {
		case !strings.EqualFold(q.Name, "api.payments.example.org."):
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			rr, _ := dns.NewRR("api.payments.example.org. 60 IN A 192.0.2.80")
			m.Answer = []dns.RR{rr}
		case q.Qtype == dns.TypeAAAA:
			rr, _ := dns.NewRR("api.payments.example.org. 60 IN AAAA 2001:db8::80")
			m.Answer = []dns.RR{rr}
		}
		_ = w.WriteMsg(m)
	})
	c := startCluster(t, upstream)
	for _, ns := range []string{parityNamespace, "empty"} {
		if err := c.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, in := range parityIntents(tn.Hosts) {
		if err := c.client.Create(ctx, in); err != nil {
			t.Fatalf("creating intent %s: %v", in.Name, err)
		}
	}
	for i, h := range tn.Hosts {
		// db-0 and db-2 are dual-stack pods; the db Service, headless
		// and without a selector of its own, is dual-stack by default.
		ips := []string{h.IP.String()}
		if i != 1 {
			ips = append(ips, h.IP6.String())
		}
		makeDBPod(t, c.client, fmt.Sprintf("db-%d", i), ips, i < 2)
	}
	coredns := startCoreDNS(t, func(port string) string {
		// CoreDNS resolves an ExternalName's target through the server
		// itself: the forward plugin of the same block answers it.
		return fmt.Sprintf(".:%s {\n    bind 127.0.0.1\n    kubernetes cluster.local {\n        kubeconfig %s\n    }\n    forward . %s\n}\n", port, c.kubeconfig, upstream)
	})

	// Wait until the failing backend is out of traffic and both servers
	// see every Service.
	healthy := answer{rcode: "NOERROR", records: []string{
		"cache.parity.svc.cluster.local. 0 IN A " + tn.Hosts[0].IP.String(),
		"cache.parity.svc.cluster.local. 0 IN A " + tn.Hosts[1].IP.String(),
	}}
	slices.Sort(healthy.records)
	// h2's IPv6 address fails its check as its IPv4 one does.
	healthy6 := answer{rcode: "NOERROR", records: []string{
		"dualhead.parity.svc.cluster.local. 0 IN AAAA " + tn.Hosts[0].IP6.String(),
		"dualhead.parity.svc.cluster.local. 0 IN AAAA " + tn.Hosts[1].IP6.String(),
	}}
	slices.Sort(healthy6.records)
	for _, server := range []string{c.dnsAddr, coredns} {
		testenv.Await(t, "the healthy backends in "+server+"'s answer", 60*time.Second, func() error {
			got, err := ask(server, "cache.parity.svc.cluster.local.", dns.TypeA)
			if err != nil {
				return err
			}
			if !got.equal(healthy) {
				return fmt.Errorf("%s, want %s", got, healthy)
			}
			if got, err = ask(server, "dualhead.parity.svc.cluster.local.", dns.TypeAAAA); err != nil || !got.equal(healthy6) {
				return fmt.Errorf("%s %v, want %s", got, err, healthy6)
			}
			for _, name := range []string{"web", "nodeport", "balanced", "db", "payments", "dual", "dualhead"} {
				if got, err := ask(server, name+".parity.svc.cluster.local.", dns.TypeCNAME); err != nil || got.rcode != "NOERROR" {
					return fmt.Errorf("%s: %v %v", name, got, err)
				}
			}
			return nil
		})
	}

	questions := parityQuestions(tn.Hosts)
	var report strings.Builder
	var diffs []string
	testenv.Await(t, "the same answers from both", 60*time.Second, func() error {
		report.Reset()
		diffs = diffs[:0]
		for _, q := range questions {
			ours, err := ask(c.dnsAddr, q.fqdn(), q.qtype)
			if err != nil {
				return err
			}
			theirs, err := ask(coredns, q.fqdn(), q.qtype)
			if err != nil {
				return err
			}
			mark := "same"
			if !ours.equal(theirs) {
				mark = "DIFFERENT"
				diffs = append(diffs, fmt.Sprintf("%s %s:\n  netintent %s\n  CoreDNS   %s", q.fqdn(), dns.TypeToString[q.qtype], ours, theirs))
			}
			fmt.Fprintf(&report, "%-9s %s %s\n  netintent %s\n  CoreDNS   %s\n", mark, q.fqdn(), dns.TypeToString[q.qtype], ours, theirs)
		}
		if len(diffs) > 0 {
			return errors.New(strings.Join(diffs, "\n"))
		}
		return nil
	})
	t.Logf("%d questions, answers of netintent and CoreDNS %s:\n%s", len(questions), corednsVersion, report.String())

	// Outside those record forms, netintent answers some questions
	// otherwise on purpose; they are printed beside CoreDNS's answer.
	report.Reset()
	for _, d := range byDesign {
		ours, err := ask(c.dnsAddr, d.q.fqdn(), d.q.qtype)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := ask(coredns, d.q.fqdn(), d.q.qtype)
		if err != nil {
			t.Fatal(err)
		}
		if ours.rcode != d.rcode {
			t.Errorf("%s %s: netintent %s, want %s (%s)", d.q.fqdn(), dns.TypeToString[d.q.qtype], ours, d.rcode, d.why)
		}
		fmt.Fprintf(&report, "%s %s: %s\n  netintent %s\n  CoreDNS   %s\n", d.q.fqdn(), dns.TypeToString[d.q.qtype], d.why, ours, theirs)
	}
	t.Logf("answered otherwise by design:\n%s", report.String())
}

// byDesign are questions outside the specification's record forms that
// netintent answers otherwise than CoreDNS, on purpose, with its rcode.
var byDesign = []struct {
	q     question
	rcode string
	why   string
}{
	{question{"_tcp.web", dns.TypeSRV}, "NOERROR", "an empty non-terminal above _http._tcp.web exists (RFC 8020); CoreDNS reads _tcp as an endpoint name"},
	{question{"web", dns.TypeANY}, "NOERROR", "ANY is answered with HINFO (RFC 8482)"},
	{question{"web", dns.TypeMD}, "NOTIMP", "an obsolete type is not implemented (and never forwarded)"},
	{question{"svc.cluster.local.", dns.TypeSOA}, "NOERROR", "netintent is authoritative for svc.<domain>; CoreDNS's zone is <domain>"},
	{question{"empty.svc.cluster.local.", dns.TypeA}, "NXDOMAIN", "netintent knows namespaces through their Services only; CoreDNS watches namespaces"},
}

// readmeStanza is the Corefile server block the README gives for forwarding
// the zone to netintent.
func readmeStanza(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```corefile\n")
	if !ok {
		t.Fatal("README.md has no ```corefile block")
	}
	stanza, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("README.md: the ```corefile block does not end")
	}
	return stanza
}

// TestCoreDNSForwardsTheZone runs CoreDNS with the README's server block
// forwarding the zone to netintent, and a catch-all block forwarding to a
// fake upstream, as a cluster's Corefile would. netintent's own upstream is
// that CoreDNS, as in a pod whose resolv.conf names the cluster DNS. Every
// answer through CoreDNS is netintent's, and no question loops.
func TestCoreDNSForwardsTheZone(t *testing.T) {
	stanza := readmeStanza(t)
	const readmeIP = "10.96.0.53"
	if !strings.Contains(stanza, "svc.cluster.local:53 {") || !strings.Contains(stanza, "forward . "+readmeIP) {
		t.Fatalf("README's Corefile block is not the one this test adapts:\n%s", stanza)
	}

	var upstreamAsked []string
	var mu sync.Mutex
	upstream := testenv.ServeDNST(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		q := r.Question[0]
		mu.Lock()
		upstreamAsked = append(upstreamAsked, strings.ToLower(q.Name))
		mu.Unlock()
		switch strings.ToLower(q.Name) {
		case "api.example.org.":
			if q.Qtype == dns.TypeA {
				rr, _ := dns.NewRR("api.example.org. 60 IN A 192.0.2.7")
				m.Answer = []dns.RR{rr}
			}
		case "back.example.org.":
			rr, _ := dns.NewRR("back.example.org. 60 IN CNAME web.parity.svc.cluster.local.")
			m.Answer = []dns.RR{rr}
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})

	corednsAddr := testenv.FreeAddrT(t)
	idx := dnsserver.NewIndex()
	idx.UpsertService(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: parityNamespace, Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.0.0.10", ClusterIPs: []string{"10.0.0.10"},
			Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}},
	})
	for name, target := range map[string]string{"api": "api.example.org", "back": "back.example.org"} {
		idx.UpsertService(&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: parityNamespace, Name: name},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target},
		})
	}
	idx.MarkSynced()
	srv, err := dnsserver.New(dnsserver.Config{ListenAddress: "127.0.0.1:0", Upstreams: []string{corednsAddr}}, idx)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, "netintent's DNS server", srv.Start, srv.Listening())

	_, port, _ := net.SplitHostPort(corednsAddr)
	startCoreDNSAt(t, corednsAddr, func(string) string {
		block := strings.Replace(stanza, "svc.cluster.local:53 {", "svc.cluster.local:"+port+" {\n    bind 127.0.0.1", 1)
		block = strings.Replace(block, "forward . "+readmeIP, "forward . "+srv.Addr(), 1)
		return block + fmt.Sprintf(".:%s {\n    bind 127.0.0.1\n    forward . %s\n}\n", port, upstream)
	})

	cases := []struct {
		q    question
		want answer
	}{
		{question{"web", dns.TypeA}, answer{"NOERROR", []string{"web.parity.svc.cluster.local. 0 IN A 10.0.0.10"}}},
		{question{"_http._tcp.web", dns.TypeSRV}, answer{"NOERROR", []string{"_http._tcp.web.parity.svc.cluster.local. 0 IN SRV 0 100 80 web.parity.svc.cluster.local."}}},
		{question{"missing", dns.TypeA}, answer{rcode: "NXDOMAIN"}},
		{question{"web", dns.TypeTXT}, answer{rcode: "NOERROR"}},
		// The target resolved by netintent through CoreDNS's catch-all.
		{question{"api", dns.TypeA}, answer{"NOERROR", []string{
			"api.example.org. 0 IN A 192.0.2.7",
			"api.parity.svc.cluster.local. 0 IN CNAME api.example.org.",
		}}},
		// Out of the zone and back in: netintent answers the zone part
		// itself rather than asking CoreDNS, which would ask netintent.
		{question{"back", dns.TypeA}, answer{"NOERROR", []string{
			"back.example.org. 0 IN CNAME web.parity.svc.cluster.local.",
			"back.parity.svc.cluster.local. 0 IN CNAME back.example.org.",
			"web.parity.svc.cluster.local. 0 IN A 10.0.0.10",
		}}},
	}
	testenv.Await(t, "CoreDNS answers the zone", 60*time.Second, func() error {
		_, err := ask(corednsAddr, "web.parity.svc.cluster.local.", dns.TypeA)
		return err
	})
	for _, tc := range cases {
		got, err := ask(corednsAddr, tc.q.fqdn(), tc.q.qtype)
		if err != nil {
			t.Fatal(err)
		}
		direct, err := ask(srv.Addr(), tc.q.fqdn(), tc.q.qtype)
		if err != nil {
			t.Fatal(err)
		}
		if !got.equal(tc.want) || !got.equal(direct) {
			t.Errorf("%s %s through CoreDNS: %s; want %s, as netintent answers directly: %s",
				tc.q.fqdn(), dns.TypeToString[tc.q.qtype], got, tc.want, direct)
		}
		t.Logf("%s %s through CoreDNS: %s", tc.q.fqdn(), dns.TypeToString[tc.q.qtype], got)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, name := range upstreamAsked {
		if strings.HasSuffix(name, ".svc.cluster.local.") {
			t.Errorf("the catch-all upstream was asked %s: the zone went round", name)
		}
	}
}
