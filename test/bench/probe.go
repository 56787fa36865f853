package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// defaultProbeBackends are the backend counts the probe part measures when
// -probe-backends gives none.
const defaultProbeBackends = "5000,10000"

// probeBackendsPerIntent is how many static backends each of the probe
// part's intents has (the API's most).
const probeBackendsPerIntent = 100

// benchProbe runs BenchmarkProbe (probe_test.go: its farm of backends is a
// network namespace, and the minimal prober it compares with is its test
// binary run again) and returns the table it writes.
func benchProbe(o options, work string) (string, error) {
	counts := make([]string, len(o.probeBackends))
	for i, n := range o.probeBackends {
		counts[i] = strconv.Itoa(n)
	}
	fmt.Fprintf(os.Stderr, "probe: %s backends in one network namespace\n", strings.Join(counts, ", "))
	table := filepath.Join(work, "probe.md")
	cmd := exec.Command("go", "test", "-count=1", "-run", "^$", "-bench", "^BenchmarkProbe$", "-benchtime", "1x", "-timeout", "10m", "./test/bench")
	cmd.Dir = o.root
	cmd.Env = append(os.Environ(), "BENCH_PROBE_OUT="+table, "BENCH_PROBE_BACKENDS="+strings.Join(counts, ","), "BENCH_NETINTENT="+o.netintent, "BENCH_OPERATOR_ARGS="+strings.Join(o.operator, " "))
	// Its progress lines go to the terminal too: the part takes minutes.
	var log bytes.Buffer
	out := io.MultiWriter(&log, &progressWriter{w: os.Stderr})
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w\n%s", err, logTail(&log))
	}
	b, err := os.ReadFile(table)
	return string(b), err
}

// progressWriter passes on the whole lines written to it that begin with
// "probe: ".
type progressWriter struct {
	w       io.Writer
	pending []byte
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.pending = append(p.pending, b...)
	for {
		i := bytes.IndexByte(p.pending, '\n')
		if i < 0 {
			return len(b), nil
		}
		if line := p.pending[:i+1]; bytes.HasPrefix(line, []byte("probe: ")) {
			_, _ = p.w.Write(line)
		}
		p.pending = p.pending[i+1:]
	}
}

// parseProbeBackends reads comma-separated backend counts: positive
// multiples of probeBackendsPerIntent, returned ascending without repeats
// (each run adds intents to the one before).
func parseProbeBackends(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		s = defaultProbeBackends
	}
	var counts []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < probeBackendsPerIntent || n%probeBackendsPerIntent != 0 {
			return nil, fmt.Errorf("backend count %q: give a positive multiple of %d", f, probeBackendsPerIntent)
		}
		counts = append(counts, n)
	}
	if len(counts) == 0 {
		return nil, errors.New("no backend counts")
	}
	slices.Sort(counts)
	return slices.Compact(counts), nil
}
