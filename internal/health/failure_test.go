package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestFailureClassOfErrors(t *testing.T) {
	opErr := func(errno syscall.Errno) error {
		return fmt.Errorf("tcp probe: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)})
	}
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{opErr(syscall.ECONNREFUSED), FailureConnectionRefused},
		{opErr(syscall.ECONNRESET), FailureConnectionReset},
		{opErr(syscall.EPIPE), FailureConnectionReset},
		{fmt.Errorf("http probe: %w", io.EOF), FailureConnectionReset},
		{opErr(syscall.EHOSTUNREACH), FailureNoRoute},
		{opErr(syscall.ENETUNREACH), FailureNoRoute},
		{fmt.Errorf("tcp probe: %w", context.DeadlineExceeded), FailureTimeout},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, FailureTimeout},
		{&net.DNSError{Err: "no such host", Name: "api.example.com", IsNotFound: true}, FailureNameNotFound},
		{&net.DNSError{Err: "i/o timeout", Name: "api.example.com", IsTimeout: true}, FailureTimeout},
		{&net.DNSError{Err: "server misbehaving", Name: "api.example.com"}, FailureNameResolution},
		{fmt.Errorf("http probe: GET x: %w", &StatusError{Code: 503, Expected: "200-399"}), "HTTPStatus 503"},
		{&StatusError{Code: 302, Expected: "200"}, "HTTPStatus 302"},
		{&ForbiddenError{Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback"}, FailureForbiddenTarget},
		{fmt.Errorf("dial: %w", &ForbiddenError{Addr: netip.MustParseAddr("10.1.0.1"), Reason: reasonNotAllowed}), FailureForbiddenTarget},
		{fmt.Errorf("%w: port 0", errInvalidProbe), FailureInvalidProbe},
		{fmt.Errorf("resolving api.example.com: %w: %w", errResolution, errors.New("every upstream failed")), FailureNameResolution},
		{fmt.Errorf("resolving api.example.com: %w: %w", errResolution, context.DeadlineExceeded), FailureNameResolution},
		{errors.New("net/http: HTTP/1.x transport connection broken: malformed HTTP response"), FailureProbeError},
		{fmt.Errorf("grpc probe: %w", &ServingStatusError{Status: healthpb.HealthCheckResponse_NOT_SERVING}), FailureGRPCNotServing},
		{&ServingStatusError{Status: healthpb.HealthCheckResponse_UNKNOWN}, FailureGRPCStatusUnknown},
		{&ServingStatusError{Status: healthpb.HealthCheckResponse_SERVICE_UNKNOWN}, FailureGRPCServiceUnknown},
		{&ServingStatusError{Status: 42}, FailureGRPCStatusUnknown},
		{fmt.Errorf("grpc probe: %w", status.Error(codes.Unimplemented, "unknown service grpc.health.v1.Health")), FailureGRPCHealthUnimplemented},
		{status.Error(codes.NotFound, "unknown service"), FailureGRPCServiceUnknown},
		{fmt.Errorf("grpc probe: %w", status.Error(codes.DeadlineExceeded, "context deadline exceeded")), FailureTimeout},
		{status.Error(codes.Unavailable, "connection closed before server preface received"), "GRPCError Unavailable"},
		{status.Error(codes.PermissionDenied, "no"), "GRPCError PermissionDenied"},
		{fmt.Errorf("grpc probe: %w", opErr(syscall.ECONNREFUSED)), FailureConnectionRefused},
	}
	for _, tt := range tests {
		if got := FailureClass(tt.err); got != tt.want {
			t.Errorf("FailureClass(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestFailureClassOfRealProbes probes real loopback servers that fail in
// each way, and checks the class the status would show.
func TestFailureClassOfRealProbes(t *testing.T) {
	b := newBackend(t)
	c := &Checker{allowForbidden: true}

	// A port with nothing listening: take one, then close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	// A server that resets every connection it accepts.
	resetter, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resetter.Close() })
	go func() {
		for {
			conn, err := resetter.AcceptTCP()
			if err != nil {
				return
			}
			_ = conn.SetLinger(0) // close with RST
			conn.Close()
		}
	}()

	const timeout = 300 * time.Millisecond
	tests := []struct {
		name string
		spec ProbeSpec
		want string
	}{
		{"refused", ProbeSpec{Kind: ProbeTCP, Port: closedPort}, FailureConnectionRefused},
		{"http refused", ProbeSpec{Kind: ProbeHTTP, Port: closedPort}, FailureConnectionRefused},
		{"status", ProbeSpec{Kind: ProbeHTTP, Port: b.port(), Path: "/fail"}, "HTTPStatus 500"},
		{"timeout", ProbeSpec{Kind: ProbeHTTP, Port: b.port(), Path: "/slow", Timeout: timeout}, FailureTimeout},
		{"reset", ProbeSpec{Kind: ProbeHTTP, Port: resetter.Addr().(*net.TCPAddr).Port}, FailureConnectionReset},
		{"bad port", ProbeSpec{Kind: ProbeTCP, Port: 70000}, FailureInvalidProbe},
		{"passes", ProbeSpec{Kind: ProbeHTTP, Port: b.port(), Path: "/ok"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Check(t.Context(), "127.0.0.1", tt.spec)
			if got := FailureClass(err); got != tt.want {
				t.Errorf("class of %v = %q, want %q", err, got, tt.want)
			}
		})
	}
	var guarded Checker
	err = guarded.Check(t.Context(), "127.0.0.1", ProbeSpec{Kind: ProbeHTTP, Port: b.port(), Path: "/ok"})
	if got := FailureClass(err); got != FailureForbiddenTarget {
		t.Errorf("class of %v = %q, want %q", err, got, FailureForbiddenTarget)
	}
}

// TestProberRefusedTargetsAreUnhealthyAtOnce: a target whose address the
// guard refuses is unhealthy from the moment it is set, with no probe and
// whatever its thresholds; a host name that resolves to a refused address
// flips at its first probe. Status says ForbiddenTarget and why.
func TestProberRefusedTargetsAreUnhealthyAtOnce(t *testing.T) {
	g, err := ParseGuard("10.244.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	p := NewProber(Options{Checker: &Checker{Guard: g}})
	spec := ProbeSpec{Kind: ProbeTCP, Port: 80, Period: 50 * time.Millisecond, Timeout: 20 * time.Millisecond, UnhealthyThreshold: 3}
	p.Set(nsName("shop/web"), []Target{
		{ID: "outside", Address: "192.0.2.10", Spec: spec},
		{ID: "nat64", Address: "64:ff9b::7f00:1", Spec: spec},
		{ID: "host", Address: "localhost", Spec: spec},
	})
	st := p.Status(nsName("shop/web"))
	for id, why := range map[string]string{"outside": reasonNotAllowed, "nat64": "a NAT64 address embedding 127.0.0.1, which is loopback"} {
		if s := st[id]; s.Healthy || s.Failure != FailureForbiddenTarget || s.Forbidden != why || !s.LastProbe.IsZero() {
			t.Errorf("%s before any probe: %+v, want unhealthy, ForbiddenTarget, %q", id, s, why)
		}
	}
	if s := st["host"]; !s.Healthy || s.Failure != "" {
		t.Errorf("a host name before its first probe: %+v, want healthy (judged when resolved)", s)
	}

	flips := routeFlips(t, p)
	startProber(t, p)
	f := flips.wait(t, nsName("shop/web"), 5*time.Second)
	if f.TargetID != "host" || f.Healthy {
		t.Fatalf("flip %+v, want host unhealthy", f)
	}
	s := p.Status(nsName("shop/web"))["host"]
	if s.Healthy || s.ConsecutiveFailures != 1 || s.Failure != FailureForbiddenTarget || s.Forbidden != "loopback" {
		t.Errorf("localhost after one probe: %+v, want unhealthy after one failure, ForbiddenTarget, loopback", s)
	}
}
