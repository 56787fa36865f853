package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The ports every host serves on while started.
const (
	// HTTPPort answers HTTP: 200 on /healthz, 404 elsewhere.
	HTTPPort = 8080
	// TCPPort accepts TCP connections and closes them.
	TCPPort = 9090
	// GRPCPort serves the standard gRPC health service
	// (grpc.health.v1.Health): SERVING for the server ("") and for
	// GRPCService, NOT_SERVING while the host is not healthy (SetHealthy).
	GRPCPort = 9091
)

// GRPCService is the service a host's gRPC health service knows besides
// the server as a whole.
const GRPCService = "netintent.testnet.Backend"

// namePrefix starts the name of every network namespace this package makes.
const namePrefix = "nitest-"

// startTimeout bounds Start when its context has no deadline.
const startTimeout = 15 * time.Second

// stopTimeout is how long Stop waits after SIGTERM before it kills.
const stopTimeout = 5 * time.Second

// Net is a set of test hosts, removed when the test ends.
type Net struct {
	// Hosts are the test hosts, each in its own network namespace.
	Hosts []*Host
}

// Host is one test host: a network namespace reached from the root
// namespace at IP.
type Host struct {
	// Namespace is the name of the host's network namespace.
	Namespace string
	// IP is the host's address, inside its namespace.
	IP netip.Addr
	// RootIP is the address of the other end of the host's link: the root
	// namespace for hosts made by New, the node for a Node's backends.
	RootIP netip.Addr
	// IP6 and RootIP6 are the IPv6 addresses of the two ends, for hosts
	// made by New (unique local addresses, fd6e:7465:7374:N::2 and ::1):
	// every such host is dual-stack, and its server listens on both.
	IP6, RootIP6 netip.Addr

	link string // root side of the veth pair
	peer string // host side of the veth pair

	mu  sync.Mutex
	srv *server
}

type server struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	output *SyncBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // the process's exit; set before done closes
}

// SkipUnlessRoot skips the test when not run as root: test hosts, farms and
// nodes are network namespaces, which need root. CI runs the tests as root
// (.ci/run checks it), so there they all run; as another user `make test`
// runs the rest and names each test skipped here.
func SkipUnlessRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: network namespaces (euid is %d)", os.Geteuid())
	}
}

// New makes n test hosts and registers their removal (servers stopped,
// namespaces and links deleted) with t.Cleanup. It skips the test when not
// run as root (SkipUnlessRoot) and fails it when ip is missing.
func New(t testing.TB, n int) *Net {
	t.Helper()
	SkipUnlessRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("testnet: the ip command of iproute2 is needed to make test hosts: %v", err)
	}
	removeStale(t)
	run := fmt.Sprintf("%s%d-%06x", namePrefix, os.Getpid(), rand.N(1<<24))
	tn := &Net{}
	for i := range n {
		h := &Host{Namespace: fmt.Sprintf("%s-%d", run, i)}
		if out, err := ip("netns", "add", h.Namespace); err != nil {
			t.Fatalf("testnet: add network namespace %s: %v: %s", h.Namespace, err, out)
		}
		t.Cleanup(func() { h.remove(t) })
		if err := h.connect(); err != nil {
			t.Fatalf("testnet: %v", err)
		}
		tn.Hosts = append(tn.Hosts, h)
	}
	return tn
}

// connect joins the host's namespace to the root namespace on a free /30.
func (h *Host) connect() error {
	used, err := rootPrefixes()
	if err != nil {
		return err
	}
	// A subnet is claimed by creating the root-side link named after it:
	// the kernel lets only one process create a name, so concurrent test
	// binaries never share a subnet.
	for _, n := range rand.Perm(256) {
		prefix := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 254, byte(n), 0}), 30)
		if overlapsAny(prefix, used) {
			continue
		}
		root, peer := fmt.Sprintf("nit%dr", n), fmt.Sprintf("nit%dh", n)
		out, err := ip("link", "add", root, "type", "veth", "peer", "name", peer, "netns", h.Namespace)
		if err != nil {
			if strings.Contains(out, "File exists") {
				continue
			}
			return fmt.Errorf("add veth pair %s/%s: %w: %s", root, peer, err, out)
		}
		h.link, h.peer = root, peer
		h.RootIP = netip.AddrFrom4([4]byte{10, 254, byte(n), 1})
		h.IP = netip.AddrFrom4([4]byte{10, 254, byte(n), 2})
		// The /64 is named after the same n: the root-side link name
		// claims both. nodad: usable at once, no duplicate address
		// detection to wait for.
		h.RootIP6 = netip.AddrFrom16([16]byte{0xfd, 0x6e, 0x74, 0x65, 0x73, 0x74, 0, byte(n), 15: 1})
		h.IP6 = netip.AddrFrom16([16]byte{0xfd, 0x6e, 0x74, 0x65, 0x73, 0x74, 0, byte(n), 15: 2})
		steps := [][]string{
			{"addr", "add", h.RootIP.String() + "/30", "dev", root},
			{"-6", "addr", "add", h.RootIP6.String() + "/64", "dev", root, "nodad"},
			{"link", "set", root, "up"},
			{"-n", h.Namespace, "addr", "add", h.IP.String() + "/30", "dev", peer},
			{"-n", h.Namespace, "-6", "addr", "add", h.IP6.String() + "/64", "dev", peer, "nodad"},
			{"-n", h.Namespace, "link", "set", peer, "up"},
			{"-n", h.Namespace, "link", "set", "lo", "up"},
		}
		for _, args := range steps {
			if out, err := ip(args...); err != nil {
				return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
			}
		}
		return nil
	}
	return errors.New("no free subnet in 10.254.0.0/16 for a test host")
}

// remove stops the host's server and deletes its namespace and link.
func (h *Host) remove(t testing.TB) {
	if err := h.Stop(); err != nil {
		t.Errorf("testnet: %v", err)
	}
	// Deleting the namespace deletes the veth pair with it; the link is
	// deleted too in case the pair was made but never moved. The kernel
	// removes the pair after the namespace is gone, so the link may vanish
	// between the lookup and the delete ("No such device").
	if out, err := ip("netns", "del", h.Namespace); err != nil {
		t.Errorf("testnet: delete network namespace %s: %v: %s", h.Namespace, err, out)
	}
	if h.link != "" {
		if out, err := ip("link", "del", h.link); err != nil && !strings.Contains(out, "Cannot find device") && !strings.Contains(out, "No such device") {
			t.Errorf("testnet: delete link %s: %v: %s", h.link, err, out)
		}
	}
}

// Addr returns the host's address and port as host:port.
func (h *Host) Addr(port int) string {
	return net.JoinHostPort(h.IP.String(), strconv.Itoa(port))
}

// Addr6 returns the host's IPv6 address and port as [host]:port.
func (h *Host) Addr6(port int) string {
	return net.JoinHostPort(h.IP6.String(), strconv.Itoa(port))
}

// addrs are the addresses the host's server listens on.
func (h *Host) addrs() []netip.Addr {
	out := []netip.Addr{h.IP}
	if h.IP6.IsValid() {
		out = append(out, h.IP6)
	}
	return out
}

// CloseListeners makes the host's server close its listeners on addr (the
// host's IPv4 or IPv6 address), so that connections to that address are
// refused while the other address goes on serving: a backend whose one
// family's listener died. It returns once the server has closed them.
func (h *Host) CloseListeners(ctx context.Context, addr netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv == nil {
		return fmt.Errorf("testnet: the server of %s is not running", h.Namespace)
	}
	if _, err := io.WriteString(h.srv.stdin, closeCommand+" "+addr.String()+"\n"); err != nil {
		return fmt.Errorf("testnet: tell the server of %s: %w", h.Namespace, err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	target := net.JoinHostPort(addr.String(), strconv.Itoa(HTTPPort))
	for {
		d := net.Dialer{Timeout: 500 * time.Millisecond}
		conn, err := d.DialContext(ctx, "tcp", target)
		if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		if conn != nil {
			_ = conn.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testnet: %s still accepts connections: %w", target, ctx.Err())
		case <-tick.C:
		}
	}
}

// Start runs the host's server, inside its namespace, on HTTPPort, TCPPort
// and GRPCPort, and returns once each answers from the root namespace. ctx bounds
// that wait (15s if it has no deadline); the server runs until Stop or the
// end of the test.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		return fmt.Errorf("testnet: the server of %s is already running", h.Namespace)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("testnet: find the test binary: %w", err)
	}
	// -test.run=^$: should MaybeServe not be called, the binary runs no
	// tests and exits, and the error below says why.
	cmd := exec.Command("ip", "netns", "exec", h.Namespace, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(),
		serveEnv+"="+fmt.Sprintf("http:%d,tcp:%d,grpc:%d", HTTPPort, TCPPort, GRPCPort),
		addrEnv+"="+joinAddrs(h.addrs()))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	s := &server{cmd: cmd, stdin: stdin, output: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.output, s.output
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testnet: start server in %s: %w", h.Namespace, err)
	}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	h.srv = s

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	for _, addr := range h.addrs() {
		for _, port := range []int{HTTPPort, TCPPort, GRPCPort} {
			if err := s.waitAnswer(ctx, net.JoinHostPort(addr.String(), strconv.Itoa(port))); err != nil {
				_ = h.stopLocked()
				return fmt.Errorf("testnet: server in %s: %w", h.Namespace, err)
			}
		}
	}
	return nil
}

func joinAddrs(addrs []netip.Addr) string {
	parts := make([]string, len(addrs))
	for i, a := range addrs {
		parts[i] = a.String()
	}
	return strings.Join(parts, ",")
}

// waitAnswer polls addr from the root namespace until it accepts a
// connection, the server exits, or ctx is done.
func (s *server) waitAnswer(ctx context.Context, addr string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		d := net.Dialer{Timeout: 500 * time.Millisecond}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-s.done:
			return fmt.Errorf("exited (%v) before %s answered; does TestMain call testnet.MaybeServe? output: %s", s.err, addr, s.output)
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer: %w (last: %v); output: %s", addr, ctx.Err(), err, s.output)
		case <-tick.C:
		}
	}
}

// Stop stops the host's server and returns once it has exited, so that its
// ports refuse connections. Stopping a stopped host does nothing.
func (h *Host) Stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopLocked()
}

func (h *Host) stopLocked() error {
	s := h.srv
	if s == nil {
		return nil
	}
	h.srv = nil
	_ = s.stdin.Close()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	kill := time.NewTimer(stopTimeout)
	defer kill.Stop()
	select {
	case <-s.done:
	case <-kill.C:
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("testnet: server in %s ignored SIGTERM for %v and was killed; output: %s", h.Namespace, stopTimeout, s.output)
	}
	var exit *exec.ExitError
	if errors.As(s.err, &exit) && !exit.Exited() {
		// Ended by SIGTERM before the server installed its handler.
		return nil
	}
	if s.err != nil {
		return fmt.Errorf("testnet: server in %s: %w; output: %s", h.Namespace, s.err, s.output)
	}
	return nil
}

// SetHealthy makes the host's /healthz answer 200 and its gRPC health
// service SERVING (true, as after Start), or 503 and NOT_SERVING (false),
// while everything else it serves goes on answering: a backend that fails
// its health check but still carries traffic.
func (h *Host) SetHealthy(healthy bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv == nil {
		return fmt.Errorf("testnet: the server of %s is not running", h.Namespace)
	}
	line := sickCommand
	if healthy {
		line = wellCommand
	}
	if _, err := io.WriteString(h.srv.stdin, line+"\n"); err != nil {
		return fmt.Errorf("testnet: tell the server of %s: %w", h.Namespace, err)
	}
	return nil
}

// Blackhole makes the host drop (on true) or again send (on false) every
// packet to the root namespace, so that connections to it time out rather
// than being refused. It is for hosts made by New.
func (h *Host) Blackhole(on bool) error {
	verb := "del"
	if on {
		verb = "add"
	}
	args := []string{"-n", h.Namespace, "route", verb, "blackhole", h.RootIP.String() + "/32"}
	if out, err := ip(args...); err != nil {
		return fmt.Errorf("testnet: ip %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// ip runs the ip command and returns its combined output.
func ip(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// rootPrefixes returns the IPv4 prefixes of the root namespace's addresses.
func rootPrefixes() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		addr, ok := netip.AddrFromSlice(ipn.IP)
		if !ok || !addr.Unmap().Is4() {
			continue
		}
		ones, _ := ipn.Mask.Size()
		out = append(out, netip.PrefixFrom(addr.Unmap(), ones).Masked())
	}
	return out, nil
}

func overlapsAny(p netip.Prefix, ps []netip.Prefix) bool {
	for _, q := range ps {
		if p.Overlaps(q) {
			return true
		}
	}
	return false
}

// removeStale deletes the namespaces left by test binaries that died before
// their cleanup ran; their names carry their process id.
func removeStale(t testing.TB) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue
		}
		if out, err := ip("netns", "del", e.Name()); err != nil {
			t.Logf("testnet: delete stale network namespace %s: %v: %s", e.Name(), err, out)
		}
	}
}

// SyncBuffer is a bytes.Buffer safe for a writing process and a reader,
// for capturing the output of processes a test runs.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ByIP is a value for each host, by the host's address.
func ByIP[V any](m map[*Host]V) map[string]V {
	out := make(map[string]V, len(m))
	for h, v := range m {
		out[h.IP.String()] = v
	}
	return out
}

// Main runs a package's tests, or, in a test host's network namespace, the
// host's server (MaybeServe): the TestMain of a package whose tests start
// hosts.
func Main(m *testing.M) {
	MaybeServe()
	os.Exit(m.Run())
}
