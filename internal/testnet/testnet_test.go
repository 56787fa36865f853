package testnet

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestMain(m *testing.M) {
	MaybeServe()
	os.Exit(m.Run())
}

func TestHostsServeStopAndStartAgain(t *testing.T) {
	SkipUnlessRoot(t) // the subtest's New would skip only the subtest
	var namespaces, links []string
	t.Run("hosts", func(t *testing.T) {
		tn := New(t, 2)
		if len(tn.Hosts) != 2 {
			t.Fatalf("got %d hosts, want 2", len(tn.Hosts))
		}
		a, b := tn.Hosts[0], tn.Hosts[1]
		for _, h := range tn.Hosts {
			namespaces = append(namespaces, h.Namespace)
			links = append(links, h.link)
			if !strings.HasPrefix(h.Namespace, namePrefix) {
				t.Errorf("namespace %q does not start with %q", h.Namespace, namePrefix)
			}
			if h.IP.IsLoopback() || !h.IP.IsPrivate() || h.IP.As4()[0] != 10 || h.IP.As4()[1] != 254 || h.IP.As4()[3] != 2 {
				t.Errorf("host IP %s is not 10.254.N.2", h.IP)
			}
		}
		if a.IP == b.IP || a.Namespace == b.Namespace {
			t.Fatalf("hosts share an address or namespace: %+v %+v", a, b)
		}

		ctx := t.Context()
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		wantHealthz(t, a, http.StatusOK)
		wantConnect(t, a.Addr(TCPPort), nil)
		if got := grpcHealth(t, a, ""); got != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("gRPC health of a started host: %s, want SERVING", got)
		}
		// b is not started: nothing listens there.
		wantConnect(t, b.Addr(TCPPort), syscall.ECONNREFUSED)

		if err := a.Start(ctx); err == nil {
			t.Error("a second Start of a running host succeeded")
		}
		if err := a.Stop(); err != nil {
			t.Fatal(err)
		}
		wantConnect(t, a.Addr(HTTPPort), syscall.ECONNREFUSED)
		wantConnect(t, a.Addr(TCPPort), syscall.ECONNREFUSED)
		wantConnect(t, a.Addr(GRPCPort), syscall.ECONNREFUSED)
		if err := a.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}

		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		wantHealthz(t, a, http.StatusOK)

		// The server runs inside the namespace: the host's address exists
		// only there, and the root namespace has no listener of its own.
		if ln, err := net.Listen("tcp", a.Addr(0)); err == nil {
			ln.Close()
			t.Errorf("the host's address %s is local to the root namespace", a.IP)
		}

		// Blackholed, a host lets connections time out rather than refuse.
		if err := b.Blackhole(true); err != nil {
			t.Fatal(err)
		}
		d := net.Dialer{Timeout: 300 * time.Millisecond}
		_, err := d.Dial("tcp", b.Addr(TCPPort))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("dial to a blackholed host: got %v, want a timeout", err)
		}
		if err := b.Blackhole(false); err != nil {
			t.Fatal(err)
		}
		wantConnect(t, b.Addr(TCPPort), syscall.ECONNREFUSED)
	})

	// The subtest's cleanup has run: no namespace, link or server is left.
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, ns := range namespaces {
		if strings.Contains(string(out), ns) {
			t.Errorf("namespace %s left after cleanup", ns)
		}
	}
	for _, l := range links {
		if _, err := net.InterfaceByName(l); err == nil {
			t.Errorf("link %s left after cleanup", l)
		}
	}
}

func TestStartFailsWhenServerCannotListen(t *testing.T) {
	h := New(t, 1).Hosts[0]
	// Take the host's address away: the server cannot listen on it.
	if out, err := ip("-n", h.Namespace, "addr", "flush", "dev", h.peer); err != nil {
		t.Fatalf("flush: %v: %s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := h.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("Start with no address to listen on: got %v, want an error saying the server exited", err)
	}
}

func wantHealthz(t *testing.T, h *Host, status int) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get("http://" + h.Addr(HTTPPort) + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET /healthz: status %d, want %d", resp.StatusCode, status)
	}
}

func wantConnect(t *testing.T, addr string, want error) {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err == nil {
		conn.Close()
	}
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("dial %s: got %v, want %v", addr, err, want)
	}
}

// TestSetHealthyFailsOnlyHealthz: SetHealthy(false) makes /healthz answer
// 503 and the gRPC health service NOT_SERVING, and nothing else.
func TestSetHealthyFailsOnlyHealthz(t *testing.T) {
	h := New(t, 1).Hosts[0]
	if err := h.SetHealthy(false); err == nil {
		t.Error("SetHealthy on a host that is not started succeeded")
	}
	if err := h.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	whoami := func() string {
		resp, err := client.Get("http://" + h.Addr(HTTPPort) + "/whoami")
		if err != nil {
			t.Fatalf("GET /whoami: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if got := whoami(); got != h.IP.String() {
		t.Fatalf("GET /whoami = %q, want %s", got, h.IP)
	}
	for _, healthy := range []bool{false, true} {
		if err := h.SetHealthy(healthy); err != nil {
			t.Fatal(err)
		}
		want := http.StatusOK
		if !healthy {
			want = http.StatusServiceUnavailable
		}
		// The server reads the command a moment later.
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := client.Get("http://" + h.Addr(HTTPPort) + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("healthy=%v: /healthz answers %d, want %d", healthy, resp.StatusCode, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		wantGRPC := healthpb.HealthCheckResponse_SERVING
		if !healthy {
			wantGRPC = healthpb.HealthCheckResponse_NOT_SERVING
		}
		for _, service := range []string{"", GRPCService} {
			if got := grpcHealth(t, h, service); got != wantGRPC {
				t.Fatalf("healthy=%v: gRPC health of %q is %s, want %s", healthy, service, got, wantGRPC)
			}
		}
		// Traffic is served either way.
		if got := whoami(); got != h.IP.String() {
			t.Fatalf("healthy=%v: GET /whoami = %q, want %s", healthy, got, h.IP)
		}
	}
}

// grpcHealth asks the host's gRPC health service about service.
func grpcHealth(t *testing.T, h *Host, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+h.Addr(GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("gRPC health check of %q: %v", service, err)
	}
	return resp.GetStatus()
}

// TestHostsAreDualStack: a host serves on an IPv6 unique local address as
// well as its IPv4 one, and closing the listeners of one address leaves
// the other serving.
func TestHostsAreDualStack(t *testing.T) {
	h := New(t, 1).Hosts[0]
	if !h.IP6.Is6() || h.IP6.Is4In6() || !h.IP6.IsPrivate() || h.IP6.As16()[0] != 0xfd {
		t.Fatalf("host IPv6 address %s is not a unique local address", h.IP6)
	}
	if err := h.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{h.Addr(HTTPPort), h.Addr6(HTTPPort)} {
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
		resp, err := client.Get("http://" + addr + "/whoami")
		if err != nil {
			t.Fatalf("GET %s/whoami: %v", addr, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if host, _, _ := net.SplitHostPort(addr); string(body) != host {
			t.Errorf("GET %s/whoami = %q", addr, body)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := h.CloseListeners(ctx, h.IP6); err != nil {
		t.Fatal(err)
	}
	for _, port := range []int{HTTPPort, TCPPort, GRPCPort} {
		wantConnect(t, h.Addr6(port), syscall.ECONNREFUSED)
		wantConnect(t, h.Addr(port), nil)
	}
	wantHealthz(t, h, http.StatusOK)
}
