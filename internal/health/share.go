package health

import (
	"container/heap"
	"hash/fnv"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Probing shared among replicas. Every replica keeps every target, but
// probes only those it owns: each target is owned by one live member,
// chosen by rendezvous hashing over the members' names, so that a member
// that comes or goes moves only its own share. What a member judges of the
// targets it owns reaches the others as a Verdicts report (carried by the
// API server; see internal/members), and each replica takes a target it
// does not own from its owner's report. So every replica, the leader and
// the standbys alike, holds a verdict for every target, and a standby that
// becomes leader writes at once what the members have observed.

// Verdict is what the owner of a target reports of it to the other
// replicas: its health after thresholds and what status says of it.
type Verdict struct {
	Healthy bool
	// Probed says the owner has probed the target at least once: until
	// then its health is where the target started (see Target).
	Probed bool
	// Failure and Forbidden are the last probe's failure class and the
	// guard's reason (see TargetState); reported for an unhealthy target
	// only, so that a healthy target's passing failures write nothing.
	Failure, Forbidden string
	// Addresses and Passed are as in TargetState.
	Addresses, Passed int
	// LastChange is when Healthy last flipped; zero if it never has.
	LastChange time.Time
}

// Verdicts is a member's report: its verdict of every target it owns, by
// owner key and target ID.
type Verdicts map[types.NamespacedName]map[string]Verdict

// Owner returns the member that owns target id under key: the one of
// members with the highest hash of (member, key, id). Empty when members
// is.
func Owner(members []string, key types.NamespacedName, id string) string {
	best, owner := uint64(0), ""
	for _, m := range members {
		if s := score(m, key, id); owner == "" || s > best || (s == best && m < owner) {
			best, owner = s, m
		}
	}
	return owner
}

func score(member string, key types.NamespacedName, id string) uint64 {
	h := fnv.New64a()
	for _, s := range [...]string{member, key.Namespace, key.Name, id} {
		_, _ = h.Write([]byte(s))
		_, _ = h.Write([]byte{0})
	}
	return mix(h.Sum64())
}

// mix is SplitMix64's finalizer: FNV's low bits alone spread poorly over
// names that differ only at their end.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// SetMembers tells the prober the live members, this replica among them as
// self. The prober then probes only the targets it owns; a target it takes
// over is probed at once (within a tenth of its period, spread), starting
// from its former owner's last verdict; one it gives up is no longer
// probed, and takes its verdict from its new owner's report. Reports of
// members no longer listed are forgotten. Without a call, or with no
// members, the prober owns every target.
func (p *Prober) SetMembers(self string, members []string) {
	members = slices.Clone(members)
	slices.Sort(members)
	members = slices.Compact(members)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.self == self && slices.Equal(p.members, members) {
		return
	}
	p.self, p.members = self, members
	for m := range p.reports {
		if _, ok := slices.BinarySearch(members, m); !ok {
			delete(p.reports, m)
		}
	}
	now := p.clock.Now()
	for _, ts := range p.owners {
		for _, t := range ts {
			owned := p.owns(t)
			switch {
			case owned && !t.owned:
				t.owned = true
				// The former owner's verdict stands until this
				// replica's own probes decide otherwise.
				t.verdict = verdict{healthy: t.verdict.healthy}
				if !t.busy && t.index < 0 {
					t.dueAt = now.Add(firstDelay(t.spec.Period/10, p.rand()))
					t.spread = true
					heap.Push(&p.due, t)
				}
			case !owned && t.owned:
				t.owned = false
				if t.index >= 0 {
					heap.Remove(&p.due, t.index)
				}
				p.adopt(t)
			case !owned:
				p.adopt(t) // its owner may have changed
			}
		}
	}
	signal(p.reportReady)
	signal(p.wake)
}

// owns reports whether this replica probes t. p.mu is held.
func (p *Prober) owns(t *target) bool {
	return len(p.members) == 0 || Owner(p.members, t.key, t.id) == p.self
}

// Mirror takes member's report: each target this replica does not own and
// member does takes member's verdict, and a flip of its health is delivered
// as the prober's own are. Targets the report does not name keep their
// verdicts (member may not know them yet).
func (p *Prober) Mirror(member string, report Verdicts) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if member == p.self {
		return
	}
	if _, ok := slices.BinarySearch(p.members, member); !ok {
		return
	}
	if p.reports == nil {
		p.reports = map[string]Verdicts{}
	}
	p.reports[member] = report
	for key, vs := range report {
		ts := p.owners[key]
		for id := range vs {
			if t, ok := ts[id]; ok && !t.owned {
				p.adopt(t)
			}
		}
	}
}

// adopt gives t, which this replica does not own, its owner's verdict when
// the owner has reported one, and queues a flip when its health (or its
// count of passing addresses) changed. p.mu is held.
func (p *Prober) adopt(t *target) {
	v, ok := p.reports[Owner(p.members, t.key, t.id)][t.key][t.id]
	if !ok {
		return
	}
	flipped := t.verdict.healthy != v.Healthy
	counted := t.byName && (t.addresses != v.Addresses || t.passed != v.Passed)
	t.verdict = verdict{healthy: v.Healthy}
	t.failure, t.forbidden, t.lastErr = v.Failure, v.Forbidden, v.Failure
	t.addresses, t.passed = v.Addresses, v.Passed
	t.lastChange = v.LastChange
	switch {
	case !v.Probed:
		t.lastProbe = time.Time{}
	case t.lastProbe.IsZero():
		// When this replica learned of a probe, for want of its time.
		t.lastProbe = p.clock.Now()
	}
	if flipped || counted {
		f := Flip{Key: t.key, TargetID: t.id, Healthy: v.Healthy}
		if !v.Healthy {
			f.Err = v.Failure
		}
		p.pending.push(f)
		signal(p.flipReady)
	}
}

// Report returns this replica's verdict of every target it owns.
func (p *Prober) Report() Verdicts {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(Verdicts, len(p.owners))
	for key, ts := range p.owners {
		var vs map[string]Verdict
		for id, t := range ts {
			if !t.owned {
				continue
			}
			if vs == nil {
				vs = make(map[string]Verdict, len(ts))
			}
			v := Verdict{Healthy: t.verdict.healthy, Probed: !t.lastProbe.IsZero(), LastChange: t.lastChange}
			if t.byName {
				// An IP literal's counts say nothing its health does not.
				v.Addresses, v.Passed = t.addresses, t.passed
			}
			if !v.Healthy {
				v.Failure, v.Forbidden = t.failure, t.forbidden
			}
			vs[id] = v
		}
		if vs != nil {
			out[key] = vs
		}
	}
	return out
}

// ReportChanged signals, holding one signal at most, that Report may say
// something new: a verdict of an owned target changed, or the owned
// targets did.
func (p *Prober) ReportChanged() <-chan struct{} {
	return p.reportReady
}

// PokeReport signals ReportChanged, for a reader of Report that wants to
// look again (say, after a failed write).
func (p *Prober) PokeReport() {
	signal(p.reportReady)
}
