// Command bench measures netintent on this machine and writes the table that
// `make bench` prints: its DNS server against CoreDNS on the same objects and
// query mix, how fast intents converge and how many API writes they cost,
// and memory next to CoreDNS's. It starts its own control plane (from
// bin/k8s) and runs the built operator binary and the pinned CoreDNS as
// separate processes, so that each one's CPU time and memory are its own.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

func main() {
	// The harness's own informer logs nothing worth reading.
	ctrllog.SetLogger(logr.Discard())
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	root       string
	out        string
	coreDNS    string
	netintent  string
	dnsSeconds int
	fixedQPS   int
	intents    []int
	services   int
	endpoints  int
	serverCPU  string
	loadCPU    string
	operator   []string
	parts      string
	noPolicy   bool
	pods       bool
	headless   bool
	// probeBackends are the probe part's backend counts, ascending.
	probeBackends []int
	// The churn part's length, operations a second and intent names.
	churnDuration time.Duration
	churnRate     float64
	churnNames    int
	churnProfiles string
	cpuProfiles   string
	apiProfiles   string
	heapProfiles  string
}

func parseOptions() (options, error) {
	var o options
	var intents, operatorArgs, probeBackends string
	flag.StringVar(&o.root, "root", ".", "The project folder (holds bin/ and config/).")
	flag.StringVar(&o.out, "out", "bench", "Folder the table is written to.")
	flag.StringVar(&o.coreDNS, "coredns", "bin/coredns-v1.14.7/coredns", "The CoreDNS binary to compare with.")
	flag.StringVar(&o.netintent, "netintent", "bin/netintent", "The operator binary.")
	flag.IntVar(&o.dnsSeconds, "dns-seconds", 10, "Length of each dnsperf run, in seconds.")
	flag.IntVar(&o.fixedQPS, "fixed-qps", 10000, "Offered load of the latency runs, in queries per second.")
	flag.StringVar(&intents, "intents", "100,1000,5000", "Comma-separated counts of intents to converge, one run each.")
	flag.IntVar(&o.services, "services", 5000, "Plain Services added before the last memory reading; 0 skips it.")
	flag.IntVar(&o.endpoints, "endpoints", 0, "Endpoints of each plain Service, in EndpointSlices of up to 100 pod endpoints as Kubernetes' EndpointSlice controller writes them (the Services headless then); 0: no slices.")
	flag.StringVar(&o.serverCPU, "server-cpu", "0", "The CPU the DNS servers are pinned to.")
	flag.StringVar(&o.loadCPU, "load-cpu", "1", "The CPU dnsperf is pinned to.")
	flag.StringVar(&o.parts, "parts", "dns,operator,churn,prune,probe", "Which parts to run, comma-separated: dns, operator, churn, prune and probe (these two need root: network namespaces).")
	flag.StringVar(&operatorArgs, "operator-args", "", "Flags for the operator in the convergence and probe runs, space-separated (default: none, the operator's defaults).")
	flag.BoolVar(&o.noPolicy, "no-admission-policy", false, "Leave out config/admission's policy, so that the operator adds each intent's finalizer itself.")
	flag.BoolVar(&o.headless, "headless", false, "Make the convergence intents headless (clusterIP None): the API server allocates no address for their Services, whose cost grows with the Services there are, so that tens of thousands converge in minutes.")
	flag.BoolVar(&o.pods, "pods", false, "Back each convergence intent with two Ready pods it selects, made before the intents, instead of two static addresses.")
	flag.StringVar(&probeBackends, "probe-backends", defaultProbeBackends, fmt.Sprintf("Comma-separated backend counts of the probe part, multiples of %d (each run adds intents of %d backends to the one before).", probeBackendsPerIntent, probeBackendsPerIntent))
	flag.DurationVar(&o.churnDuration, "churn-duration", 10*time.Minute, "How long the churn part creates, edits and deletes intents.")
	flag.Float64Var(&o.churnRate, "churn-rate", 6, "Intent operations a second in the churn part.")
	flag.IntVar(&o.churnNames, "churn-names", 200, "Intent names the churn part cycles over.")
	flag.StringVar(&o.churnProfiles, "churn-profiles", "", "A folder to write the operator's heap profile into at each churn sample (heap-NN.pb.gz, for pprof -base); empty: none.")
	flag.StringVar(&o.cpuProfiles, "operator-cpu-profiles", "", "A folder to write the operator's CPU profile into for the first 10 s of each convergence run (cpu-N.pb.gz); empty: none.")
	flag.StringVar(&o.heapProfiles, "memory-profiles", "", "A folder to write the operator's heap profile into at each reading of the memory table (heap-N.pb.gz, N in the order of the table's rows); empty: none.")
	flag.StringVar(&o.apiProfiles, "apiserver-cpu-profiles", "", "A folder to write kube-apiserver's CPU profile into for the first 10 s of each convergence run (apiserver-cpu-N.pb.gz); empty: none.")
	flag.Parse()
	for _, s := range strings.Split(intents, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return o, fmt.Errorf("-intents: %q is not a positive count", s)
		}
		o.intents = append(o.intents, n)
	}
	o.operator = strings.Fields(operatorArgs)
	var err error
	if o.probeBackends, err = parseProbeBackends(probeBackends); err != nil {
		return o, fmt.Errorf("-probe-backends: %w", err)
	}
	if o.churnDuration <= 0 || o.churnRate <= 0 || o.churnNames < 1 {
		return o, errors.New("-churn-duration, -churn-rate and -churn-names must be positive")
	}
	if o.dnsSeconds < 1 || o.fixedQPS < 1 || o.services < 0 || o.endpoints < 0 || o.endpoints > 1<<16 {
		return o, errors.New("-dns-seconds and -fixed-qps must be positive, -services not negative, -endpoints from 0 to 65536")
	}
	root, err := filepath.Abs(o.root)
	if err != nil {
		return o, err
	}
	o.root = root
	if !filepath.IsAbs(o.coreDNS) {
		o.coreDNS = filepath.Join(root, o.coreDNS)
	}
	if !filepath.IsAbs(o.netintent) {
		o.netintent = filepath.Join(root, o.netintent)
	}
	if !filepath.IsAbs(o.out) {
		o.out = filepath.Join(root, o.out)
	}
	return o, nil
}

func run() error {
	o, err := parseOptions()
	if err != nil {
		return err
	}
	// The DNS and operator parts share a control plane; the others start
	// their own.
	shared := strings.Contains(o.parts, "dns") || strings.Contains(o.parts, "operator")
	var tools []string
	if strings.Contains(o.parts, "dns") {
		tools = []string{"dnsperf", "taskset"}
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install Debian's %s package (make bench does)", tool, map[string]string{"dnsperf": "dnsperf", "taskset": "util-linux"}[tool])
		}
	}
	bins := []string{o.netintent}
	if shared {
		bins = append(bins, o.coreDNS)
	}
	for _, bin := range bins {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s missing: run `make build coredns` (make bench does): %w", bin, err)
		}
	}
	work, err := os.MkdirTemp("", "netintent-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	ctx := context.Background()
	var cp *controlPlane
	if shared {
		if cp, err = startControlPlane(o.root, work, !o.noPolicy); err != nil {
			return err
		}
		defer func() {
			if cp != nil {
				cp.stop()
			}
		}()
	}

	var report strings.Builder
	fmt.Fprintf(&report, "# netintent benchmark, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&report, "- machine: %s, %d cores; %s; %s\n", cpuModel(), runtime.NumCPU(), runtime.Version(), kernel())
	fmt.Fprintf(&report, "- netintent %s; CoreDNS %s (kubernetes, cache, forward)\n", gitDescribe(o.root), coreDNSVersion(o.coreDNS))
	fmt.Fprintf(&report, "- command: `make bench` (go run ./test/bench %s)\n\n", strings.Join(os.Args[1:], " "))

	if strings.Contains(o.parts, "dns") {
		dns, err := benchDNS(ctx, o, cp, work)
		if err != nil {
			return fmt.Errorf("DNS: %w", err)
		}
		report.WriteString(dns)
		fmt.Print(dns)
	}
	if strings.Contains(o.parts, "operator") {
		conv, err := benchOperator(ctx, o, cp, work)
		if err != nil {
			return fmt.Errorf("operator: %w", err)
		}
		report.WriteString(conv)
		fmt.Print(conv)
	}
	if cp != nil {
		// Idle or not, it is not to share the machine with the parts
		// that follow.
		cp.stop()
		cp = nil
	}

	for _, part := range []struct {
		name, title string
		run         func(options, string) (string, error)
		root        bool // it makes network namespaces
	}{{"churn", "Churn", benchChurn, false}, {"prune", "Prune", benchPrune, true}, {"probe", "Probing", benchProbe, true}} {
		if !strings.Contains(o.parts, part.name) {
			continue
		}
		var section string
		if part.root && os.Geteuid() != 0 {
			section = "## " + part.title + "\n\nNot measured: it makes network namespaces, which needs root.\n\n"
		} else if section, err = part.run(o, work); err != nil {
			return fmt.Errorf("%s: %w", part.name, err)
		}
		report.WriteString(section)
		fmt.Print(section)
	}

	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(o.out, "results-"+time.Now().UTC().Format("20060102-150405")+".md")
	if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "\nwritten to %s\n", path)
	return nil
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "Linux"
	}
	return "Linux " + strings.TrimSpace(string(b))
}

func gitDescribe(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "(not a git checkout)"
	}
	return strings.TrimSpace(string(out))
}

func coreDNSVersion(bin string) string {
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		return "?"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimPrefix(strings.TrimSpace(first), "CoreDNS-")
}

// logTail is the end of a log, for an error message.
func logTail(b *bytes.Buffer) string {
	s := b.String()
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// benchPrune runs BenchmarkPrune (prune_test.go: it needs the testing
// package's test hosts) and returns the table it writes.
func benchPrune(o options, work string) (string, error) {
	fmt.Fprintln(os.Stderr, "prune: 50 backends in network namespaces")
	out := filepath.Join(work, "prune.md")
	cmd := exec.Command("go", "test", "-count=1", "-run", "^$", "-bench", "^BenchmarkPrune$", "-benchtime", "1x", "-timeout", "10m", "./test/bench")
	cmd.Dir = o.root
	cmd.Env = append(os.Environ(), "BENCH_PRUNE_OUT="+out)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w\n%s", err, logTail(&log))
	}
	b, err := os.ReadFile(out)
	return string(b), err
}
