package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a server the benchmark runs and measures: the operator or
// CoreDNS.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan error
	// metricsAddr and pprofAddr are the operator's metrics and profiling
	// endpoints (plain HTTP on loopback).
	metricsAddr, pprofAddr string
}

// startProcess runs bin with args, pinned to cpu by taskset when cpu is not
// empty, with env added to the benchmark's environment, logging to a file
// in dir.
func startProcess(dir, name, cpu string, env []string, bin string, args ...string) (*process, error) {
	argv := append([]string{bin}, args...)
	if cpu != "" {
		argv = append([]string{"taskset", "-c", cpu}, argv...)
	}
	p := &process{name: name, log: fmt.Sprintf("%s/%s-%d.log", dir, name, time.Now().UnixNano()), exited: make(chan error, 1)}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	return p, nil
}

// stop ends the process and waits for it.
func (p *process) stop() {
	if p.alive() != nil {
		return // stopped already
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		err = <-p.exited
	}
	p.exited <- err // for alive, and a second stop
}

// failed says why the process is not usable, with the end of its log.
func (p *process) failed(what string, err error) error {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return fmt.Errorf("%s: %s: %w\n--- end of its log (%s):\n%s", p.name, what, err, p.log, b)
}

// alive returns an error if the process has exited.
func (p *process) alive() error {
	select {
	case err := <-p.exited:
		p.exited <- err
		return p.failed("exited", fmt.Errorf("%v", err))
	default:
		return nil
	}
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times; 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// cpuTime is the CPU time (user and system) the process has used, from its
// own accounting in /proc, so that other load on the machine does not count.
func (p *process) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14 and stime 15.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc stat: %q", s)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// rss is the process's resident set size in bytes.
func (p *process) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for %s", p.name)
}

// freePort returns a loopback port free for both TCP and UDP at the time of
// the call.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no loopback port free for both TCP and UDP")
}

// poll calls check until it returns nil or timeout passes.
func poll(timeout time.Duration, what string, check func() error) error {
	return pollEvery(100*time.Millisecond, timeout, what, check)
}

// pollEvery is poll with the given interval.
func pollEvery(interval, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s: %w", what, timeout, err)
		}
		time.Sleep(interval) // poll interval
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
