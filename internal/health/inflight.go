package health

import "syscall"

// Bounds of DefaultMaxInFlight.
const (
	// maxDefaultInFlight is the default bound where file descriptors are
	// plenty: more than 4,000 probes waiting on the network at once is a
	// cluster that needs its probing shared out, not a bigger bound.
	maxDefaultInFlight = 4096
	// minDefaultInFlight is the default bound however few file
	// descriptors the process may open.
	minDefaultInFlight = 64
	// fdsKept are the file descriptors left to everything but probes: API
	// watches, the DNS server's sockets, metrics and health endpoints.
	fdsKept = 512
)

// DefaultMaxInFlight is the bound on probes in flight when Options gives
// none: half of the file descriptors the process may open beyond those
// kept for the rest of the operator (a probe holds one socket), from 64 to
// 4,096. Go raises the soft limit to the hard one at start, so that is the
// limit read here.
func DefaultMaxInFlight() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return minDefaultInFlight
	}
	return inFlightFor(lim.Cur)
}

// inFlightFor is DefaultMaxInFlight for a file-descriptor limit.
func inFlightFor(nofile uint64) int {
	if nofile <= fdsKept {
		return minDefaultInFlight
	}
	return int(min(maxDefaultInFlight, max(minDefaultInFlight, (nofile-fdsKept)/2)))
}
