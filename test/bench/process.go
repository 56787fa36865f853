package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netintent/netintent/internal/testenv"
)

// process is a server the benchmark runs and measures: the operator or
// CoreDNS.
type process struct {
	*testenv.Process
	// metricsAddr and pprofAddr are the operator's metrics and profiling
	// endpoints (plain HTTP on loopback).
	metricsAddr, pprofAddr string
}

// pinned is the command that runs bin with args, pinned to cpu by taskset
// when cpu is not empty.
func pinned(cpu, bin string, args ...string) *exec.Cmd {
	if cpu == "" {
		return exec.Command(bin, args...)
	}
	return exec.Command("taskset", append([]string{"-c", cpu, bin}, args...)...)
}

// logFile is a new log file for the server name in dir, closed once p has
// exited.
func logFile(dir, name string) (*os.File, error) {
	return os.Create(fmt.Sprintf("%s/%s-%d.log", dir, name, time.Now().UnixNano()))
}

// startProcess runs bin with args, pinned to cpu by taskset when cpu is not
// empty, with env added to the benchmark's environment, logging to a file
// in dir.
func startProcess(dir, name, cpu string, env []string, bin string, args ...string) (*process, error) {
	f, err := logFile(dir, name)
	if err != nil {
		return nil, err
	}
	cmd := pinned(cpu, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	p, err := testenv.StartProcess(name, cmd, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	go func() { <-p.Done(); f.Close() }()
	return &process{Process: p}, nil
}

// stop ends the process and waits for it.
func (p *process) stop() { _ = p.Stop(10 * time.Second) }

// failed says why the process is not usable, with the end of its log.
func (p *process) failed(what string, err error) error {
	return fmt.Errorf("%s: %s: %w\n--- end of its log:\n%s", p.Name, what, err, p.Tail(40))
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times; 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// cpuTime is the CPU time (user and system) the process has used, from its
// own accounting in /proc, so that other load on the machine does not count.
func (p *process) cpuTime() (time.Duration, error) {
	st, err := readProcStat(strconv.Itoa(p.Pid()))
	return st.cpu, err
}

// procStat is what /proc/<pid>/stat says of a process.
type procStat struct {
	pid, comm, ppid string
	// cpu is the CPU time (user and system) it has used.
	cpu time.Duration
}

func readProcStat(pid string) (procStat, error) {
	st := procStat{pid: pid}
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return st, err
	}
	// The command name is in parentheses and may hold spaces; after it:
	// state, ppid, ..., utime (12th) and stime (13th).
	s := string(b)
	open, shut := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || shut < open {
		return st, fmt.Errorf("unreadable /proc stat: %q", s)
	}
	st.comm = s[open+1 : shut]
	fields := strings.Fields(s[shut+1:])
	if len(fields) < 13 {
		return st, fmt.Errorf("short /proc stat: %q", s)
	}
	st.ppid = fields[1]
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return st, err
		}
		ticks += n
	}
	st.cpu = time.Duration(ticks) * time.Second / clockTicks
	return st, nil
}

// procStats reads every process's /proc stat (those that exit meanwhile
// are left out).
func procStats() []procStat {
	dirs, _ := os.ReadDir("/proc")
	out := make([]procStat, 0, len(dirs))
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		if st, err := readProcStat(d.Name()); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// childCPU is the CPU time of this process's children by command name
// (kube-apiserver and etcd among them), summed over children of one name.
func childCPU() map[string]time.Duration {
	self := strconv.Itoa(os.Getpid())
	out := map[string]time.Duration{}
	for _, st := range procStats() {
		if st.ppid == self {
			out[st.comm] += st.cpu
		}
	}
	return out
}

// selfCPU is this process's CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rss is the process's resident set size in bytes.
func (p *process) rss() (int64, error) {
	r, err := p.residentSet()
	return r.total, err
}

// residentSet is what a process has resident, in bytes: in all, and of it
// anonymous memory (Go's heap, stacks and runtime structures) and file
// pages (the executable's text and data, as far as they were touched).
type residentSet struct{ total, anon, file int64 }

func (p *process) residentSet() (residentSet, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return residentSet{}, err
	}
	var r residentSet
	fields := map[string]*int64{"VmRSS:": &r.total, "RssAnon:": &r.anon, "RssFile:": &r.file}
	for _, line := range strings.Split(string(b), "\n") {
		for prefix, into := range fields {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					return r, err
				}
				*into = kb << 10
			}
		}
	}
	if r.total == 0 {
		return r, fmt.Errorf("no VmRSS for %s", p.Name)
	}
	return r, nil
}

// freePort returns a loopback port free for both TCP and UDP at the time of
// the call.
func freePort() (int, error) {
	addr, err := testenv.FreeAddr()
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(testenv.Port(addr))
}

// poll calls check until it returns nil or timeout passes.
func poll(timeout time.Duration, what string, check func() error) error {
	return testenv.Poll(context.Background(), 100*time.Millisecond, timeout, what, check)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
