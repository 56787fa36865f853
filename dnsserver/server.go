package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Defaults for the zero values of Config.
const (
	DefaultListenAddress   = ":5353"
	DefaultClusterDomain   = "cluster.local"
	DefaultTTL             = 30
	DefaultUpstreamTimeout = 2 * time.Second
	DefaultCacheSize       = 10000
	DefaultCacheMaxBytes   = 32 << 20
	DefaultMaxConcurrent   = 1000
	DefaultTCPIdleTimeout  = 10 * time.Second
	DefaultMaxTCPQueries   = 128
)

// MinCacheMaxBytes is the smallest Config.CacheMaxBytes: one answer of the
// largest DNS message.
const MinCacheMaxBytes = dns.MaxMsgSize

// shutdownTimeout bounds how long Start waits for in-flight queries on stop.
const shutdownTimeout = 5 * time.Second

// ErrNoAddresses is returned by Server.Resolve for a name that does not exist
// or has no address records.
var ErrNoAddresses = errors.New("name has no addresses")

// ErrNotListening is returned by Server.ReadyCheck until the sockets are bound.
var ErrNotListening = errors.New("dns server is not listening yet")

// Config configures a Server. Zero values take the defaults above.
type Config struct {
	// ListenAddress is the host:port served over both UDP and TCP. With port
	// 0, one free port is chosen for both.
	ListenAddress string
	// ClusterDomain is the cluster's DNS domain; the server is authoritative
	// for svc.<ClusterDomain>.
	ClusterDomain string
	// Upstreams are the resolvers (host:port; a bare host means port 53) that
	// answer the out-of-zone targets of ExternalName Services, tried in order.
	// Without any, such names answer SERVFAIL.
	Upstreams []string
	// TTL is the default TTL of answers, in seconds; a Service's
	// v1alpha1.AnnotationDNSTTL overrides it.
	TTL uint32
	// UpstreamTimeout bounds one exchange with one upstream.
	UpstreamTimeout time.Duration
	// CacheSize is the most upstream answers kept.
	CacheSize int
	// CacheMaxBytes bounds the memory of the kept upstream answers (an
	// estimate from their wire length): many large answers evict each other
	// before CacheSize is reached.
	CacheMaxBytes int
	// MaxConcurrent is the most questions waiting on upstreams at once;
	// beyond it a question is answered SERVFAIL at once, so a slow or
	// blackholed upstream cannot make the server hold a goroutine per
	// query.
	MaxConcurrent int
	// TCPIdleTimeout closes a TCP connection idle this long between queries.
	TCPIdleTimeout time.Duration
	// MaxTCPQueries closes a TCP connection after this many queries.
	MaxTCPQueries int
}

func (c Config) withDefaults() Config {
	if c.ListenAddress == "" {
		c.ListenAddress = DefaultListenAddress
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = DefaultClusterDomain
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.UpstreamTimeout <= 0 {
		c.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if c.CacheSize <= 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.CacheMaxBytes == 0 {
		c.CacheMaxBytes = DefaultCacheMaxBytes
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.TCPIdleTimeout <= 0 {
		c.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if c.MaxTCPQueries == 0 {
		c.MaxTCPQueries = DefaultMaxTCPQueries
	}
	return c
}

// Server serves the zone over UDP and TCP. It is a manager.Runnable that runs
// on every replica, leader or not.
type Server struct {
	cfg      Config
	index    *Index
	resolver *resolver
	handler  *handler

	started   atomic.Bool
	listening chan struct{}
	mu        sync.Mutex
	addr      string
}

var (
	_ manager.Runnable               = &Server{}
	_ manager.LeaderElectionRunnable = &Server{}
)

// New returns a Server answering from idx. It checks the configuration and
// registers the DNS metrics; it opens no socket until Start.
func New(cfg Config, idx *Index) (*Server, error) {
	cfg = cfg.withDefaults()
	if idx == nil {
		return nil, errors.New("dns server: nil index")
	}
	if _, ok := dns.IsDomainName(cfg.ClusterDomain); !ok {
		return nil, fmt.Errorf("dns server: cluster domain %q is not a domain name", cfg.ClusterDomain)
	}
	if cfg.TTL > maxTTL {
		return nil, fmt.Errorf("dns server: TTL %d is above %d", cfg.TTL, maxTTL)
	}
	if cfg.CacheMaxBytes < MinCacheMaxBytes {
		return nil, fmt.Errorf("dns server: cache bound of %d bytes is below %d, the size of the largest DNS message", cfg.CacheMaxBytes, MinCacheMaxBytes)
	}
	if cfg.MaxConcurrent < 0 {
		return nil, fmt.Errorf("dns server: most upstream queries in flight %d: give at least 1", cfg.MaxConcurrent)
	}
	if _, _, err := net.SplitHostPort(cfg.ListenAddress); err != nil {
		return nil, fmt.Errorf("dns server: listen address %q: %w", cfg.ListenAddress, err)
	}
	upstreams := make([]string, 0, len(cfg.Upstreams))
	for _, u := range cfg.Upstreams {
		addr, err := normalizeUpstream(u)
		if err != nil {
			return nil, fmt.Errorf("dns server: %w", err)
		}
		upstreams = append(upstreams, addr)
	}
	cfg.Upstreams = upstreams
	var fwd *forwarder
	if len(upstreams) > 0 {
		fwd = newForwarder(upstreams, cfg.UpstreamTimeout, cfg.CacheSize, cfg.CacheMaxBytes, cfg.MaxConcurrent)
	}
	registerMetrics()
	log := logf.Log.WithName("dns")
	r := newResolver(newZone(cfg.ClusterDomain, cfg.TTL), idx, fwd, log)
	return &Server{
		cfg:       cfg,
		index:     idx,
		resolver:  r,
		handler:   newHandler(r, log),
		listening: make(chan struct{}),
	}, nil
}

// Resolve returns the IPv4 then the IPv6 addresses of host as the server's
// own answers would give them: host is an absolute name whether or not it
// ends in a dot (no search path applies); names in the zone come from the
// index, others from the upstreams through the same cache and limits as DNS
// questions, following CNAMEs. It is for callers in the process, such as a
// prober checking the target of an ExternalName Service. ctx bounds the
// wait. It returns ErrNoAddresses, wrapped, when the name has none, and an
// error when it cannot tell (no upstream answered, or the index has not
// synced).
func (s *Server) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	return s.resolver.addresses(ctx, host)
}

// NeedLeaderElection is false: every replica answers DNS.
func (s *Server) NeedLeaderElection() bool { return false }

// Listening is closed once the UDP and TCP sockets are bound.
func (s *Server) Listening() <-chan struct{} { return s.listening }

// Addr is the bound host:port, the same for UDP and TCP, or "" before
// Listening is closed.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ReadyCheck is a healthz.Checker: it fails until the server listens and its
// index has synced.
func (s *Server) ReadyCheck(req *http.Request) error {
	select {
	case <-s.listening:
	default:
		return ErrNotListening
	}
	return s.index.ReadyCheck(req)
}

// Start binds the listen address over UDP and TCP, serves until ctx is done,
// then drains in-flight queries. It returns an error if the sockets cannot be
// bound or a listener fails. A Server starts once.
func (s *Server) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("dns server: already started")
	}
	log := logf.FromContext(ctx).WithName("dns")
	s.handler.log, s.resolver.log = log, log

	tcpLn, udpConn, err := listen(s.cfg.ListenAddress)
	if err != nil {
		return err
	}
	idle := s.cfg.TCPIdleTimeout
	udp := &dns.Server{PacketConn: udpConn, Handler: s.handler, UDPSize: dns.DefaultMsgSize, DecorateReader: s.handler.decorateReader}
	tcp := &dns.Server{
		Listener:      tcpLn,
		Handler:       s.handler,
		IdleTimeout:   func() time.Duration { return idle },
		MaxTCPQueries: s.cfg.MaxTCPQueries,
	}
	servers := []*dns.Server{udp, tcp}
	started := make(chan struct{}, len(servers))
	errs := make(chan error, len(servers))
	for _, srv := range servers {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		go func() { errs <- srv.ActivateAndServe() }()
	}
	// A server can only be shut down once it has started; wait for both, or
	// for one to fail first.
	for range servers {
		select {
		case <-started:
		case err := <-errs:
			tcpLn.Close()
			udpConn.Close()
			return fmt.Errorf("dns server: serving: %w", err)
		}
	}

	s.mu.Lock()
	s.addr = tcpLn.Addr().String()
	s.mu.Unlock()
	close(s.listening)
	log.Info("DNS server listening", "address", s.addr, "zone", s.resolver.zone.origin, "upstreams", s.cfg.Upstreams)

	var serveErr error
	remaining := len(servers)
	select {
	case <-ctx.Done():
	case err := <-errs:
		remaining--
		serveErr = fmt.Errorf("dns server: serving: %w", err)
	}
	s.handler.stopping.Store(true)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		// A server that already stopped reports "not started"; nothing to do.
		_ = srv.ShutdownContext(shutdownCtx)
	}
	for ; remaining > 0; remaining-- {
		<-errs
	}
	return serveErr
}

// listen binds TCP and UDP on one address. When the port is 0, the port the
// kernel gave TCP is then taken for UDP too, retrying if it is busy for UDP.
func listen(address string) (net.Listener, net.PacketConn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, nil, fmt.Errorf("dns server: listen address %q: %w", address, err)
	}
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", address)
		if err != nil {
			return nil, nil, fmt.Errorf("dns server: listening on tcp %s: %w", address, err)
		}
		bound := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, bound))
		if err == nil {
			return ln, pc, nil
		}
		ln.Close()
		if port != "0" || attempt == 10 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("dns server: listening on udp %s: %w", net.JoinHostPort(host, bound), err)
		}
	}
}
