package testnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// FarmPort is the port the farm serves HTTP on, at every one of its addresses.
const FarmPort = 8080

// MaxFarm is the most addresses a farm holds: nearly all of a /16, whose top
// /30 carries the farm's link to the root namespace.
const MaxFarm = 65000

// farmBacklog is the accept and SYN backlog inside a farm's namespace, so
// that thousands of connects in a burst are not dropped.
const farmBacklog = 65535

// farmLink is the name of the farm's end of its veth pair, inside its
// namespace.
const farmLink = "uplink"

// perHolder is how many addresses one link inside a farm holds. The kernel
// keeps a link's addresses in a list that each add walks: on one link,
// adding 10,000 took 3.5 s here, the next 10,000 a minute, and 65,000 would
// take most of an hour; at 1,024 a link, 65,000 take about 3 s.
const perHolder = 1024

// Farm is one test host standing for many backends: one network namespace
// and one veth pair to the root namespace, every backend address a /32 in
// the namespace, the root namespace routing the whole range through the
// pair, and one HTTP listener (in this process, bound inside the namespace
// on 0.0.0.0:FarmPort) answering for all of them. GET /healthz answers 200,
// or 503 for failing addresses, one request a connection; it tells the
// addresses apart by the local address of each connection.
//
// The pair is on 10.X.255.252/30 (the root side .253, the farm's side .254),
// and the root namespace routes 10.X.0.0/16 via .254, so the root namespace
// needs one neighbour entry however many addresses there are. The backend
// addresses sit, 1,024 a link, on links inside the namespace that lead
// nowhere (veth pairs with both ends there): an address is local to the
// whole namespace whichever link holds it, and short address lists keep
// adding and removing fast. Forwarding is off in the namespace: a packet to
// a vanished address is dropped without an answer, and a connect to it
// times out.
type Farm struct {
	// Namespace is the name of the farm's network namespace.
	Namespace string
	// Addrs are the backend addresses, in order: 10.X.0.1, 10.X.0.2, ...
	// in one /16 that the root namespace did not use.
	Addrs []netip.Addr
	// Prefix is the /16 that holds Addrs, routed from the root namespace
	// into the farm.
	Prefix netip.Prefix

	first    uint32 // Addrs[0] as a number; Addrs[i] is first+i
	rootLink string
	rootIP   netip.Addr
	peerIP   netip.Addr
	failing  []atomic.Bool
	requests []atomic.Uint64
	ln       net.Listener
	served   chan struct{} // closed when serve has returned
	serving  bool          // serve was started

	connMu sync.Mutex
	conns  map[net.Conn]struct{} // open connections; nil once closed

	mu     sync.Mutex // serialises Vanish, Restore and Close
	closed bool
}

// NewFarm makes a farm of n addresses as StartFarm does and closes it when
// the test ends. It skips the test when not run as root (SkipUnlessRoot) and
// fails it when ip is missing.
func NewFarm(t testing.TB, n int) *Farm {
	t.Helper()
	SkipUnlessRoot(t)
	removeStale(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f, err := StartFarm(ctx, n)
	if err != nil {
		t.Fatalf("testnet: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("testnet: %v", err)
		}
	})
	return f
}

// StartFarm makes a farm of n addresses (1 to MaxFarm) and returns once its
// listener serves. For programs without a testing.TB; on error, whatever was
// made is removed again. ctx bounds the making, not the farm's life: it
// lives until Close.
func StartFarm(ctx context.Context, n int) (*Farm, error) {
	if n < 1 || n > MaxFarm {
		return nil, fmt.Errorf("a farm of %d addresses: want 1 to %d (one /16)", n, MaxFarm)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("a farm needs network namespaces and root (euid is %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("a farm needs the ip command of iproute2: %w", err)
	}
	f := &Farm{
		Namespace: fmt.Sprintf("%s%d-%06x-farm", namePrefix, os.Getpid(), rand.N(1<<24)),
		failing:   make([]atomic.Bool, n),
		requests:  make([]atomic.Uint64, n),
		served:    make(chan struct{}),
	}
	if err := f.build(ctx, n); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}

func (f *Farm) build(ctx context.Context, n int) error {
	if out, err := ip("netns", "add", f.Namespace); err != nil {
		return fmt.Errorf("add network namespace %s: %w: %s", f.Namespace, err, out)
	}
	if err := f.tune(); err != nil {
		return err
	}
	if err := f.connect(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var links strings.Builder
	for k := range (n + perHolder - 1) / perHolder {
		fmt.Fprintf(&links, "link add %s type veth peer name %sp\nlink set %[1]s up\nlink set %[2]sp up\n", holder(k), holder(k))
	}
	if err := f.ipBatch(links.String()); err != nil {
		return fmt.Errorf("add the links that hold the addresses: %w", err)
	}
	base := f.Prefix.Addr().As4()
	f.first = be32(base) + 1
	f.Addrs = make([]netip.Addr, n)
	for i := range f.Addrs {
		f.Addrs[i] = f.addr(i)
	}
	if err := f.batch("add", f.Addrs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.listen()
}

// connect claims a free 10.X.0.0/16 by creating the root side of the
// farm's veth pair, named after X (only one process can create a given
// name, so concurrent test binaries never share a range), and routes the
// range into the namespace.
func (f *Farm) connect() error {
	used, err := rootPrefixes()
	if err != nil {
		return err
	}
	routes, err := rootRoutes()
	if err != nil {
		return err
	}
	used = append(used, routes...)
	// 10.128-10.239: clear of the ranges tests and Kubernetes use by
	// default (10.0.0.0/16 and 10.96.0.0/12 for Services, 10.244.0.0/16
	// for pods, 10.25x for this package's hosts and nodes).
	for _, k := range rand.Perm(112) {
		x := byte(128 + k)
		prefix := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, x, 0, 0}), 16)
		if overlapsAny(prefix, used) {
			continue
		}
		root := fmt.Sprintf("nif%d", x)
		out, err := ip("link", "add", root, "type", "veth", "peer", "name", farmLink, "netns", f.Namespace)
		if err != nil {
			if strings.Contains(out, "File exists") {
				continue
			}
			return fmt.Errorf("add veth pair %s/%s: %w: %s", root, farmLink, err, out)
		}
		f.rootLink = root
		f.Prefix = prefix
		f.rootIP = netip.AddrFrom4([4]byte{10, x, 255, 253})
		f.peerIP = netip.AddrFrom4([4]byte{10, x, 255, 254})
		return ipAll(
			[]string{"addr", "add", f.rootIP.String() + "/30", "dev", root},
			[]string{"link", "set", root, "up"},
			[]string{"-n", f.Namespace, "addr", "add", f.peerIP.String() + "/30", "dev", farmLink},
			[]string{"-n", f.Namespace, "link", "set", farmLink, "up"},
			[]string{"-n", f.Namespace, "link", "set", "lo", "up"},
			[]string{"route", "add", prefix.String(), "via", f.peerIP.String(), "dev", root, "src", f.rootIP.String()},
		)
	}
	return errors.New("no free /16 in 10.128.0.0-10.239.255.255 for a farm")
}

// holder is the name of the k-th link holding addresses in a farm.
func holder(k int) string { return fmt.Sprintf("a%d", k) }

// farmSysctls are set in a farm's namespace before anything is made there.
var farmSysctls = []struct{ path, value string }{
	// Bursts of thousands of connects are neither refused nor dropped.
	{"/proc/sys/net/core/somaxconn", fmt.Sprint(farmBacklog)},
	{"/proc/sys/net/ipv4/tcp_max_syn_backlog", fmt.Sprint(farmBacklog)},
	// Off, so that packets to vanished addresses are dropped.
	{"/proc/sys/net/ipv4/ip_forward", "0"},
	// No IPv6 link-local addresses, duplicate detection or router
	// solicitations on the many links.
	{"/proc/sys/net/ipv6/conf/default/disable_ipv6", "1"},
	{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "1"},
}

// tune sets farmSysctls inside the namespace.
func (f *Farm) tune() error {
	return inNamespace(f.Namespace, func() error {
		for _, s := range farmSysctls {
			if err := os.WriteFile(s.path, []byte(s.value+"\n"), 0o644); err != nil {
				return fmt.Errorf("set %s in %s: %w", s.path, f.Namespace, err)
			}
		}
		return nil
	})
}

// listen starts the HTTP server on a socket opened inside the namespace.
func (f *Farm) listen() error {
	var ln net.Listener
	err := inNamespace(f.Namespace, func() error {
		var lc net.ListenConfig
		l, err := lc.Listen(context.Background(), "tcp4", fmt.Sprintf("0.0.0.0:%d", FarmPort))
		if err != nil {
			return err
		}
		ln = l
		return nil
	})
	if err != nil {
		return fmt.Errorf("listen in %s: %w", f.Namespace, err)
	}
	f.ln = ln
	// Go sizes the backlog by the somaxconn it read once, in whichever
	// namespace it first listened; listen(2) again sets this socket's
	// (the kernel caps it at the namespace's somaxconn, raised above).
	if err := relisten(ln, farmBacklog); err != nil {
		return fmt.Errorf("set the backlog of the listener in %s: %w", f.Namespace, err)
	}
	f.connMu.Lock()
	f.conns = map[net.Conn]struct{}{}
	f.connMu.Unlock()
	f.serving = true
	go func() {
		defer close(f.served)
		f.serve()
	}()
	return nil
}

func relisten(ln net.Listener, backlog int) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("listener is a %T", ln)
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), backlog) }); err != nil {
		return err
	}
	return lerr
}

// The farm's answers, whole: every connection carries one request and is
// closed after its answer, as probes ask.
var (
	farmOK       = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
	farmFailing  = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 8\r\nConnection: close\r\n\r\nfailing\n")
	farmNotFound = []byte("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n")
)

// farmReaders are the buffered readers of the farm's connections, reused.
var farmReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 1024) }}

// serve accepts connections until the listener is closed, each answered
// on a goroutine of its own. The farm answers one request a connection,
// parsed by net/http, with a whole answer written at once: a server of
// thousands of addresses on the machine that probes them spends as little
// of its CPUs as it can (net/http's server, with its per-connection
// machinery, spent about twice as much a probe).
func (f *Farm) serve() {
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a connection reset before it was accepted
		}
		f.connMu.Lock()
		if f.conns == nil {
			f.connMu.Unlock()
			_ = conn.Close()
			return
		}
		f.conns[conn] = struct{}{}
		f.connMu.Unlock()
		go f.answer(conn)
	}
}

// answer reads conn's request and answers GET /healthz with 200, or 503
// for a failing address, anything else with 404, and closes it.
func (f *Farm) answer(conn net.Conn) {
	defer func() {
		f.connMu.Lock()
		delete(f.conns, conn)
		f.connMu.Unlock()
		_ = conn.Close()
	}()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := farmReaders.Get().(*bufio.Reader)
	br.Reset(conn)
	req, err := http.ReadRequest(br)
	br.Reset(nil)
	farmReaders.Put(br)
	if err != nil {
		return
	}
	answer := farmNotFound
	if i, ok := f.indexOfConn(conn); ok && req.Method == http.MethodGet && req.URL.Path == "/healthz" {
		f.requests[i].Add(1)
		answer = farmOK
		if f.failing[i].Load() {
			answer = farmFailing
		}
	}
	_, _ = conn.Write(answer)
}

// indexOfConn returns the index in Addrs of the address conn was made to.
func (f *Farm) indexOfConn(conn net.Conn) (int, bool) {
	tcp, ok := conn.LocalAddr().(*net.TCPAddr)
	if !ok {
		return 0, false
	}
	a, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return 0, false
	}
	return f.index(a.Unmap())
}

// index returns the index of a in Addrs.
func (f *Farm) index(a netip.Addr) (int, bool) {
	if !a.Is4() {
		return 0, false
	}
	v := be32(a.As4())
	if v < f.first || v-f.first >= uint32(len(f.Addrs)) {
		return 0, false
	}
	return int(v - f.first), true
}

func (f *Farm) addr(i int) netip.Addr {
	v := f.first + uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func be32(b [4]byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// SetFailing makes /healthz of addrs answer 503 (failing true) or 200 again
// (false). Addresses not of the farm are ignored.
func (f *Farm) SetFailing(addrs []netip.Addr, failing bool) {
	for _, a := range addrs {
		if i, ok := f.index(a); ok {
			f.failing[i].Store(failing)
		}
	}
}

// Vanish removes addrs from the farm in one ip batch, so that connects to
// them time out, as to a dead node; connections already open to them stop
// getting answers. Every address must be of the farm and present.
func (f *Farm) Vanish(addrs []netip.Addr) error {
	return f.change("del", addrs)
}

// Restore adds addrs, vanished before, back in one ip batch.
func (f *Farm) Restore(addrs []netip.Addr) error {
	return f.change("add", addrs)
}

func (f *Farm) change(verb string, addrs []netip.Addr) error {
	for _, a := range addrs {
		if _, ok := f.index(a); !ok {
			return fmt.Errorf("testnet: %s is not an address of the farm %s", a, f.Namespace)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("testnet: the farm %s is closed", f.Namespace)
	}
	if err := f.batch(verb, addrs); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	return nil
}

// batch adds or deletes addrs, each on the link that holds it, in one ip
// -batch run.
func (f *Farm) batch(verb string, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	var b strings.Builder
	for _, a := range addrs {
		i, _ := f.index(a)
		fmt.Fprintf(&b, "addr %s %s/32 dev %s\n", verb, a, holder(i/perHolder))
	}
	if err := f.ipBatch(b.String()); err != nil {
		return fmt.Errorf("addr %s of %d addresses: %w", verb, len(addrs), err)
	}
	return nil
}

// ipBatch runs the ip commands of script, one a line, in the farm's
// namespace, in one run of ip.
func (f *Farm) ipBatch(script string) error {
	cmd := exec.Command("ip", "-n", f.Namespace, "-batch", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s -batch: %w: %s", f.Namespace, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Requests returns how many /healthz requests each address has received so
// far, indexed as Addrs.
func (f *Farm) Requests() []uint64 {
	out := make([]uint64, len(f.requests))
	for i := range f.requests {
		out[i] = f.requests[i].Load()
	}
	return out
}

// Close stops the listener and removes the farm's route, link and
// namespace. A second Close does nothing.
func (f *Farm) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	var errs []error
	if f.ln != nil {
		_ = f.ln.Close()
		// Connections are closed, not drained: those to vanished
		// addresses would never drain.
		f.connMu.Lock()
		for conn := range f.conns {
			_ = conn.Close()
		}
		f.conns = nil
		f.connMu.Unlock()
		if f.serving {
			<-f.served
		}
	}
	if f.rootLink != "" {
		// Deleting one end deletes the pair and the route through it, at
		// once; the namespace itself may outlive its deletion for a while.
		if out, err := ip("link", "del", f.rootLink); err != nil && !strings.Contains(out, "Cannot find device") {
			errs = append(errs, fmt.Errorf("delete link %s: %w: %s", f.rootLink, err, out))
		}
	}
	if out, err := ip("netns", "del", f.Namespace); err != nil && !strings.Contains(out, "No such file") {
		errs = append(errs, fmt.Errorf("delete network namespace %s: %w: %s", f.Namespace, err, out))
	}
	return errors.Join(errs...)
}

// rootRoutes returns the IPv4 destinations routed in the root namespace's
// main table, other than the default route.
func rootRoutes() ([]netip.Prefix, error) {
	out, err := ip("-4", "route", "show", "table", "main")
	if err != nil {
		return nil, fmt.Errorf("list routes: %w: %s", err, out)
	}
	var ps []netip.Prefix
	for line := range strings.Lines(out) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		dst := fields[0]
		if dst == "blackhole" || dst == "unreachable" || dst == "prohibit" {
			if len(fields) < 2 {
				continue
			}
			dst = fields[1]
		}
		if dst == "default" {
			continue
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		p, err := netip.ParsePrefix(dst)
		if err != nil {
			continue
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}
