package health

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// grpcBackend is a loopback gRPC server with the standard health service,
// counting the connections it is given and holding how many are open.
type grpcBackend struct {
	ln *countingListener

	mu            sync.Mutex
	lastAuthority string
}

type countingListener struct {
	net.Listener
	opened atomic.Int64
	open   atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.opened.Add(1)
	l.open.Add(1)
	return &countedConn{Conn: conn, open: &l.open}, nil
}

type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// newGRPCBackend starts a gRPC server on loopback. health nil: a server
// without the health service. cert nil: plaintext.
func newGRPCBackend(t *testing.T, health healthpb.HealthServer, cert *tls.Certificate) *grpcBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &grpcBackend{ln: &countingListener{Listener: ln}}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		b.mu.Lock()
		if a := md.Get(":authority"); len(a) > 0 {
			b.lastAuthority = a[0]
		}
		b.mu.Unlock()
		return handler(ctx, req)
	})}
	if cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewServerTLSFromCert(cert)))
	}
	srv := grpc.NewServer(opts...)
	if health != nil {
		healthpb.RegisterHealthServer(srv, health)
	}
	go func() { _ = srv.Serve(b.ln) }()
	t.Cleanup(srv.Stop)
	return b
}

func (b *grpcBackend) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *grpcBackend) authority() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastAuthority
}

// stalledHealth answers no health check before the caller gives up.
type stalledHealth struct {
	healthpb.UnimplementedHealthServer
}

func (stalledHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// selfSigned makes a certificate for a name no probe asks for: the probe
// must accept it without verification.
func selfSigned(t *testing.T) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "unrelated.invalid"},
		DNSNames:     []string{"unrelated.invalid"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestGRPCCheck probes real gRPC health servers that answer in each way
// and checks the verdict and the class the status would show.
func TestGRPCCheck(t *testing.T) {
	health := grpchealth.NewServer()
	health.SetServingStatus("shop.Payments", healthpb.HealthCheckResponse_SERVING)
	health.SetServingStatus("shop.Ledger", healthpb.HealthCheckResponse_NOT_SERVING)
	health.SetServingStatus("shop.Starting", healthpb.HealthCheckResponse_UNKNOWN)
	health.SetServingStatus("shop.Gone", healthpb.HealthCheckResponse_SERVICE_UNKNOWN)
	plain := newGRPCBackend(t, health, nil)
	secure := newGRPCBackend(t, health, selfSigned(t))
	noHealth := newGRPCBackend(t, nil, nil)
	stalled := newGRPCBackend(t, stalledHealth{}, nil)
	http1 := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(http1.Close)
	http1Port := http1.Listener.Addr().(*net.TCPAddr).Port
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	c := &Checker{allowForbidden: true}
	const timeout = 300 * time.Millisecond
	grpcSpec := func(port int, service string) ProbeSpec {
		return ProbeSpec{Kind: ProbeGRPC, Port: port, Service: service, Timeout: timeout}
	}
	withTLS := func(s ProbeSpec) ProbeSpec { s.TLS = true; return s }
	tests := []struct {
		name    string
		spec    ProbeSpec
		want    string // failure class, "" for a pass
		wantErr error
	}{
		{name: "server SERVING passes", spec: grpcSpec(plain.port(), "")},
		{name: "service SERVING passes", spec: grpcSpec(plain.port(), "shop.Payments")},
		{name: "NOT_SERVING", spec: grpcSpec(plain.port(), "shop.Ledger"), want: FailureGRPCNotServing, wantErr: ErrNotServing},
		{name: "UNKNOWN", spec: grpcSpec(plain.port(), "shop.Starting"), want: FailureGRPCStatusUnknown, wantErr: ErrNotServing},
		{name: "SERVICE_UNKNOWN", spec: grpcSpec(plain.port(), "shop.Gone"), want: FailureGRPCServiceUnknown, wantErr: ErrNotServing},
		{name: "service not registered", spec: grpcSpec(plain.port(), "shop.Nothing"), want: FailureGRPCServiceUnknown},
		{name: "no health service", spec: grpcSpec(noHealth.port(), ""), want: FailureGRPCHealthUnimplemented},
		{name: "no answer in time", spec: grpcSpec(stalled.port(), ""), want: FailureTimeout},
		{name: "refused", spec: grpcSpec(closedPort, ""), want: FailureConnectionRefused},
		{name: "not a gRPC server", spec: grpcSpec(http1Port, ""), want: "GRPCError Unavailable"},
		{name: "TLS without verification passes", spec: withTLS(grpcSpec(secure.port(), "shop.Payments"))},
		{name: "TLS NOT_SERVING", spec: withTLS(grpcSpec(secure.port(), "shop.Ledger")), want: FailureGRPCNotServing},
		{name: "plaintext to a TLS server", spec: grpcSpec(secure.port(), ""), want: "GRPCError Unavailable"},
		{name: "TLS to a plaintext server", spec: withTLS(grpcSpec(plain.port(), "")), want: "GRPCError Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := c.Check(t.Context(), "127.0.0.1", tt.spec)
			if got := FailureClass(err); got != tt.want {
				t.Fatalf("class of %v = %q, want %q", err, got, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("%v is not %v", err, tt.wantErr)
			}
			// Nothing may outlast the probe's timeout much: no retry, no
			// backoff, no wait for a reconnect.
			if took := time.Since(start); took > timeout+time.Second {
				t.Errorf("the probe took %s, timeout %s", took, timeout)
			}
		})
	}
}

// TestGRPCCheckOpensAndClosesAConnectionPerProbe: every probe dials (and
// so is guarded) and leaves no connection behind.
func TestGRPCCheckOpensAndClosesAConnectionPerProbe(t *testing.T) {
	b := newGRPCBackend(t, grpchealth.NewServer(), nil)
	c := &Checker{allowForbidden: true}
	spec := ProbeSpec{Kind: ProbeGRPC, Port: b.port()}
	for range 3 {
		if err := c.Check(t.Context(), "127.0.0.1", spec); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.ln.opened.Load(); got != 3 {
		t.Errorf("3 probes opened %d connections, want 3", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.ln.open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open 5s after the probes", b.ln.open.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGRPCCheckDialsThroughTheGuard: the gRPC client's own dial goes
// through the guard's Control hook, so an address refused there is never
// connected to, even when nothing judged it before the dial.
func TestGRPCCheckDialsThroughTheGuard(t *testing.T) {
	b := newGRPCBackend(t, grpchealth.NewServer(), nil)
	loopback := netip.MustParseAddr("127.0.0.1")
	spec := ProbeSpec{Kind: ProbeGRPC, Port: b.port()}.WithDefaults()

	var guarded Checker // the fixed rule: loopback is refused
	guarded.init()
	err := guarded.checkAddr(t.Context(), loopback, "", spec)
	if !errors.Is(err, ErrForbiddenTarget) || FailureClass(err) != FailureForbiddenTarget {
		t.Errorf("probe of loopback = %v (class %q), want ForbiddenTarget", err, FailureClass(err))
	}
	elsewhere, err := ParseGuard("10.244.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	outside := &Checker{allowForbidden: true, Guard: elsewhere}
	outside.init()
	if err := outside.checkAddr(t.Context(), loopback, "", spec); !errors.Is(err, ErrForbiddenTarget) {
		t.Errorf("probe outside the allowed ranges = %v, want ForbiddenTarget", err)
	}
	if got := b.ln.opened.Load(); got != 0 {
		t.Errorf("the server was given %d connections by refused probes", got)
	}
	// Through Probe, as the prober calls it.
	if res := guarded.Probe(t.Context(), "127.0.0.1", spec); FailureClass(res.Err) != FailureForbiddenTarget {
		t.Errorf("Probe of loopback = %+v, want ForbiddenTarget", res)
	}
}

// TestGRPCCheckOfANameSendsItAsAuthority: a target given by name is probed
// at every address it resolves to, and asked as a client of that name asks.
func TestGRPCCheckOfANameSendsItAsAuthority(t *testing.T) {
	b := newGRPCBackend(t, grpchealth.NewServer(), nil)
	names := fixedNames{"api.example.com": {netip.MustParseAddr("127.0.0.1")}}
	c := &Checker{allowForbidden: true, HostResolver: ResolverFunc(names.resolve, errNoSuchName)}
	res := c.Probe(t.Context(), "api.example.com", ProbeSpec{Kind: ProbeGRPC, Port: b.port()})
	if res.Err != nil || res.Addresses != 1 || res.Passed != 1 {
		t.Fatalf("Probe = %+v", res)
	}
	if got, want := b.authority(), fmt.Sprintf("api.example.com:%d", b.port()); got != want {
		t.Errorf("authority %q, want %q", got, want)
	}
	if err := c.Check(t.Context(), "127.0.0.1", ProbeSpec{Kind: ProbeGRPC, Port: b.port()}); err != nil {
		t.Fatal(err)
	}
	if got, want := b.authority(), fmt.Sprintf("127.0.0.1:%d", b.port()); got != want {
		t.Errorf("authority of an address probe %q, want %q", got, want)
	}
}

// TestGRPCCheckFlipsWithTheServer: the same checker follows a server's
// status as it changes, connection by connection.
func TestGRPCCheckFlipsWithTheServer(t *testing.T) {
	health := grpchealth.NewServer()
	b := newGRPCBackend(t, health, nil)
	c := &Checker{allowForbidden: true}
	spec := ProbeSpec{Kind: ProbeGRPC, Port: b.port(), Service: "shop.Payments"}
	for _, st := range []healthpb.HealthCheckResponse_ServingStatus{
		healthpb.HealthCheckResponse_SERVING,
		healthpb.HealthCheckResponse_NOT_SERVING,
		healthpb.HealthCheckResponse_SERVING,
	} {
		health.SetServingStatus("shop.Payments", st)
		err := c.Check(t.Context(), "127.0.0.1", spec)
		if pass := err == nil; pass != (st == healthpb.HealthCheckResponse_SERVING) {
			t.Errorf("server %s: probe error %v", st, err)
		}
	}
}

// BenchmarkCheckByKind measures one probe of each kind against a loopback
// server in the same process (so the server's work is counted too): what
// a gRPC check costs next to an HTTP one, each on a new connection.
func BenchmarkCheckByKind(b *testing.B) {
	grpcSrv := grpc.NewServer()
	healthpb.RegisterHealthServer(grpcSrv, grpchealth.NewServer())
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = grpcSrv.Serve(grpcLn) }()
	b.Cleanup(grpcSrv.Stop)
	httpSrv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	b.Cleanup(httpSrv.Close)

	c := &Checker{allowForbidden: true}
	for _, bc := range []struct {
		name string
		spec ProbeSpec
	}{
		{"tcp", ProbeSpec{Kind: ProbeTCP, Port: httpSrv.Listener.Addr().(*net.TCPAddr).Port}},
		{"http", ProbeSpec{Kind: ProbeHTTP, Port: httpSrv.Listener.Addr().(*net.TCPAddr).Port}},
		{"grpc", ProbeSpec{Kind: ProbeGRPC, Port: grpcLn.Addr().(*net.TCPAddr).Port}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.Check(b.Context(), "127.0.0.1", bc.spec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
