package testenv

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrKilled is what Stop returns when the process outlived its SIGTERM and
// was killed.
var ErrKilled = errors.New("still running after SIGTERM; killed")

// Process is a child process the harness runs: the operator or CoreDNS.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{} // closed when the process has exited
	err  error         // what Wait returned; read after done is closed
}

// StartProcess starts cmd with its output kept in memory (and copied to
// also, when not nil). The process is killed if this one dies first, and
// has a process group of its own, so that a terminal's Ctrl-C reaches only
// this one.
func StartProcess(name string, cmd *exec.Cmd, also io.Writer) (*Process, error) {
	p := &Process{Name: name, Cmd: cmd, log: &logBuffer{}, done: make(chan struct{})}
	var out io.Writer = p.log
	if also != nil {
		out = io.MultiWriter(p.log, also)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited says whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is what the process exited with; nil while it runs.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Alive returns an error, with the end of the log, once the process has
// exited.
func (p *Process) Alive() error {
	if !p.Exited() {
		return nil
	}
	return fmt.Errorf("%s exited: %v; the end of its log:\n%s", p.Name, p.err, p.Tail(40))
}

// Stop sends SIGTERM and waits for the process to exit, and kills it when
// it has not within timeout. It returns what the process exited with, or
// ErrKilled.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return p.err
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.Cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s: %w (%s)", p.Name, ErrKilled, timeout)
	}
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Log is all the process has written to stdout and stderr.
func (p *Process) Log() string { return p.log.String() }

// Tail is the last n lines of the log, each cut to a readable length
// (stack traces make them long).
func (p *Process) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 400 {
			lines[i] = l[:400] + " ..."
		}
	}
	return strings.Join(lines, "\n")
}

// SaveLog writes the whole log to path, making its folder.
func (p *Process) SaveLog(path string) error {
	if err := os.MkdirAll(dirOf(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(p.Log()), 0o644)
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		return path[:i]
	}
	return "."
}

// ExitCode is a process's exit status from what Wait returned: 0 for nil,
// -1 when a signal ended it.
func ExitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// Signalled says whether sig ended the process that returned err.
func Signalled(err error, sig syscall.Signal) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// logMax is how much of a process's log is kept: the last 64 MiB, so that
// a long `make run` does not grow without bound.
const logMax = 64 << 20

// logBuffer keeps the end of a process's output, safe for the writing
// process and a reader.
type logBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > logMax {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-logMax/2:]...)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
