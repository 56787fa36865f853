package health

import "time"

// verdict is a target's health as thresholds decide it from its probes.
type verdict struct {
	healthy   bool
	successes int // passes in a row
	failures  int // failures in a row
}

// observe records one probe result and reports whether it flipped the
// verdict: a healthy target turns unhealthy after unhealthyThreshold failures
// in a row, an unhealthy one healthy after healthyThreshold passes in a row.
func (v *verdict) observe(pass bool, healthyThreshold, unhealthyThreshold int) (flipped bool) {
	if pass {
		v.successes++
		v.failures = 0
		if !v.healthy && v.successes >= healthyThreshold {
			v.healthy = true
			return true
		}
		return false
	}
	v.failures++
	v.successes = 0
	if v.healthy && v.failures >= unhealthyThreshold {
		v.healthy = false
		return true
	}
	return false
}

// decisive reports whether the next probe's result alone flips the
// verdict: a failure of a healthy target one failure short of
// unhealthyThreshold, or a pass of an unhealthy one one pass short of
// healthyThreshold.
func (v *verdict) decisive(healthyThreshold, unhealthyThreshold int) bool {
	if v.healthy {
		return v.failures+1 >= unhealthyThreshold
	}
	return v.successes+1 >= healthyThreshold
}

// firstDelay is how long a new target waits for its first probe: a random
// fraction (r in [0,1)) of its period, spreading the probes of targets that
// arrive together over a whole period.
func firstDelay(period time.Duration, r float64) time.Duration {
	return time.Duration(float64(period) * clampUnit(r))
}

// nextDue is when a target is next probed, after a probe due at due that
// started at start: one period after due, so that a target is probed once
// a period whatever the probe's own delay, and the spread of the targets'
// phases that firstDelay made is kept through a stall of the process (as
// kubelet's and Envoy's checkers, there is no jitter to widen the longest
// gap between two probes beyond a period). A probe that started late by
// more than half a period is followed half a period after its start, not
// at once, so that a prober catching up runs at most twice its rate.
// spread, for a target taken over from another replica and probed at once,
// gives its next probe a random point in the half period before the next
// one, so that the targets taken over together do not stay probed
// together.
func nextDue(due, start time.Time, period time.Duration, spread bool, r float64) time.Time {
	next := due.Add(period)
	if spread {
		next = start.Add(period - time.Duration(float64(period/2)*clampUnit(r)))
	}
	if earliest := start.Add(period / 2); next.Before(earliest) {
		next = earliest
	}
	return next
}

func clampUnit(r float64) float64 {
	switch {
	case r < 0 || r != r: // negative or NaN
		return 0
	case r > 1:
		return 1
	}
	return r
}
