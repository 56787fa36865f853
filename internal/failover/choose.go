package failover

import "time"

// Target is one target of an alias, in priority order, as its probes judge
// it.
type Target struct {
	// Host is the target's name.
	Host string
	// Healthy says whether it passes its probes.
	Healthy bool
	// Since is when Healthy took its present value.
	Since time.Time
}

// Policy is an intent's failback policy.
type Policy struct {
	// Manual stays on a healthy published target, however many
	// higher-priority targets are healthy, until a person asks (Force).
	Manual bool
	// After is how long a higher-priority target must have been healthy
	// before an automatic failback returns to it.
	After time.Duration
}

// Change says how a decision moves the alias.
type Change string

// The changes.
const (
	// Initial: nothing was published before.
	Initial Change = "Initial"
	// Stay: the published target stays.
	Stay Change = "Stay"
	// Failover: the published target failed, or is no longer listed; the
	// alias moves to the first healthy target.
	Failover Change = "Failover"
	// Failback: the published target is healthy, and the alias returns to
	// a higher-priority target.
	Failback Change = "Failback"
)

// Decision is the target to publish and why.
type Decision struct {
	// Active is the target to publish.
	Active string
	// Change says how Active differs from the target published before.
	Change Change
	// AllDown says that no target is healthy: the target published before
	// stays (the first target when there was none), since an alias to a
	// failing host beats no alias.
	AllDown bool
	// RecheckAfter, when positive, is when an automatic failback falls due
	// if health stays as it is.
	RecheckAfter time.Duration
}

// Choose decides which of targets to publish, given the one published
// before (empty: none), the policy, and the time now. Force fails back to
// the first healthy target whatever the policy (a person asked).
func Choose(targets []Target, previous string, p Policy, now time.Time, force bool) Decision {
	if len(targets) == 0 {
		return Decision{Active: previous, Change: Stay, AllDown: true}
	}
	current, best := -1, -1
	for i, t := range targets {
		if t.Host == previous {
			current = i
		}
		if t.Healthy && best < 0 {
			best = i
		}
	}
	moveTo := func(i int, c Change) Decision {
		if previous == "" {
			c = Initial
		}
		return Decision{Active: targets[i].Host, Change: c}
	}
	switch {
	case best < 0 && current >= 0:
		return Decision{Active: previous, Change: Stay, AllDown: true}
	case best < 0:
		d := moveTo(0, Failover)
		d.AllDown = true
		return d
	case current < 0 || !targets[current].Healthy:
		return moveTo(best, Failover)
	case best == current:
		return Decision{Active: previous, Change: Stay}
	case force:
		return moveTo(best, Failback)
	case p.Manual:
		return Decision{Active: previous, Change: Stay}
	}
	// Automatic: the first higher-priority target healthy for long
	// enough; otherwise wait for the first to become so.
	d := Decision{Active: previous, Change: Stay}
	for i := range current {
		t := targets[i]
		if !t.Healthy {
			continue
		}
		wait := t.Since.Add(p.After).Sub(now)
		if wait <= 0 {
			return moveTo(i, Failback)
		}
		if d.RecheckAfter == 0 || wait < d.RecheckAfter {
			d.RecheckAfter = wait
		}
	}
	return d
}
