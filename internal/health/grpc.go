package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// ErrNotServing is returned (wrapped with the status) when a gRPC health
// check is answered with a serving status other than SERVING.
var ErrNotServing = errors.New("gRPC health status is not SERVING")

// ServingStatusError is a gRPC health check's answer other than SERVING.
// It matches ErrNotServing.
type ServingStatusError struct {
	// Status is the serving status received: NOT_SERVING, UNKNOWN or
	// SERVICE_UNKNOWN (or a value this version does not know).
	Status healthpb.HealthCheckResponse_ServingStatus
}

func (e *ServingStatusError) Error() string {
	return fmt.Sprintf("gRPC health status %s, expected SERVING", e.Status)
}

// Is makes a ServingStatusError match ErrNotServing.
func (e *ServingStatusError) Is(target error) bool {
	return target == ErrNotServing
}

// errSecondDial is what a gRPC probe's connection answers when the client
// would dial again: a probe is one connection, never a reconnect.
var errSecondDial = errors.New("a probe dials once")

// probeDial is the one connection of a gRPC probe. It dials through the
// checker's guarded dialer, only the address probed whatever the client
// asks for, and keeps the dial's error: the client reports a failed dial as
// a status (Unavailable) with the error as text, while the failure class
// needs the error itself.
type probeDial struct {
	dialer   *net.Dialer
	hostPort string
	// probe is the probe's context: its timeout bounds the dial too,
	// which the client makes under a context of its own, not the call's.
	probe context.Context

	mu      sync.Mutex
	dialled bool
	err     error
}

func (d *probeDial) dial(ctx context.Context, _ string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dialled {
		return nil, errSecondDial
	}
	d.dialled = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.probe, cancel)
	defer stop()
	conn, err := d.dialer.DialContext(ctx, "tcp", d.hostPort)
	if err != nil && d.probe.Err() != nil {
		// The probe's timeout ended the dial, whatever the dialer's
		// error says about the cancel.
		err = fmt.Errorf("%w: %w", d.probe.Err(), err)
	}
	d.err = err
	return conn, err
}

// dialErr waits for a dial in progress and returns its error.
func (d *probeDial) dialErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// checkGRPC makes one grpc.health.v1.Health/Check call to hostPort on a
// new connection, closed after. name, when not empty, is the host name the
// address was resolved from: it is sent as the authority (and, with TLS,
// as the server name), as a client of that name would send it.
func (c *Checker) checkGRPC(ctx context.Context, hostPort, name string, spec ProbeSpec) error {
	d := &probeDial{dialer: c.dialer, hostPort: hostPort, probe: ctx}
	creds := insecure.NewCredentials()
	if spec.TLS {
		// The probe judges whether the server answers, not who it is:
		// TLS here is for servers that speak nothing else.
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// A dialer of its own also keeps the client from any proxy the
		// environment names: the probe dials (and guards) the backend.
		grpc.WithContextDialer(d.dial),
		grpc.WithDisableRetry(),
		grpc.WithDisableServiceConfig(),
		grpc.WithUserAgent(userAgent),
		grpc.WithMaxHeaderListSize(maxHeaderBytes),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxBody)),
	}
	if name != "" {
		opts = append(opts, grpc.WithAuthority(net.JoinHostPort(name, portOf(hostPort))))
	}
	// passthrough: the address is dialled as it is; no resolver runs.
	conn, err := grpc.NewClient("passthrough:///"+hostPort, opts...)
	if err != nil {
		return fmt.Errorf("grpc probe: %w", err)
	}
	defer func() { _ = conn.Close() }()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: spec.Service})
	if err != nil {
		if dialErr := d.dialErr(); dialErr != nil {
			return fmt.Errorf("grpc probe: %w", dialErr)
		}
		return fmt.Errorf("grpc probe: Check %q: %w", spec.Service, err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc probe: Check %q: %w", spec.Service, &ServingStatusError{Status: st})
	}
	return nil
}

func portOf(hostPort string) string {
	_, port, _ := net.SplitHostPort(hostPort)
	return port
}

// grpcClass is the failure class of a gRPC health check's failure, "" when
// err is none.
func grpcClass(err error) string {
	var serving *ServingStatusError
	if errors.As(err, &serving) {
		switch serving.Status {
		case healthpb.HealthCheckResponse_NOT_SERVING:
			return FailureGRPCNotServing
		case healthpb.HealthCheckResponse_SERVICE_UNKNOWN:
			return FailureGRPCServiceUnknown
		}
		return FailureGRPCStatusUnknown
	}
	var rpc interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &rpc) {
		return ""
	}
	switch code := rpc.GRPCStatus().Code(); code {
	case codes.DeadlineExceeded:
		return FailureTimeout
	case codes.Unimplemented:
		return FailureGRPCHealthUnimplemented
	case codes.NotFound:
		// How the protocol says the server does not know the service.
		return FailureGRPCServiceUnknown
	default:
		return failureGRPCError + " " + code.String()
	}
}
