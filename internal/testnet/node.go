package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ProxyMode is how kube-proxy programs a node: with nftables or iptables.
type ProxyMode string

// The kube-proxy modes a Node runs.
const (
	ProxyModeNFTables ProxyMode = "nftables"
	ProxyModeIPTables ProxyMode = "iptables"
)

// ClusterCIDR is the pod range a Node's kube-proxy is told about, one per
// family. Backends behind a node are outside it, as static backends are.
const ClusterCIDR = "10.244.0.0/16,fd00:10:244::/56"

// On the node's own loopback, so that nodes never compete for them.
const (
	proxyHealthzAddr = "127.0.0.1:10256"
	proxyMetricsAddr = "127.0.0.1:10249"
)

// proxyStartTimeout bounds the wait for kube-proxy's first sync.
const proxyStartTimeout = 60 * time.Second

// NodeConfig says what node StartNode makes.
type NodeConfig struct {
	// KubeProxy is the path of the kube-proxy binary (bin/k8s/kube-proxy).
	KubeProxy string
	// Mode is kube-proxy's mode. Required.
	Mode ProxyMode
	// Kubeconfig is kube-proxy's kubeconfig, whose server is the API server
	// on the root namespace's loopback. The node reaches it through a
	// forwarder on the host side of its link.
	Kubeconfig []byte
	// Client makes (and at the end deletes) the Node object.
	Client client.Client
	// Backends is how many backend hosts to put behind the node (at most 63).
	Backends int
	// SinkPrefixes are the ranges of virtual addresses kube-proxy takes over
	// on the node: the Service range and the LoadBalancer pool ranges. The
	// node routes them into a sink that forwards nothing, so that connect()
	// has a route and an address kube-proxy does not take goes nowhere.
	SinkPrefixes []netip.Prefix
	// ExtraArgs are passed to kube-proxy after the node's own flags.
	ExtraArgs []string
	// Log, if set, receives kube-proxy's output as it runs.
	Log io.Writer
}

// Node is a Kubernetes node made of network namespaces on this machine:
//
//	root namespace 10.252.K.1 <-veth-> node 10.252.K.2 (the Node's InternalIP)
//	node 10.251.K.4i+1 <-veth-> backend host i 10.251.K.4i+2 (default route via the node)
//	node <-veth-> sink (no addresses, no forwarding): routes for SinkPrefixes
//
// and the same in IPv6 (unique local addresses, nodad): root
// fd6e:6e6f:6465:K::1 <-> node ::2 (the Node's second InternalIP), backend
// host i fd6e:6261:636b:K::4i+2/126 behind node ::4i+1. Every node is
// dual-stack, and so is its kube-proxy.
//
// kube-proxy runs inside the node namespace against the control plane, the
// node forwards IP (the only namespace that does), and the root namespace
// routes 10.251.K.0/24 via the node, so the operator's health probes reach
// the backends. Clients inside the node (Dial, HTTPClient) reach Services as
// pods on a node do. K is chosen free per node, so nodes of concurrent
// processes do not meet.
type Node struct {
	// Name is the Node object's name, also kube-proxy's --hostname-override.
	Name string
	// Namespace is the node's network namespace.
	Namespace string
	// IP is the node's address (InternalIP) on its link to the root namespace.
	IP netip.Addr
	// HostIP is the root namespace's address on that link.
	HostIP netip.Addr
	// BackendPrefix holds the addresses of the backends behind the node.
	BackendPrefix netip.Prefix
	// IP6, HostIP6 and BackendPrefix6 are the same in IPv6.
	IP6, HostIP6   netip.Addr
	BackendPrefix6 netip.Prefix
	// Backends are the backend hosts behind the node; their servers are not
	// started.
	Backends []*Host
	// Mode is kube-proxy's mode.
	Mode ProxyMode

	cfg     NodeConfig
	tmpDir  string
	rootLnk string
	sinkNS  string
	proxy   *server
	fwd     *forwarder

	mu     sync.Mutex
	undo   []func() error // run in reverse by Close
	closed bool
}

// NewNode makes a node as StartNode does and removes it when the test ends,
// whether it passed or not. It skips the test when not run as root
// (SkipUnlessRoot) and fails it when a tool it needs is missing.
func NewNode(t testing.TB, cfg NodeConfig) *Node {
	t.Helper()
	SkipUnlessRoot(t)
	removeStale(t)
	ctx, cancel := context.WithTimeout(context.Background(), proxyStartTimeout+30*time.Second)
	defer cancel()
	n, err := StartNode(ctx, cfg)
	if n != nil {
		t.Cleanup(func() {
			if err := n.Close(); err != nil {
				t.Errorf("testnet: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("testnet: %v", err)
	}
	return n
}

// StartNode makes a node, starts its kube-proxy and returns once kube-proxy
// reports healthy. On error it returns the partly made node too (or nil if
// nothing was made), for the caller to Close; Close removes every namespace,
// link, route, process and object the node made.
func StartNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if cfg.Mode != ProxyModeNFTables && cfg.Mode != ProxyModeIPTables {
		return nil, fmt.Errorf("kube-proxy mode %q: want %s or %s", cfg.Mode, ProxyModeNFTables, ProxyModeIPTables)
	}
	if cfg.Backends < 0 || cfg.Backends > 63 {
		return nil, fmt.Errorf("%d backends: a node has room for 0 to 63", cfg.Backends)
	}
	if cfg.Client == nil {
		return nil, errors.New("a node needs a client for its Node object")
	}
	if _, err := os.Stat(cfg.KubeProxy); err != nil {
		return nil, fmt.Errorf("kube-proxy (run `make envtest`): %w", err)
	}
	tools := []string{"ip"}
	if cfg.Mode == ProxyModeNFTables {
		tools = append(tools, "nft")
	} else {
		tools = append(tools, "iptables", "iptables-save", "iptables-restore")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("kube-proxy in %s mode needs %s (Debian: apt-get install iproute2 nftables iptables): %w", cfg.Mode, tool, err)
		}
	}

	run := fmt.Sprintf("%s%d-%06x", namePrefix, os.Getpid(), rand.N(1<<24))
	n := &Node{Name: run + "-node", Namespace: run + "-node", Mode: cfg.Mode, cfg: cfg}
	if err := n.build(ctx, run); err != nil {
		return n, err
	}
	return n, nil
}

func (n *Node) build(ctx context.Context, run string) error {
	if err := n.addNamespace(n.Namespace); err != nil {
		return err
	}
	if err := n.linkToRoot(); err != nil {
		return err
	}
	if err := inNamespace(n.Namespace, func() error {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
			return err
		}
		return os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1\n"), 0o644)
	}); err != nil {
		return fmt.Errorf("turn on IP forwarding in the node: %w", err)
	}
	for i := range n.cfg.Backends {
		if err := n.addBackend(run, i); err != nil {
			return err
		}
	}
	n.sinkNS = run + "-sink"
	if err := n.addSink(n.sinkNS); err != nil {
		return err
	}
	if err := n.addNodeObject(ctx); err != nil {
		return err
	}
	if err := n.startForwarder(); err != nil {
		return err
	}
	if err := n.startProxy(); err != nil {
		return err
	}
	return n.waitProxyHealthy(ctx)
}

// onClose registers what Close undoes, in reverse order of making.
func (n *Node) onClose(f func() error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.undo = append(n.undo, f)
}

// Close stops kube-proxy and the backends' servers, deletes the Node object
// and removes every namespace, link and route the node made. A second Close
// does nothing.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	undo := n.undo
	n.mu.Unlock()
	var errs []error
	for i := len(undo) - 1; i >= 0; i-- {
		if err := undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *Node) addNamespace(ns string) error {
	if out, err := ip("netns", "add", ns); err != nil {
		return fmt.Errorf("add network namespace %s: %w: %s", ns, err, out)
	}
	n.onClose(func() error {
		if out, err := ip("netns", "del", ns); err != nil {
			return fmt.Errorf("delete network namespace %s: %w: %s", ns, err, out)
		}
		return nil
	})
	return ip0("-n", ns, "link", "set", "lo", "up")
}

// linkToRoot joins the node to the root namespace on a free 10.252.K.0/30,
// which also gives the node 10.251.K.0/24 for its backends.
func (n *Node) linkToRoot() error {
	used, err := rootPrefixes()
	if err != nil {
		return err
	}
	for _, k := range rand.Perm(256) {
		link := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 252, byte(k), 0}), 30)
		backends := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 251, byte(k), 0}), 24)
		if overlapsAny(link, used) || overlapsAny(backends, used) {
			continue
		}
		// As for test hosts, creating the root-side link claims K: only
		// one process can create a given name.
		root := fmt.Sprintf("nin%d", k)
		out, err := ip("link", "add", root, "type", "veth", "peer", "name", "uplink", "netns", n.Namespace)
		if err != nil {
			if strings.Contains(out, "File exists") {
				continue
			}
			return fmt.Errorf("add veth pair %s/uplink: %w: %s", root, err, out)
		}
		n.rootLnk = root
		n.onClose(func() error {
			// Gone with the node's namespace unless that failed; its
			// route goes with it.
			if out, err := ip("link", "del", root); err != nil && !strings.Contains(out, "Cannot find device") {
				return fmt.Errorf("delete link %s: %w: %s", root, err, out)
			}
			return nil
		})
		n.HostIP = netip.AddrFrom4([4]byte{10, 252, byte(k), 1})
		n.IP = netip.AddrFrom4([4]byte{10, 252, byte(k), 2})
		n.BackendPrefix = backends
		// The IPv6 prefixes are named after the same K.
		n.HostIP6 = netip.AddrFrom16([16]byte{0xfd, 0x6e, 0x6e, 0x6f, 0x64, 0x65, 0, byte(k), 15: 1})
		n.IP6 = netip.AddrFrom16([16]byte{0xfd, 0x6e, 0x6e, 0x6f, 0x64, 0x65, 0, byte(k), 15: 2})
		n.BackendPrefix6 = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x6e, 0x62, 0x61, 0x63, 0x6b, 0, byte(k)}), 64)
		return ipAll(
			[]string{"addr", "add", n.HostIP.String() + "/30", "dev", root},
			[]string{"-6", "addr", "add", n.HostIP6.String() + "/64", "dev", root, "nodad"},
			[]string{"link", "set", root, "up"},
			[]string{"-n", n.Namespace, "addr", "add", n.IP.String() + "/30", "dev", "uplink"},
			[]string{"-n", n.Namespace, "-6", "addr", "add", n.IP6.String() + "/64", "dev", "uplink", "nodad"},
			[]string{"-n", n.Namespace, "link", "set", "uplink", "up"},
			[]string{"route", "add", backends.String(), "via", n.IP.String(), "dev", root},
			[]string{"-6", "route", "add", n.BackendPrefix6.String(), "via", n.IP6.String(), "dev", root},
		)
	}
	return errors.New("no free 10.252.K.0/30 and 10.251.K.0/24 for a node")
}

// addBackend puts backend host i behind the node on 10.251.K.4i/30.
func (n *Node) addBackend(run string, i int) error {
	base := n.BackendPrefix.Addr().As4()
	at := func(last int) netip.Addr {
		return netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(4*i + last)})
	}
	base6 := n.BackendPrefix6.Addr().As16()
	at6 := func(last int) netip.Addr {
		a := base6
		a[15] = byte(4*i + last)
		return netip.AddrFrom16(a)
	}
	h := &Host{Namespace: fmt.Sprintf("%s-b%d", run, i), IP: at(2), RootIP: at(1), IP6: at6(2), RootIP6: at6(1)}
	if out, err := ip("netns", "add", h.Namespace); err != nil {
		return fmt.Errorf("add network namespace %s: %w: %s", h.Namespace, err, out)
	}
	n.onClose(func() error {
		var errs []error
		if err := h.Stop(); err != nil {
			errs = append(errs, err)
		}
		if out, err := ip("netns", "del", h.Namespace); err != nil {
			errs = append(errs, fmt.Errorf("delete network namespace %s: %w: %s", h.Namespace, err, out))
		}
		return errors.Join(errs...)
	})
	nodeSide := fmt.Sprintf("b%d", i)
	err := ipAll(
		[]string{"-n", n.Namespace, "link", "add", nodeSide, "type", "veth", "peer", "name", "eth0", "netns", h.Namespace},
		[]string{"-n", n.Namespace, "addr", "add", h.RootIP.String() + "/30", "dev", nodeSide},
		[]string{"-n", n.Namespace, "-6", "addr", "add", h.RootIP6.String() + "/126", "dev", nodeSide, "nodad"},
		[]string{"-n", n.Namespace, "link", "set", nodeSide, "up"},
		[]string{"-n", h.Namespace, "addr", "add", h.IP.String() + "/30", "dev", "eth0"},
		[]string{"-n", h.Namespace, "-6", "addr", "add", h.IP6.String() + "/126", "dev", "eth0", "nodad"},
		[]string{"-n", h.Namespace, "link", "set", "eth0", "up"},
		[]string{"-n", h.Namespace, "link", "set", "lo", "up"},
		[]string{"-n", h.Namespace, "route", "add", "default", "via", h.RootIP.String()},
		[]string{"-n", h.Namespace, "-6", "route", "add", "default", "via", h.RootIP6.String()},
	)
	if err != nil {
		return err
	}
	n.Backends = append(n.Backends, h)
	return nil
}

// addSink gives the node a link into a namespace that forwards nothing and
// routes the virtual ranges there.
func (n *Node) addSink(ns string) error {
	if err := n.addNamespace(ns); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", n.Namespace, "link", "add", "sink", "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", n.Namespace, "link", "set", "sink", "up"},
		{"-n", ns, "link", "set", "eth0", "up"},
	}
	for _, p := range n.cfg.SinkPrefixes {
		steps = append(steps, []string{"-n", n.Namespace, "route", "add", p.Masked().String(), "dev", "sink"})
	}
	return ipAll(steps...)
}

// addNodeObject creates the Node object kube-proxy reads its node IP from.
func (n *Node) addNodeObject(ctx context.Context) error {
	c := n.cfg.Client
	obj := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   n.Name,
		Labels: map[string]string{corev1.LabelHostname: n.Name},
	}}
	if err := c.Create(ctx, obj); err != nil {
		return fmt.Errorf("create Node %s: %w", n.Name, err)
	}
	n.onClose(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name}}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete Node %s: %w", n.Name, err)
		}
		return nil
	})
	obj.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: n.IP.String()},
		{Type: corev1.NodeInternalIP, Address: n.IP6.String()},
		{Type: corev1.NodeHostName, Address: n.Name},
	}
	if err := c.Status().Update(ctx, obj); err != nil {
		return fmt.Errorf("set the addresses of Node %s: %w", n.Name, err)
	}
	return nil
}

// startForwarder forwards a port on the root side of the node's link to the
// API server, and writes kube-proxy's kubeconfig pointing there.
func (n *Node) startForwarder() error {
	kc, err := clientcmd.Load(n.cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("read kube-proxy's kubeconfig: %w", err)
	}
	kctx, ok := kc.Contexts[kc.CurrentContext]
	if !ok || kc.Clusters[kctx.Cluster] == nil {
		return fmt.Errorf("kube-proxy's kubeconfig has no cluster for its current context %q", kc.CurrentContext)
	}
	cluster := kc.Clusters[kctx.Cluster]
	server, err := url.Parse(cluster.Server)
	if err != nil {
		return fmt.Errorf("kube-proxy's kubeconfig: server %q: %w", cluster.Server, err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(n.HostIP.String(), "0"))
	if err != nil {
		return fmt.Errorf("listen for the node's API connections: %w", err)
	}
	n.fwd = newForwarder(ln, server.Host)
	n.onClose(func() error { n.fwd.close(); return nil })

	// The API server's certificate is for localhost, not for HostIP.
	cluster.Server = "https://" + ln.Addr().String()
	cluster.TLSServerName = "localhost"
	dir, err := os.MkdirTemp("", n.Namespace+"-")
	if err != nil {
		return err
	}
	n.tmpDir = dir
	n.onClose(func() error { return os.RemoveAll(dir) })
	if err := clientcmd.WriteToFile(*kc, filepath.Join(dir, "kubeconfig")); err != nil {
		return fmt.Errorf("write kube-proxy's kubeconfig: %w", err)
	}
	return nil
}

func (n *Node) startProxy() error {
	args := []string{"netns", "exec", n.Namespace, n.cfg.KubeProxy,
		"--kubeconfig=" + filepath.Join(n.tmpDir, "kubeconfig"),
		"--proxy-mode=" + string(n.Mode),
		"--hostname-override=" + n.Name,
		"--cluster-cidr=" + ClusterCIDR,
		// NodePorts on the node's IP only, as in nftables mode by default.
		"--nodeport-addresses=primary",
		// The conntrack table size and TCP timeouts are the machine's,
		// not the node's: leave them as they are.
		"--conntrack-max-per-core=0",
		"--conntrack-tcp-timeout-established=0",
		"--conntrack-tcp-timeout-close-wait=0",
		"--metrics-bind-address=" + proxyMetricsAddr,
		"--healthz-bind-address=" + proxyHealthzAddr,
	}
	cmd := exec.Command("ip", append(args, n.cfg.ExtraArgs...)...)
	out := &SyncBuffer{}
	var w io.Writer = out
	if n.cfg.Log != nil {
		w = io.MultiWriter(out, n.cfg.Log)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// kube-proxy dies with this process even if this process is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kube-proxy in %s: %w", n.Namespace, err)
	}
	s := &server{cmd: cmd, output: out, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	n.proxy = s
	n.onClose(func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-s.done
		}
		return nil
	})
	return nil
}

// waitProxyHealthy polls kube-proxy's healthz, from inside the node, until
// it answers 200: it has synced the rules once.
func (n *Node) waitProxyHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, proxyStartTimeout)
	defer cancel()
	hc := n.HTTPClient(2 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		resp, err := hc.Get("http://" + proxyHealthzAddr + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("healthz answered %s", resp.Status)
		}
		last = err
		select {
		case <-n.proxy.done:
			return fmt.Errorf("kube-proxy exited (%v); output:\n%s", n.proxy.err, n.proxy.output)
		case <-ctx.Done():
			return fmt.Errorf("kube-proxy not healthy: %w (last: %v); output:\n%s", ctx.Err(), last, n.proxy.output)
		case <-tick.C:
		}
	}
}

// Rules returns the node's packet filter rules as kube-proxy's mode sees
// them: `nft list ruleset` or `iptables-save`, run inside the node.
func (n *Node) Rules() (string, error) {
	args := []string{"netns", "exec", n.Namespace, "nft", "list", "ruleset"}
	if n.Mode == ProxyModeIPTables {
		args = []string{"netns", "exec", n.Namespace, "iptables-save"}
	}
	out, err := ip(args...)
	if err != nil {
		return "", fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// ProxyOutput returns what kube-proxy has printed so far.
func (n *Node) ProxyOutput() string {
	if n.proxy == nil {
		return ""
	}
	return n.proxy.output.String()
}

// Dial connects to addr from inside the node, as a pod with the node's
// network would.
func (n *Node) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialIn(ctx, n.Namespace, network, addr)
}

// HTTPClient returns a client whose connections start inside the node, one
// connection per request (so that each request is balanced afresh), with
// timeout per request.
func (n *Node) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       n.Dial,
			DisableKeepAlives: true,
			Proxy:             nil,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ip0 runs one ip command and returns an error carrying its output.
func ip0(args ...string) error {
	if out, err := ip(args...); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// ipAll runs ip commands in order and stops at the first that fails.
func ipAll(steps ...[]string) error {
	for _, args := range steps {
		if err := ip0(args...); err != nil {
			return err
		}
	}
	return nil
}

// forwarder copies TCP connections from a listener to one address.
type forwarder struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newForwarder(ln net.Listener, target string) *forwarder {
	f := &forwarder{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	return f
}

func (f *forwarder) accept() {
	defer f.wg.Done()
	for {
		in, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.pipe(in)
	}
}

func (f *forwarder) track(c net.Conn, on bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		return false
	}
	if on {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
	return true
}

func (f *forwarder) pipe(in net.Conn) {
	defer f.wg.Done()
	defer in.Close()
	out, err := net.DialTimeout("tcp", f.target, 5*time.Second)
	if err != nil {
		return
	}
	defer out.Close()
	if !f.track(in, true) || !f.track(out, true) {
		return
	}
	defer f.track(in, false)
	defer f.track(out, false)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
}

// close stops accepting, ends every forwarded connection and waits for the
// copies to finish.
func (f *forwarder) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
}

// Remains lists what is left of the node on this machine: its network
// namespaces, its link and route in the root namespace. After Close it is
// empty.
func (n *Node) Remains() []string {
	var out []string
	for _, ns := range append([]string{n.Namespace, n.sinkNS}, n.backendNamespaces()...) {
		if ns == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			out = append(out, "network namespace "+ns)
		}
	}
	if n.rootLnk != "" {
		if _, err := net.InterfaceByName(n.rootLnk); err == nil {
			out = append(out, "link "+n.rootLnk)
		}
	}
	if n.BackendPrefix.IsValid() {
		if routes, _ := ip("route", "show", n.BackendPrefix.String()); routes != "" {
			out = append(out, "route "+routes)
		}
	}
	if n.BackendPrefix6.IsValid() {
		if routes, _ := ip("-6", "route", "show", n.BackendPrefix6.String()); routes != "" {
			out = append(out, "route "+routes)
		}
	}
	return out
}

func (n *Node) backendNamespaces() []string {
	out := make([]string, 0, len(n.Backends))
	for _, h := range n.Backends {
		out = append(out, h.Namespace)
	}
	return out
}

// String says where the node is, for logs.
func (n *Node) String() string {
	return n.Name + " (" + n.IP.String() + ", " + string(n.Mode) + ", backends " + n.BackendPrefix.String() + ", " + strconv.Itoa(len(n.Backends)) + " hosts)"
}
