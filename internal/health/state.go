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

// jitterFraction is how far a period may stray either side of its nominal
// length, so that targets added together do not stay probed in lockstep.
const jitterFraction = 0.1

// firstDelay is how long a new target waits for its first probe: a random
// fraction (r in [0,1)) of its period, spreading the probes of targets that
// arrive together over a whole period.
func firstDelay(period time.Duration, r float64) time.Duration {
	return time.Duration(float64(period) * clampUnit(r))
}

// jitteredPeriod is the time from one probe's start to the next: the period
// stretched or shrunk by up to jitterFraction, as r (in [0,1)) says.
func jitteredPeriod(period time.Duration, r float64) time.Duration {
	return time.Duration(float64(period) * (1 - jitterFraction + 2*jitterFraction*clampUnit(r)))
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
