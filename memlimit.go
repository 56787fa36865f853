package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimitShare is the part of the container's memory limit that Go's
// soft memory limit is set to: the rest is for what the runtime does not
// count (thread stacks, the binary's text) and for the time the collector
// takes to catch up.
const memoryLimitShare = 0.9

// defaultGCPercent is --gc-percent's default. At Go's default of 100 the
// heap grows to twice the live heap between collections, and the runtime
// keeps about that much: the operator held 81-83 MiB of anonymous memory
// for a live heap of 27.6 MiB at 5,000 intents, and its RSS was 1.2 times
// CoreDNS's on the same cluster. At 25 it held 56 MiB, an RSS at
// CoreDNS's, for more CPU while thousands of intents converge at once
// (docs/performance.md, Memory).
const defaultGCPercent = 25

// setGCPercent sets Go's garbage collection target to percent, unless a
// GOGC in the environment sets it. It reports whether it set it.
func setGCPercent(percent int) bool {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return false
	}
	debug.SetGCPercent(percent)
	return true
}

// cgroupMemoryFiles hold the container's memory limit: cgroup v2's, then
// v1's.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// setMemoryLimit sets Go's soft memory limit (GOMEMLIMIT) to
// memoryLimitShare of the container's memory limit, so that the collector
// works harder as the heap nears the limit instead of the process being
// killed, and RSS follows the live heap. A GOMEMLIMIT in the environment is
// left as it is. It returns the limit set, or 0 when it set none (no
// container limit, or one given).
func setMemoryLimit(files []string) int64 {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return 0
	}
	limit := containerMemoryLimit(files)
	if limit <= 0 {
		return 0
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	return soft
}

// containerMemoryLimit is the first limit found in files, or 0 for none
// ("max", or v1's value for no limit, which is near the largest int64).
func containerMemoryLimit(files []string) int64 {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0
		}
		return n
	}
	return 0
}
