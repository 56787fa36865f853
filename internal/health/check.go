package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProbeKind is the kind of an active probe.
type ProbeKind string

// The probe kinds.
const (
	// ProbeHTTP is an HTTP GET that must answer with an expected status.
	ProbeHTTP ProbeKind = "http"
	// ProbeTCP is a TCP connect that must succeed.
	ProbeTCP ProbeKind = "tcp"
	// ProbeGRPC is a grpc.health.v1.Health/Check call that must answer
	// SERVING.
	ProbeGRPC ProbeKind = "grpc"
)

// Defaults for the fields of a ProbeSpec left zero, as the API documents them.
const (
	DefaultPeriod             = 10 * time.Second
	DefaultTimeout            = 2 * time.Second
	DefaultHealthyThreshold   = 1
	DefaultUnhealthyThreshold = 3
	DefaultPath               = "/"
)

// maxBody is how much of a response body a probe reads before it closes the
// connection: enough to be polite to servers that dislike an early close,
// bounded so that a backend cannot make the prober read without end. It
// bounds a gRPC health answer too (a few bytes when well-formed).
const maxBody = 4 << 10

// maxHeaderBytes bounds the response headers a probe accepts.
const maxHeaderBytes = 16 << 10

// userAgent identifies the prober in backends' access logs.
const userAgent = "netintent-health/v1alpha1"

// ErrUnexpectedStatus is returned (wrapped with the status) when an HTTP probe
// is answered with a status outside its expected ranges.
var ErrUnexpectedStatus = errors.New("unexpected HTTP status")

// StatusError is an HTTP probe's answer outside the expected statuses. It
// matches ErrUnexpectedStatus.
type StatusError struct {
	// Code is the status received.
	Code int
	// Expected lists the expected ranges, such as "200-399".
	Expected string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %d, expected %s", ErrUnexpectedStatus, e.Code, e.Expected)
}

// Is makes a StatusError match ErrUnexpectedStatus.
func (e *StatusError) Is(target error) bool {
	return target == ErrUnexpectedStatus
}

// errInvalidProbe is a spec no probe can run with.
var errInvalidProbe = errors.New("invalid probe")

// StatusRange is an inclusive range of HTTP status codes. Max zero means Min.
type StatusRange struct {
	Min, Max int
}

func (r StatusRange) contains(code int) bool {
	hi := r.Max
	if hi == 0 {
		hi = r.Min
	}
	return code >= r.Min && code <= hi
}

// String formats the range as "200" or "200-399".
func (r StatusRange) String() string {
	if r.Max == 0 || r.Max == r.Min {
		return strconv.Itoa(r.Min)
	}
	return strconv.Itoa(r.Min) + "-" + strconv.Itoa(r.Max)
}

// DefaultStatuses returns the ranges an HTTP probe expects when it names
// none: 200-399.
func DefaultStatuses() []StatusRange {
	return []StatusRange{{Min: 200, Max: 399}}
}

// ProbeSpec is a resolved probe: every field the API leaves to a default is
// given one by the prober (see the Default constants), so two specs that
// probe the same way compare equal.
type ProbeSpec struct {
	// Kind is ProbeHTTP, ProbeTCP or ProbeGRPC.
	Kind ProbeKind
	// Port is the port probed.
	Port int
	// Path is the HTTP request path (HTTP only). Default "/".
	Path string
	// Host is the HTTP Host header (HTTP only). Default: the address probed
	// and the port.
	Host string
	// Statuses are the HTTP statuses that count as a pass (HTTP only).
	// Default 200-399.
	Statuses []StatusRange
	// Service is the service name a gRPC health check asks about (gRPC
	// only). Empty: the server as a whole.
	Service string
	// TLS makes a gRPC health check speak TLS, without verifying the
	// server's certificate (gRPC only). False: plaintext.
	TLS bool
	// Period is the time between probes of one target. Default 10s.
	Period time.Duration
	// Timeout bounds one probe. Default 2s.
	Timeout time.Duration
	// HealthyThreshold is how many passes in a row make an unhealthy target
	// healthy. Default 1.
	HealthyThreshold int
	// UnhealthyThreshold is how many failures in a row make a healthy
	// target unhealthy. Default 3.
	UnhealthyThreshold int
}

// WithDefaults returns the spec with every zero field set to its default.
func (s ProbeSpec) WithDefaults() ProbeSpec {
	if s.Period <= 0 {
		s.Period = DefaultPeriod
	}
	if s.Timeout <= 0 {
		// A probe must not outlast its period.
		s.Timeout = min(DefaultTimeout, s.Period)
	}
	if s.HealthyThreshold <= 0 {
		s.HealthyThreshold = DefaultHealthyThreshold
	}
	if s.UnhealthyThreshold <= 0 {
		s.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	if s.Kind == ProbeHTTP {
		if s.Path == "" {
			s.Path = DefaultPath
		}
		if len(s.Statuses) == 0 {
			s.Statuses = DefaultStatuses()
		} else {
			// Spell every range out, so that {200, 0} and {200, 200}
			// compare equal; copy, not to write into the caller's slice.
			rs := make([]StatusRange, len(s.Statuses))
			for i, r := range s.Statuses {
				if r.Max == 0 {
					r.Max = r.Min
				}
				rs[i] = r
			}
			s.Statuses = rs
		}
	}
	return s
}

// Equal reports whether two specs probe the same way.
func (s ProbeSpec) Equal(o ProbeSpec) bool {
	return s.Kind == o.Kind && s.Port == o.Port && s.Path == o.Path && s.Host == o.Host &&
		slices.Equal(s.Statuses, o.Statuses) && s.Service == o.Service && s.TLS == o.TLS && s.Period == o.Period && s.Timeout == o.Timeout &&
		s.HealthyThreshold == o.HealthyThreshold && s.UnhealthyThreshold == o.UnhealthyThreshold
}

func (s ProbeSpec) statusExpected(code int) bool {
	return slices.ContainsFunc(s.Statuses, func(r StatusRange) bool { return r.contains(code) })
}

// Checker runs single probes. Its zero value is ready to use, refuses
// forbidden targets (ErrForbiddenTarget) on every dial, follows no redirects,
// uses no proxy and opens a new connection for every probe (HTTP and gRPC
// alike). It is safe for
// concurrent use, and must not be copied after first use.
type Checker struct {
	// allowForbidden turns the guard's fixed rule off; Guard's allowed
	// ranges still apply. Tests only: their servers listen on loopback.
	// Unexported so that no caller outside the package can turn the
	// guard off.
	allowForbidden bool

	// HostResolver resolves the host names of targets given by name, as
	// their clients would see them (the operator's DNS server). Nil: the
	// system resolver.
	HostResolver Resolver

	// Guard judges every address dialled. Nil: the fixed rule alone (see
	// ForbiddenReason).
	Guard *Guard

	once   sync.Once
	dialer *net.Dialer
}

func (c *Checker) init() {
	c.once.Do(func() {
		// No TCP keep-alive: a probe's connection lives for one
		// request, and the options would cost a system call each.
		c.dialer = &net.Dialer{Control: c.Guard.control, KeepAlive: -1}
		if c.allowForbidden {
			c.dialer.Control = c.Guard.rangeControl
		}
	})
}

// Result is what one probe of a target found.
type Result struct {
	// Err is nil when the target passes.
	Err error
	// Addresses is how many addresses were probed: one for an IP literal,
	// every address of a host name (up to 16) otherwise; zero when none
	// could be (no address, or one the guard refuses).
	Addresses int
	// Passed is how many of them passed.
	Passed int
}

// Check probes address (an IP literal or a host name) once as spec says,
// within spec's timeout, and returns nil when the target passes.
func (c *Checker) Check(ctx context.Context, address string, spec ProbeSpec) error {
	return c.Probe(ctx, address, spec).Err
}

// Probe probes address (an IP literal or a host name) once as spec says,
// within spec's timeout (resolution included). A host name is resolved by
// HostResolver and every address it has is probed at once; the target
// passes when one of them does. A name with no address fails with
// ErrNoAddress; one with any address the guard refuses fails with
// ErrForbiddenTarget, and none of its addresses is dialled.
func (c *Checker) Probe(ctx context.Context, address string, spec ProbeSpec) Result {
	c.init()
	spec = spec.WithDefaults()
	if spec.Port < 1 || spec.Port > 65535 {
		return Result{Err: fmt.Errorf("%w: port %d is out of range 1-65535", errInvalidProbe, spec.Port)}
	}
	if spec.Kind != ProbeTCP && spec.Kind != ProbeHTTP && spec.Kind != ProbeGRPC {
		return Result{Err: fmt.Errorf("%w: unknown kind %q", errInvalidProbe, spec.Kind)}
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	if ip, ok := ipLiteral(address); ok {
		// An IP literal is judged before anything else, for a clear
		// error whatever the probe kind; the dialer's guard still judges
		// the address dialled.
		if err := c.refuseAddr(ip); err != nil {
			return Result{Err: err}
		}
		err := c.checkAddr(ctx, ip, "", spec)
		return Result{Err: err, Addresses: 1, Passed: passed(err)}
	}
	host := address
	addrs, err := c.resolveTarget(ctx, host)
	if err != nil {
		return Result{Err: err}
	}
	if err := c.judgeResolved(host, addrs); err != nil {
		return Result{Err: err}
	}
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() { errs[i] = c.checkAddr(ctx, a, host, spec) })
	}
	wg.Wait()
	res := Result{Addresses: len(addrs)}
	var first error
	for _, err := range errs {
		res.Passed += passed(err)
		if err != nil && first == nil {
			first = err
		}
	}
	if res.Passed == 0 {
		res.Err = fmt.Errorf("%s: none of %d addresses passes: %w", host, len(addrs), first)
	}
	return res
}

func passed(err error) int {
	if err == nil {
		return 1
	}
	return 0
}

// checkAddr probes one address. name, when not empty, is the host name the
// address was resolved from: an HTTP probe sends it as the Host header
// (unless spec gives one), a gRPC probe as the authority, as a client of
// that name would.
func (c *Checker) checkAddr(ctx context.Context, ip netip.Addr, name string, spec ProbeSpec) error {
	hostPort := netip.AddrPortFrom(ip, uint16(spec.Port)).String()
	switch spec.Kind {
	case ProbeTCP:
		return c.checkTCP(ctx, hostPort)
	case ProbeGRPC:
		return c.checkGRPC(ctx, hostPort, name, spec)
	}
	if spec.Host == "" && name != "" {
		spec.Host = net.JoinHostPort(name, strconv.Itoa(spec.Port))
	}
	return c.checkHTTP(ctx, hostPort, spec)
}

// refuseLiteral returns the guard's refusal of address when it is an IP
// literal the guard refuses; nil for a host name, which is judged when it
// is resolved and dialled.
func (c *Checker) refuseLiteral(address string) error {
	if ip, ok := ipLiteral(address); ok {
		return c.refuseAddr(ip)
	}
	return nil
}

// ipLiteral parses address as an IP address, brackets allowed; false for a
// host name.
func ipLiteral(address string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(address, "["), "]"))
	return ip, err == nil
}

func (c *Checker) checkTCP(ctx context.Context, hostPort string) error {
	conn, err := c.dialer.DialContext(ctx, "tcp", hostPort)
	if err != nil {
		return fmt.Errorf("tcp probe: %w", err)
	}
	_ = conn.Close()
	return nil
}

// checkHTTP sends one GET on a connection of its own and reads the status
// line and headers of the answer, and at most maxBody of its body. It
// writes and reads the connection itself, with net/http's request writer
// and response parser, rather than through an http.Transport: a
// transport's connection machinery (a goroutine to dial, two more to read
// and write, its pool) is made for connections that are reused, and costs
// more CPU than the probe itself when every probe opens its own (about a
// third of the operator's time at thousands of probes a second).
func (c *Checker) checkHTTP(ctx context.Context, hostPort string, spec ProbeSpec) error {
	// The path is appended to a URL whose host is the dialled address, so
	// whatever the path holds it cannot name another host.
	u := "http://" + hostPort + spec.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("http probe: %w", err)
	}
	if spec.Host != "" {
		req.Host = spec.Host
	}
	req.Header = http.Header{"User-Agent": {userAgent}, "Accept": {"*/*"}}
	req.Close = true // "Connection: close": the connection is not reused
	code, err := c.roundTrip(ctx, hostPort, req)
	if err != nil {
		return fmt.Errorf("http probe: GET %s: %w", u, err)
	}
	if !spec.statusExpected(code) {
		return fmt.Errorf("http probe: GET %s: %w", u, &StatusError{Code: code, Expected: formatRanges(spec.Statuses)})
	}
	return nil
}

// readers are the buffered readers of probes' connections, reused.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// maxInterim bounds the informational (1xx) answers a probe skips before
// the final one.
const maxInterim = 5

// roundTrip dials hostPort, writes req and returns the status of the final
// answer. The connection's deadline is ctx's, and ctx's end closes it
// early; at most maxHeaderBytes+maxBody are read from it, so that a
// backend cannot make the prober read without end.
func (c *Checker) roundTrip(ctx context.Context, hostPort string, req *http.Request) (int, error) {
	conn, err := c.dialer.DialContext(ctx, "tcp", hostPort)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return 0, err
		}
	}
	// Cancelled before its deadline (the prober shutting down): the
	// blocked read or write returns at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := req.Write(conn); err != nil {
		return 0, ctxErr(ctx, err)
	}
	br := readers.Get().(*bufio.Reader)
	defer readers.Put(br)
	br.Reset(io.LimitReader(conn, maxHeaderBytes+maxBody))
	defer br.Reset(nil)
	for range maxInterim + 1 {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return 0, ctxErr(ctx, err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			// Read a bounded part of the body and close: the connection
			// is not reused, so what is left unread costs nothing.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
			_ = resp.Body.Close()
			return resp.StatusCode, nil
		}
	}
	return 0, fmt.Errorf("more than %d informational answers", maxInterim)
}

// ctxErr returns ctx's error when ctx has ended (the deadline that cut a
// read or write short), err otherwise. The connection's deadline is ctx's,
// and may pass a moment before ctx's own timer fires.
func ctxErr(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

func formatRanges(rs []StatusRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}
