package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/netintent/netintent/internal/testenv"
)

// dnsRun is what one dnsperf run measured on one server.
type dnsRun struct {
	sent, completed int
	qps             float64
	cpu             time.Duration // the server's CPU time during the run
	rcodes          string
	latencies       []time.Duration // sorted; only from the fixed-load run
}

func (r dnsRun) cpuPerQuery() float64 {
	if r.completed == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(r.completed)
}

func (r dnsRun) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
}

// dnsResult is one server's figures.
type dnsResult struct {
	name      string
	saturated dnsRun
	fixed     dnsRun
	rss       int64
}

// benchDNS measures netintent's DNS server and then CoreDNS on the same
// objects, each pinned to one CPU with GOMAXPROCS=1, with dnsperf pinned to
// another.
func benchDNS(ctx context.Context, o options, cp *controlPlane, work string) (string, error) {
	if err := cp.client.Create(ctx, namespace(dnsNamespace)); err != nil {
		return "", err
	}
	if err := cp.createAll(ctx, dnsObjects()); err != nil {
		return "", err
	}
	upstream, stopUpstream, err := fakeUpstream()
	if err != nil {
		return "", err
	}
	defer stopUpstream()
	mix := filepath.Join(work, "queries.txt")
	if err := os.WriteFile(mix, []byte(queryMix()), 0o644); err != nil {
		return "", err
	}

	var results []dnsResult
	for _, server := range []string{"netintent", "CoreDNS"} {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		var p *process
		if server == "netintent" {
			p, err = startOperator(o, cp, work, o.serverCPU, []string{"GOMAXPROCS=1"},
				"--dns-listen-address="+fmt.Sprintf("127.0.0.1:%d", port), "--dns-upstreams="+upstream)
		} else {
			p, err = startCoreDNS(o, cp, work, o.serverCPU, port, upstream)
		}
		if err != nil {
			return "", err
		}
		fmt.Fprintf(os.Stderr, "DNS: %s on 127.0.0.1:%d (CPU %s), dnsperf on CPU %s\n", server, port, o.serverCPU, o.loadCPU)
		r, err := measureDNS(o, p, port, mix)
		p.stop()
		if err != nil {
			return "", err
		}
		r.name = server
		results = append(results, r)
	}
	return dnsTable(o, results[0], results[1]), nil
}

// measureDNS waits until the server answers the whole mix as expected,
// warms it with one pass, then runs dnsperf at saturation and at a fixed
// load.
func measureDNS(o options, p *process, port int, mix string) (dnsResult, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	err := poll(2*time.Minute, p.Name+" answers every kind of question", func() error {
		if err := p.Alive(); err != nil {
			return err
		}
		return checkAnswers(addr)
	})
	if err != nil {
		return dnsResult{}, p.failed("not answering", err)
	}
	if _, err := dnsperf(o, p, port, mix, "-n", "1"); err != nil {
		return dnsResult{}, err
	}
	var r dnsResult
	if r.saturated, err = dnsperf(o, p, port, mix, "-l", strconv.Itoa(o.dnsSeconds), "-c", "4", "-q", "500"); err != nil {
		return r, err
	}
	if r.fixed, err = dnsperf(o, p, port, mix, "-l", strconv.Itoa(o.dnsSeconds), "-Q", strconv.Itoa(o.fixedQPS), "-v"); err != nil {
		return r, err
	}
	r.rss, err = p.rss()
	return r, err
}

// checkAnswers asks one question of each kind and checks the answer's
// shape: both servers must answer the mix alike for the comparison to hold.
func checkAnswers(addr string) error {
	zone := dnsNamespace + ".svc.cluster.local."
	cases := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers int
	}{
		{clusterIPName(clusterIPs-1) + "." + zone, dns.TypeA, dns.RcodeSuccess, 1},
		{externalNameName(externalNames-1) + "." + zone, dns.TypeA, dns.RcodeSuccess, 2},
		{headlessName + "." + zone, dns.TypeA, dns.RcodeSuccess, headlessPods},
		{"pod-0." + headlessName + "." + zone, dns.TypeA, dns.RcodeSuccess, 1},
		{"_http._tcp." + clusterIPName(0) + "." + zone, dns.TypeSRV, dns.RcodeSuccess, 1},
		{"_http._tcp." + headlessName + "." + zone, dns.TypeSRV, dns.RcodeSuccess, headlessPods},
		{"missing-0." + zone, dns.TypeA, dns.RcodeNameError, 0},
	}
	c := &dns.Client{Timeout: time.Second}
	for _, tc := range cases {
		q := new(dns.Msg).SetQuestion(tc.name, tc.qtype)
		r, _, err := c.Exchange(q, addr)
		if err != nil {
			return err
		}
		if r.Rcode != tc.rcode || len(r.Answer) != tc.answers {
			return fmt.Errorf("%s %s: %s with %d answers, want %s with %d", tc.name, dns.TypeToString[tc.qtype],
				dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tc.rcode], tc.answers)
		}
	}
	return nil
}

var (
	sentRE      = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	completedRE = regexp.MustCompile(`Queries completed:\s+(\d+)`)
	qpsRE       = regexp.MustCompile(`Queries per second:\s+([\d.]+)`)
	rcodesRE    = regexp.MustCompile(`Response codes:\s+(.*)`)
)

// dnsperf runs dnsperf on the load CPU against the server, and reads the
// server's CPU time before and after.
func dnsperf(o options, p *process, port int, mix string, args ...string) (dnsRun, error) {
	argv := append([]string{"-c", o.loadCPU, "dnsperf", "-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", mix, "-t", "2"}, args...)
	cmd := exec.Command("taskset", argv...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return dnsRun{}, err
	}
	// dnsperf warns of every late reply on stderr; kept for an error.
	var stderr strings.Builder
	cmd.Stderr = &stderr
	before, err := p.cpuTime()
	if err != nil {
		return dnsRun{}, err
	}
	if err := cmd.Start(); err != nil {
		return dnsRun{}, fmt.Errorf("dnsperf: %w", err)
	}
	var r dnsRun
	var summary strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "> "); ok {
			// "> NOERROR name type 0.000250"
			if i := strings.LastIndexByte(rest, ' '); i >= 0 {
				if s, err := strconv.ParseFloat(rest[i+1:], 64); err == nil {
					r.latencies = append(r.latencies, time.Duration(s*float64(time.Second)))
				}
			}
			continue
		}
		summary.WriteString(line + "\n")
	}
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return r, fmt.Errorf("dnsperf %s: %w\n%s%s", strings.Join(args, " "), err, summary.String(), stderr.String())
	}
	after, err := p.cpuTime()
	if err != nil {
		return r, err
	}
	r.cpu = after - before
	out := summary.String()
	r.sent, _ = strconv.Atoi(firstMatch(sentRE, out))
	r.completed, _ = strconv.Atoi(firstMatch(completedRE, out))
	r.qps, _ = strconv.ParseFloat(firstMatch(qpsRE, out), 64)
	r.rcodes = firstMatch(rcodesRE, out)
	if r.completed == 0 {
		return r, fmt.Errorf("dnsperf: no query answered by %s:\n%s", p.Name, out)
	}
	slices.Sort(r.latencies)
	return r, nil
}

func firstMatch(re *regexp.Regexp, s string) string {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

// fakeUpstream answers A questions under example.org with one address and
// a long TTL, so that both servers answer the ExternalName names from their
// caches after the first question; it refuses other names.
func fakeUpstream() (string, func(), error) {
	u := &testenv.Upstream{TTL: 3600, Outside: dns.RcodeRefused}
	u.SetZone(upstreamZone, netip.MustParseAddr("192.0.2.7"))
	if err := u.Start(); err != nil {
		return "", nil, err
	}
	return u.Addr, u.Close, nil
}

// startCoreDNS runs CoreDNS with the kubernetes, cache and forward plugins
// (a cluster's usual Corefile) reading the control plane.
func startCoreDNS(o options, cp *controlPlane, work, cpu string, port int, upstream string) (*process, error) {
	corefile := filepath.Join(work, fmt.Sprintf("Corefile-%d", port))
	conf := fmt.Sprintf(".:%d {\n    bind 127.0.0.1\n    kubernetes cluster.local {\n        kubeconfig %s\n    }\n    cache 30\n    forward . %s\n}\n",
		port, cp.kubeconfig, upstream)
	if err := os.WriteFile(corefile, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	var env []string
	if cpu != "" {
		env = []string{"GOMAXPROCS=1"}
	}
	return startProcess(work, "coredns", cpu, env, o.coreDNS, "-conf", corefile)
}

// startOperator runs the built operator binary against the control plane
// with metrics (plain HTTP) and profiling on loopback ports, pinned to cpu
// when not empty, and waits until it is ready.
func startOperator(o options, cp *controlPlane, work, cpu string, env []string, args ...string) (*process, error) {
	pprof, err := testenv.FreeAddr()
	if err != nil {
		return nil, err
	}
	f, err := logFile(work, "netintent")
	if err != nil {
		return nil, err
	}
	op, err := testenv.StartOperator(testenv.OperatorOptions{
		Kubeconfig: cp.kubeconfig,
		PprofAddr:  pprof,
		Args:       append([]string{"--metrics-secure=false"}, args...),
		Env:        env,
		Command: func(args []string) *exec.Cmd {
			cmd := pinned(cpu, o.netintent, args...)
			cmd.Dir = work
			return cmd
		},
		Output: f,
	})
	if err != nil {
		f.Close()
		return nil, err
	}
	go func() { <-op.Done(); f.Close() }()
	return &process{Process: op.Process, metricsAddr: op.MetricsAddr, pprofAddr: op.PprofAddr}, nil
}

func dnsTable(o options, ni, cd dnsResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## DNS: netintent and CoreDNS, each on one CPU with GOMAXPROCS=1\n\n")
	fmt.Fprintf(&b, "Same control plane and objects (%d ClusterIP, %d ExternalName with a warm cache, a headless Service with %d endpoints); "+
		"mix of %d questions (A, per-endpoint A, SRV, NXDOMAIN) looped by dnsperf on another CPU, %d s a run.\n\n",
		clusterIPs, externalNames, headlessPods, strings.Count(queryMix(), "\n"), o.dnsSeconds)
	fmt.Fprintf(&b, "| | netintent | CoreDNS | netintent/CoreDNS |\n|---|---:|---:|---:|\n")
	row := func(what string, a, c float64, format string) {
		ratio := "-"
		if c != 0 {
			ratio = fmt.Sprintf("%.2fx", a/c)
		}
		fmt.Fprintf(&b, "| %s | "+format+" | "+format+" | %s |\n", what, a, c, ratio)
	}
	row("QPS at saturation", ni.saturated.qps, cd.saturated.qps, "%.0f")
	row("CPU µs per answered query, at saturation", ni.saturated.cpuPerQuery(), cd.saturated.cpuPerQuery(), "%.2f")
	row(fmt.Sprintf("CPU µs per answered query, at %d QPS", o.fixedQPS), ni.fixed.cpuPerQuery(), cd.fixed.cpuPerQuery(), "%.2f")
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	row(fmt.Sprintf("p50 latency at %d QPS, ms", o.fixedQPS), ms(ni.fixed.percentile(0.5)), ms(cd.fixed.percentile(0.5)), "%.3f")
	row(fmt.Sprintf("p99 latency at %d QPS, ms", o.fixedQPS), ms(ni.fixed.percentile(0.99)), ms(cd.fixed.percentile(0.99)), "%.3f")
	row("RSS after the runs, MiB", float64(ni.rss)/(1<<20), float64(cd.rss)/(1<<20), "%.1f")
	fmt.Fprintf(&b, "\nAnswered at saturation: netintent %d of %d (%s); CoreDNS %d of %d (%s).\n\n",
		ni.saturated.completed, ni.saturated.sent, ni.saturated.rcodes, cd.saturated.completed, cd.saturated.sent, cd.saturated.rcodes)
	return b.String()
}
