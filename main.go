// Command netintent is the netintent operator: it turns NetworkIntents into
// Services and healthy EndpointSlices, allocates LoadBalancer addresses from
// AddressPools, and answers DNS for the cluster zone.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/controllers"
	"github.com/netintent/netintent/dnsserver"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/members"
)

func init() {
	ctrlmetrics.Registry.MustRegister(health.Collectors()...)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "netintent:", err)
		os.Exit(1)
	}
}

// config holds the command-line flags.
type config struct {
	metricsAddr      string
	metricsSecure    bool
	probeAddr        string
	leaderElect      bool
	leaderElectionNS string
	leaseDuration    time.Duration
	renewDeadline    time.Duration
	retryPeriod      time.Duration
	dnsListenAddress string
	clusterDomain    string
	dnsUpstreams     string
	dnsTTL           uint
	dnsCacheMaxBytes string
	dnsMaxConcurrent int
	probeMaxInFlight int
	probeAllowed     string
	pprofAddr        string
	kubeAPIQPS       float64
	kubeAPIBurst     int
	endpointsQPS     float64
	endpointsBurst   int
	gcPercent        int
	intentWorkers    int
	probeShare       bool
	shareLease       time.Duration
	memberName       string
}

// The client budgets' defaults: in make bench, 1,000 intents applied at
// once were all Ready in 24.9-28.4 s at Karpenter's 200 requests a second
// (burst 300) and in 14.5-15.0 s at 500 (burst 1000). EndpointSlice writes, which take dead backends out of traffic, have a
// budget of their own sized for a node's worth of backends flipping at
// once. The API server's priority and fairness protects it from a client
// this busy.
const (
	defaultKubeAPIQPS     = 500
	defaultKubeAPIBurst   = 1000
	defaultEndpointsQPS   = 500
	defaultEndpointsBurst = 1000
	defaultIntentWorkers  = 8
)

// The leader election timings' defaults. Every replica probes and keeps its
// verdicts, so a new leader acts at once on what it has observed: what a
// crash of the leader costs is the time until a standby holds the Lease.
// A standby sees the lease expire LeaseDuration after it last saw a renewal,
// and looks every RetryPeriod to 2.2 RetryPeriods (client-go's jitter); so a
// SIGKILLed leader is replaced 2.7-4.3 s after its death at these values,
// inside a 5 s budget for a backend dying at that moment (kube-vip's
// 5 s/3 s/1 s take 4.0-9.4 s). The leader gives up 2 s after its last
// renewal if it cannot renew (it exits, and a standby takes over); 0.7 s
// more of the lease is a margin before a standby may take it. A leader that
// stops (SIGTERM) releases the Lease, and a standby takes it on its next
// look, within 0.66 s. The Lease is read or renewed about three times a
// second by each replica.
//
// Probing is shared among the replicas (internal/members): each probes the
// share of the targets it owns. A member's Lease is shorter than the
// leader's, since a member that merely misses renewals costs only probes
// sent twice for a while, while a crashed member's share goes unprobed
// until its Lease runs out: 2 s, renewed every 500 ms, puts a crashed
// leader's share back in probing 1.5-2 s after the crash, before a standby
// holds the leader's Lease.
const (
	defaultShareLease    = 2 * time.Second
	defaultLeaseDuration = 3 * time.Second
	defaultRenewDeadline = 2 * time.Second
	defaultRetryPeriod   = 300 * time.Millisecond
)

func parseFlags() (config, zap.Options) {
	var c config
	flag.StringVar(&c.metricsAddr, "metrics-bind-address", ":8443", "Address of the metrics endpoint (HTTPS with authentication unless --metrics-secure=false); 0 disables it.")
	flag.BoolVar(&c.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, for callers authorised to get /metrics.")
	flag.StringVar(&c.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.BoolVar(&c.leaderElect, "leader-elect", false, "Elect a leader among replicas; only the leader writes Services, EndpointSlices and status. DNS and health checks run on every replica (see --probe-share).")
	flag.StringVar(&c.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
	flag.DurationVar(&c.leaseDuration, "leader-elect-lease-duration", defaultLeaseDuration, "How long standbys wait, after the last renewal they saw, before they take the Lease of a leader that stopped renewing it: with the jitter of --leader-elect-retry-period, the cost of a leader's crash. Whole seconds, as the Lease records it.")
	flag.DurationVar(&c.renewDeadline, "leader-elect-renew-deadline", defaultRenewDeadline, "How long the leader keeps trying to renew the Lease before it gives up leading (and exits); less than --leader-elect-lease-duration.")
	flag.DurationVar(&c.retryPeriod, "leader-elect-retry-period", defaultRetryPeriod, "How often the leader renews the Lease and standbys try to take it (standbys with a jitter of up to 1.2 times this); times 1.2, less than --leader-elect-renew-deadline. A leader that stops releases the Lease, and a standby takes it within 2.2 times this.")
	flag.StringVar(&c.dnsListenAddress, "dns-listen-address", ":5353", "UDP and TCP address of the embedded DNS server; empty disables it.")
	flag.StringVar(&c.clusterDomain, "cluster-domain", "cluster.local", "Cluster domain; the DNS server is authoritative for svc.<cluster-domain>.")
	flag.StringVar(&c.dnsUpstreams, "dns-upstreams", "", "Comma-separated host:port resolvers for ExternalName targets outside the zone (default: the nameservers in /etc/resolv.conf). Target probes resolve names through the DNS server, as clients do; with the DNS server disabled, through these resolvers (none given: the system resolver).")
	flag.UintVar(&c.dnsTTL, "dns-ttl", 30, "TTL in seconds (1-3600) of DNS answers; an intent's dns.ttl overrides it.")
	flag.StringVar(&c.dnsCacheMaxBytes, "dns-cache-max-bytes", "32Mi", "Memory bound of the DNS cache of upstream answers, as a quantity (32Mi, 100M); at least 64Ki.")
	flag.IntVar(&c.dnsMaxConcurrent, "dns-max-concurrent", dnsserver.DefaultMaxConcurrent, "Most DNS questions waiting on upstream resolvers at once; beyond it they are answered SERVFAIL at once.")
	flag.IntVar(&c.probeMaxInFlight, "probe-max-in-flight", health.DefaultMaxInFlight(), "Most health probes in flight at once, each holding a socket (default: half the file descriptors the process may open, less 512, from 64 to 4096). Each intent with probes is guaranteed an equal share; an intent may use more while others leave it unused.")
	flag.StringVar(&c.probeAllowed, "probe-allowed-cidrs", "", "Comma-separated CIDRs health probes may dial, such as the cluster's pod and node ranges (default: every address; loopback, link-local, multicast and cloud metadata addresses are refused whatever this says).")
	flag.StringVar(&c.pprofAddr, "pprof-bind-address", "0", "Address of the Go profiling endpoints (/debug/pprof/); 0 disables them. Bind it to loopback: profiles are served to anyone who can connect.")
	flag.Float64Var(&c.kubeAPIQPS, "kube-api-qps", defaultKubeAPIQPS, "Steady requests per second the operator may send to the API server (client-side rate limit), EndpointSlice writes apart.")
	flag.IntVar(&c.kubeAPIBurst, "kube-api-burst", defaultKubeAPIBurst, "Requests the operator may send to the API server in a burst, above --kube-api-qps.")
	flag.IntVar(&c.gcPercent, "gc-percent", defaultGCPercent, "Go's garbage collection target (what GOGC sets): how far, in percent of the live heap, the heap may grow before a collection. Most of the operator's heap is its cache, which lives long; Go's default of 100 lets the process hold about twice the live heap, a lower value holds less for more CPU (docs/performance.md, Memory). A GOGC in the environment takes precedence.")
	flag.Float64Var(&c.endpointsQPS, "kube-api-endpoints-qps", defaultEndpointsQPS, "Steady EndpointSlice writes per second, a budget of their own so that taking dead backends out of traffic never waits behind other requests.")
	flag.IntVar(&c.endpointsBurst, "kube-api-endpoints-burst", defaultEndpointsBurst, "EndpointSlice writes in a burst, above --kube-api-endpoints-qps.")
	flag.IntVar(&c.intentWorkers, "intent-workers", defaultIntentWorkers, "Intents reconciled at once.")
	flag.BoolVar(&c.probeShare, "probe-share", true, "With --leader-elect, share the health checks among the replicas: each probes the targets a hash over the live replicas gives it, and reports its verdicts to the others through the API server (a Lease and a ConfigMap per replica in the leader election namespace). False: every replica probes every target.")
	flag.StringVar(&c.memberName, "probe-share-member-name", "", "This replica's name among the members of the probe share: lower-case letters, digits and '-' (default: the host name, a pod's name, and a random suffix). Two replicas must not share one.")
	flag.DurationVar(&c.shareLease, "probe-share-lease-duration", defaultShareLease, "How long a replica stays a member of the probe share after its last renewal (it renews four times as often): after a crash, how long its share goes unprobed. At least 1s.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	return c, opts
}

// validate refuses flag values that make no sense, before anything starts.
func (c config) validate() error {
	if c.dnsTTL < 1 || c.dnsTTL > 3600 {
		return fmt.Errorf("--dns-ttl=%d: give a TTL from 1 to 3600 seconds (an intent's dns.ttl may be 0)", c.dnsTTL)
	}
	if _, err := c.cacheMaxBytes(); err != nil {
		return err
	}
	if c.dnsMaxConcurrent < 1 {
		return fmt.Errorf("--dns-max-concurrent=%d: give at least 1", c.dnsMaxConcurrent)
	}
	if c.probeMaxInFlight < 1 {
		return fmt.Errorf("--probe-max-in-flight=%d: give at least 1", c.probeMaxInFlight)
	}
	if c.gcPercent < 1 {
		return fmt.Errorf("--gc-percent=%d: give at least 1 (a percentage of the live heap)", c.gcPercent)
	}
	if c.intentWorkers < 1 {
		return fmt.Errorf("--intent-workers=%d: give at least 1", c.intentWorkers)
	}
	if c.kubeAPIQPS <= 0 {
		return fmt.Errorf("--kube-api-qps=%v: give a positive rate", c.kubeAPIQPS)
	}
	if c.kubeAPIBurst < 1 {
		return fmt.Errorf("--kube-api-burst=%d: give at least 1", c.kubeAPIBurst)
	}
	if c.endpointsQPS <= 0 {
		return fmt.Errorf("--kube-api-endpoints-qps=%v: give a positive rate", c.endpointsQPS)
	}
	if c.endpointsBurst < 1 {
		return fmt.Errorf("--kube-api-endpoints-burst=%d: give at least 1", c.endpointsBurst)
	}
	if _, err := health.ParseGuard(c.probeAllowed); err != nil {
		return fmt.Errorf("--probe-allowed-cidrs=%q: %w", c.probeAllowed, err)
	}
	if c.shareLease < time.Second {
		return fmt.Errorf("--probe-share-lease-duration=%s: give at least 1s", c.shareLease)
	}
	if c.memberName != "" {
		if err := members.ValidName(c.memberName); err != nil {
			return fmt.Errorf("--probe-share-member-name: %w", err)
		}
	}
	return c.validateLeaderElection()
}

// validateLeaderElection checks the leader election timings as client-go's
// leaderelection.NewLeaderElector does (which the manager would only report
// once started, and as an error naming none of the flags), and that the lease
// duration is whole seconds: the Lease records it in seconds, and standbys
// judge it by that record, so 2.5s would be 2s to them and less than a second
// none at all.
func (c config) validateLeaderElection() error {
	const (
		lease = "--leader-elect-lease-duration"
		renew = "--leader-elect-renew-deadline"
		retry = "--leader-elect-retry-period"
	)
	switch {
	case c.leaseDuration <= 0:
		return fmt.Errorf("%s=%s: give a positive duration", lease, c.leaseDuration)
	case c.renewDeadline <= 0:
		return fmt.Errorf("%s=%s: give a positive duration", renew, c.renewDeadline)
	case c.retryPeriod <= 0:
		return fmt.Errorf("%s=%s: give a positive duration", retry, c.retryPeriod)
	case c.leaseDuration%time.Second != 0:
		return fmt.Errorf("%s=%s: give whole seconds (the Lease records seconds)", lease, c.leaseDuration)
	case c.leaseDuration <= c.renewDeadline:
		return fmt.Errorf("%s=%s must be greater than %s=%s: a standby could take the Lease while the leader still tries to renew it", lease, c.leaseDuration, renew, c.renewDeadline)
	case c.renewDeadline <= time.Duration(leaderelection.JitterFactor*float64(c.retryPeriod)):
		return fmt.Errorf("%s=%s must be greater than %s=%s times %v: the leader must have time to try again before it gives up", renew, c.renewDeadline, retry, c.retryPeriod, leaderelection.JitterFactor)
	}
	return nil
}

// cacheMaxBytes parses --dns-cache-max-bytes.
func (c config) cacheMaxBytes() (int, error) {
	q, err := resource.ParseQuantity(c.dnsCacheMaxBytes)
	if err != nil {
		return 0, fmt.Errorf("--dns-cache-max-bytes=%q: give a byte count such as 32Mi or 100M: %w", c.dnsCacheMaxBytes, err)
	}
	n, ok := q.AsInt64()
	if !ok || n < dnsserver.MinCacheMaxBytes || n > 2<<30 {
		return 0, fmt.Errorf("--dns-cache-max-bytes=%s: give from 64Ki (one largest DNS message) to 2Gi", c.dnsCacheMaxBytes)
	}
	return int(n), nil
}

func run() error {
	cfg, zapOpts := parseFlags()
	if err := cfg.validate(); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	if soft := setMemoryLimit(cgroupMemoryFiles); soft > 0 {
		log.Info("Go memory limit set from the container's", "GOMEMLIMIT", soft)
	}
	if setGCPercent(cfg.gcPercent) {
		log.Info("Go garbage collection target set", "GOGC", cfg.gcPercent)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}

	metricsOpts := metricsserver.Options{BindAddress: cfg.metricsAddr, SecureServing: cfg.metricsSecure}
	if cfg.metricsSecure {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no cluster to talk to (set KUBECONFIG, or use `make run` for a local control plane): %w", err)
	}
	restCfg.QPS, restCfg.Burst = float32(cfg.kubeAPIQPS), cfg.kubeAPIBurst
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        cfg.probeAddr,
		PprofBindAddress:              cfg.pprofAddr,
		Cache:                         controllers.CacheOptions(),
		LeaderElection:                cfg.leaderElect,
		LeaderElectionID:              "netintent.networking.netintent.io",
		LeaderElectionNamespace:       cfg.leaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
		// Standbys start the leader's controllers' informers and queues
		// too, so that a new leader reconciles at once instead of first
		// listing what it has not watched yet (such as the nodes).
		Controller:    ctrlconfig.Controller{EnableWarmup: ptr.To(true)},
		LeaseDuration: &cfg.leaseDuration,
		RenewDeadline: &cfg.renewDeadline,
		RetryPeriod:   &cfg.retryPeriod,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	guard, err := health.ParseGuard(cfg.probeAllowed)
	if err != nil {
		return fmt.Errorf("--probe-allowed-cidrs: %w", err)
	}
	dns, err := addDNS(mgr, cfg)
	if err != nil {
		return err
	}
	prober := health.NewProber(health.Options{
		MaxInFlight: cfg.probeMaxInFlight,
		Logger:      ctrl.Log.WithName("health"),
		Checker:     &health.Checker{Guard: guard, HostResolver: targetResolver(dns, cfg)},
	})
	if err := mgr.Add(prober); err != nil {
		return err
	}
	if err := addMembers(mgr, restCfg, cfg, prober); err != nil {
		return err
	}
	// A client of its own is a rate limiter of its own.
	sliceCfg := rest.CopyConfig(restCfg)
	sliceCfg.QPS, sliceCfg.Burst = float32(cfg.endpointsQPS), cfg.endpointsBurst
	sliceWriter, err := client.New(sliceCfg, client.Options{Scheme: scheme, Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return fmt.Errorf("creating the endpoint slice client: %w", err)
	}
	if err := controllers.SetupWithManager(mgr, controllers.Options{Prober: prober, IntentWorkers: cfg.intentWorkers, SliceWriter: sliceWriter}); err != nil {
		return fmt.Errorf("setting up controllers: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	log.Info("Starting manager", "dnsListenAddress", cfg.dnsListenAddress, "clusterDomain", cfg.clusterDomain, "probeAllowedCIDRs", guard.String())
	return mgr.Start(ctrl.SetupSignalHandler())
}

// addMembers shares the probing among the replicas when leader election
// is on and --probe-share is: each replica then holds a member Lease in
// the leader election namespace (see internal/members).
func addMembers(mgr ctrl.Manager, restCfg *rest.Config, cfg config, prober *health.Prober) error {
	if !cfg.leaderElect || !cfg.probeShare {
		return nil
	}
	ns := cfg.leaderElectionNS
	if ns == "" {
		b, err := os.ReadFile(serviceAccountNamespace)
		if err != nil {
			return fmt.Errorf("--probe-share needs --leader-election-namespace outside a cluster: %w", err)
		}
		ns = strings.TrimSpace(string(b))
	}
	name := cfg.memberName
	if name == "" {
		host, _ := os.Hostname()
		name = members.NewName(host, utilrand.String(5))
	}
	m, err := members.New(members.Config{
		RestConfig:    restCfg,
		Client:        mgr.GetClient(),
		Namespace:     ns,
		Name:          name,
		LeaseDuration: cfg.shareLease,
		Prober:        prober,
		Log:           ctrl.Log.WithName("members"),
	})
	if err != nil {
		return err
	}
	return mgr.Add(m)
}

// serviceAccountNamespace holds the pod's namespace in a cluster.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// targetResolver resolves the names of ExternalName targets for their
// probes as clients get them: through the embedded DNS server (its
// upstreams and its cache) when it runs; otherwise through --dns-upstreams,
// or the system resolver when none is given.
func targetResolver(dns *dnsserver.Server, cfg config) health.Resolver {
	if dns != nil {
		return health.ResolverFunc(dns.Resolve, dnsserver.ErrNoAddresses)
	}
	upstreams := cfg.upstreams()
	if len(upstreams) == 0 {
		return nil
	}
	var next atomic.Uint32
	return health.NetResolver(&net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		// Each query goes to the next upstream in turn.
		u := upstreams[int(next.Add(1)-1)%len(upstreams)]
		var d net.Dialer
		return d.DialContext(ctx, network, u)
	}})
}

// upstreams parses --dns-upstreams.
func (c config) upstreams() []string {
	var upstreams []string
	for _, u := range strings.Split(c.dnsUpstreams, ",") {
		if u = strings.TrimSpace(u); u != "" {
			upstreams = append(upstreams, u)
		}
	}
	return upstreams
}

// addDNS adds the embedded DNS server and the index that feeds it, and
// returns the server (nil when --dns-listen-address is empty). Both run on
// every replica, leader or not; readiness waits for the index to sync.
func addDNS(mgr ctrl.Manager, cfg config) (*dnsserver.Server, error) {
	if cfg.dnsListenAddress == "" {
		return nil, nil
	}
	upstreams := cfg.upstreams()
	if len(upstreams) == 0 {
		var err error
		if upstreams, err = dnsserver.UpstreamsFromResolvConf("/etc/resolv.conf"); err != nil {
			return nil, fmt.Errorf("no --dns-upstreams given and /etc/resolv.conf is unusable: %w", err)
		}
	}
	idx := dnsserver.NewIndex()
	if err := mgr.Add(dnsserver.NewSource(mgr.GetCache(), idx)); err != nil {
		return nil, err
	}
	cacheMaxBytes, err := cfg.cacheMaxBytes()
	if err != nil {
		return nil, err
	}
	srv, err := dnsserver.New(dnsserver.Config{
		ListenAddress: cfg.dnsListenAddress,
		ClusterDomain: cfg.clusterDomain,
		Upstreams:     upstreams,
		TTL:           uint32(cfg.dnsTTL),
		CacheMaxBytes: cacheMaxBytes,
		MaxConcurrent: cfg.dnsMaxConcurrent,
	}, idx)
	if err != nil {
		return nil, fmt.Errorf("dns server: %w", err)
	}
	if err := mgr.Add(srv); err != nil {
		return nil, err
	}
	return srv, mgr.AddReadyzCheck("dns", srv.ReadyCheck)
}
