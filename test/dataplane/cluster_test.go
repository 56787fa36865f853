package dataplane

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testnet"
)

// cluster is a local control plane with the CRDs installed, the built
// operator running against it, and the fake upstream resolver it forwards
// ExternalName targets to.
type cluster struct {
	root      string
	kubeProxy string
	env       *envtest.Environment
	admin     client.Client
	// proxyKubeconfig is kube-proxy's identity (system:kube-proxy).
	proxyKubeconfig []byte
	operator        *operator
	upstream        *upstream
}

// startCluster starts everything the dataplane tests share and stops it when
// the test ends. A binary that is missing fails the test with the make target
// that builds it.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	c := &cluster{root: root, kubeProxy: filepath.Join(assets, "kube-proxy")}
	operatorBin := filepath.Join(root, "bin", "netintent")
	for _, b := range []string{filepath.Join(assets, "kube-apiserver"), filepath.Join(assets, "etcd"), c.kubeProxy, operatorBin} {
		if fi, err := os.Stat(b); err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s not found: run `make envtest build` (or `make test-e2e`, which builds them)", b)
		}
	}
	if err := v1alpha1.AddToScheme(scheme.Scheme); err != nil {
		t.Fatal(err)
	}

	c.env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// Dual-stack, IPv4 first: the walk reaches backends over both families.
	c.env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/24,"+serviceRange6.String())
	began := time.Now()
	cfg, err := c.env.Start()
	if err != nil {
		_ = c.env.Stop()
		t.Fatalf("starting the local control plane from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := c.env.Stop(); err != nil {
			t.Errorf("stopping the local control plane: %v", err)
		}
	})
	t.Logf("control plane up in %s", time.Since(began).Round(time.Millisecond))
	if c.admin, err = client.New(cfg, client.Options{Scheme: scheme.Scheme}); err != nil {
		t.Fatal(err)
	}
	// The API server's bootstrap policy binds system:node-proxier, all
	// kube-proxy needs, to this user.
	proxyUser, err := c.env.AddUser(envtest.User{Name: "system:kube-proxy"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.proxyKubeconfig, err = proxyUser.KubeConfig(); err != nil {
		t.Fatal(err)
	}
	admin, err := c.env.AddUser(envtest.User{Name: "dataplane-operator", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	adminKubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	c.upstream = startUpstream(t)
	c.operator = startOperator(t, operatorBin, adminKubeconfig, "--dns-upstreams="+c.upstream.addr)
	return c
}

// operator is the built operator binary running as a child process.
type operator struct {
	cmd     *exec.Cmd
	log     *testnet.SyncBuffer
	done    chan struct{}
	dnsAddr string
}

// startOperator runs the operator with DNS on a loopback port and waits for
// /readyz. Its log is printed when the test fails.
func startOperator(t *testing.T, bin string, kubeconfig []byte, extraArgs ...string) *operator {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	op := &operator{log: &testnet.SyncBuffer{}, done: make(chan struct{}), dnsAddr: freeLoopbackAddr(t)}
	healthAddr := freeLoopbackAddr(t)
	args := append([]string{
		"--metrics-bind-address=0",
		"--health-probe-bind-address=" + healthAddr,
		"--dns-listen-address=" + op.dnsAddr,
	}, extraArgs...)
	op.cmd = exec.Command(bin, args...)
	op.cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dir, "kubeconfig"), "KUBERNETES_SERVICE_HOST=", "HOME="+dir)
	op.cmd.Stdout, op.cmd.Stderr = op.log, op.log
	op.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := op.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		_ = op.cmd.Wait()
		close(op.done)
	}()
	t.Cleanup(func() {
		_ = op.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-op.done:
		case <-time.After(15 * time.Second):
			_ = op.cmd.Process.Kill()
			<-op.done
		}
		// The whole log stays in bin/dataplane for a look after the run.
		logPath := filepath.Join(filepath.Dir(filepath.Dir(bin)), "bin", "dataplane", "operator.log")
		if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err == nil {
			_ = os.WriteFile(logPath, []byte(op.log.String()), 0o644)
		}
		if t.Failed() {
			t.Logf("operator log (also in %s):\n%s", logPath, op.log)
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	eventually(t, 60*time.Second, "operator /readyz", func() error {
		select {
		case <-op.done:
			t.Fatalf("the operator exited before it was ready: %s", op.log)
		default:
		}
		resp, err := hc.Get("http://" + healthAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answered %s", resp.Status)
		}
		return nil
	})
	return op
}

// freeLoopbackAddr returns 127.0.0.1:<port> with a port free for TCP and UDP.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no loopback port free for TCP and UDP")
	return ""
}

// upstream is a resolver on loopback that answers A questions from a table
// the tests fill, NXDOMAIN otherwise: the operator's --dns-upstreams.
type upstream struct {
	addr string
	mu   sync.Mutex
	a    map[string]net.IP
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{addr: pc.LocalAddr().String(), a: map[string]net.IP{}}
	srv := &dns.Server{PacketConn: pc, Handler: u}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return u
}

// set makes name resolve to ip.
func (u *upstream) set(name string, ip net.IP) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.a[dns.Fqdn(strings.ToLower(name))] = ip
}

func (u *upstream) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	if len(q.Question) == 1 {
		u.mu.Lock()
		ip, ok := u.a[strings.ToLower(q.Question[0].Name)]
		u.mu.Unlock()
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
				A:   ip,
			})
		}
	}
	_ = w.WriteMsg(m)
}

// resolveA asks the operator's DNS server for name's addresses and returns
// the CNAME target (if any) and the A records of the answer.
func resolveA(server, name string) (string, []string, error) {
	c := &dns.Client{Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := c.Exchange(m, server)
	if err != nil {
		return "", nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return "", nil, fmt.Errorf("%s: rcode %s", name, dns.RcodeToString[r.Rcode])
	}
	var cname string
	var as []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.CNAME:
			cname = rr.Target
		case *dns.A:
			as = append(as, rr.A.String())
		}
	}
	return cname, as, nil
}

// eventually runs check until it returns nil, and fails the test with the
// last error when timeout passes first.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
