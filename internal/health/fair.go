package health

import "k8s.io/apimachinery/pkg/types"

// Fair shares of the probes in flight.
//
// A probe in flight costs a socket and a goroutine, nothing a worker pool
// needs to hold: each runs on its own goroutine, and the prober bounds only
// how many are in flight at once (Options.MaxInFlight, sized against the
// process's file-descriptor limit). A probe waiting for its timeout
// therefore delays no other probe while the bound is not reached.
//
// At the bound, each owner key (an intent) is guaranteed its share: the
// bound divided by the keys that have targets, at least one. A key may claim
// beyond its share only while enough slots stay free for every other key to
// reach its own (the reserve). So a key whose backends all hang until their
// timeout can fill what others leave unused, never what they are owed, and
// its due targets wait (are parked) until one of its probes finishes: the
// delay falls on the key that is slow.

// fairShare is the prober's bookkeeping of claims, guarded by Prober.mu.
type fairShare struct {
	// claimed counts each key's probes in flight (claimed, not yet
	// released); inFlight is their sum.
	claimed  map[types.NamespacedName]int
	inFlight int
	// reserve is the slots owed to keys under their share: the sum, over
	// the keys with targets, of share minus claimed where that is
	// positive.
	reserve int
	// parked holds due targets of keys that may not claim now, in due
	// order; waiting lists those keys in the order they first parked.
	parked  map[types.NamespacedName][]*target
	waiting []types.NamespacedName
	queued  map[types.NamespacedName]bool // the keys in waiting
}

func (f *fairShare) init() {
	if f.claimed == nil {
		f.claimed = map[types.NamespacedName]int{}
		f.parked = map[types.NamespacedName][]*target{}
		f.queued = map[types.NamespacedName]bool{}
	}
}

// share is how many probes one key is guaranteed in flight. p.mu is held.
func (p *Prober) share() int {
	return max(1, p.maxInFlight/max(1, len(p.owners)))
}

// owed is what key is owed of its share now. p.mu is held.
func (p *Prober) owed(key types.NamespacedName) int {
	if _, ok := p.owners[key]; !ok {
		return 0
	}
	return max(0, p.share()-p.fair.claimed[key])
}

// recountReserve recomputes the reserve, for when the share changed (a
// key came or went). p.mu is held.
func (p *Prober) recountReserve() {
	p.fair.init()
	p.fair.reserve = 0
	for key := range p.owners {
		p.fair.reserve += p.owed(key)
	}
}

// mayClaim reports whether a due target of key may start now. p.mu is held.
func (p *Prober) mayClaim(key types.NamespacedName) bool {
	free := p.maxInFlight - p.fair.inFlight
	if free <= 0 {
		return false
	}
	if p.owed(key) > 0 {
		return true
	}
	return free > p.fair.reserve
}

// dispatch starts a due target's probe, or parks it when its key may not
// claim now. p.mu is held.
func (p *Prober) dispatch(t *target) {
	p.fair.init()
	t.busy = true
	if _, parked := p.fair.parked[t.key]; parked || !p.mayClaim(t.key) {
		p.park(t)
		return
	}
	p.claim(t)
}

func (p *Prober) park(t *target) {
	if !p.fair.queued[t.key] {
		p.fair.queued[t.key] = true
		p.fair.waiting = append(p.fair.waiting, t.key)
	}
	p.fair.parked[t.key] = append(p.fair.parked[t.key], t)
}

// claim counts t in flight and starts its probe on a goroutine of its own.
func (p *Prober) claim(t *target) {
	before := p.owed(t.key)
	p.fair.claimed[t.key]++
	p.fair.inFlight++
	p.fair.reserve -= before - p.owed(t.key)
	inFlightGauge.Set(float64(p.fair.inFlight))
	p.running.Add(1)
	due := t.dueAt
	decisive := t.verdict.decisive(t.spec.HealthyThreshold, t.spec.UnhealthyThreshold)
	go func() {
		defer p.running.Done()
		p.run(t, due, decisive)
	}()
}

// release ends t's claim and starts parked targets as far as the claims
// allow: t's key's first, then the other waiting keys'. p.mu is held.
func (p *Prober) release(t *target) {
	p.fair.init()
	before := p.owed(t.key)
	if p.fair.claimed[t.key]--; p.fair.claimed[t.key] <= 0 {
		delete(p.fair.claimed, t.key)
	}
	p.fair.inFlight--
	p.fair.reserve += p.owed(t.key) - before
	inFlightGauge.Set(float64(p.fair.inFlight))
	p.unpark(t.key)
	if len(p.fair.waiting) > 0 && p.fair.inFlight < p.maxInFlight {
		p.unparkAll()
	}
}

// unpark claims key's parked targets while the key may claim, forgetting
// those removed meanwhile. It reports whether none is left parked. p.mu is
// held.
func (p *Prober) unpark(key types.NamespacedName) bool {
	queue, ok := p.fair.parked[key]
	if !ok {
		return true
	}
	for len(queue) > 0 && (queue[0].removed || p.mayClaim(key)) {
		t := queue[0]
		queue[0] = nil
		queue = queue[1:]
		if !t.removed {
			p.claim(t)
		}
	}
	if len(queue) == 0 {
		delete(p.fair.parked, key)
		return true
	}
	p.fair.parked[key] = queue
	return false
}

// unparkAll unparks the waiting keys in the order they parked, for when
// slots came free or the shares changed. A key that still has parked
// targets keeps its place. p.mu is held.
func (p *Prober) unparkAll() {
	p.fair.init()
	keep := p.fair.waiting[:0]
	for i, key := range p.fair.waiting {
		if p.fair.inFlight >= p.maxInFlight {
			// Full: no key may claim; the rest keep their places.
			keep = append(keep, p.fair.waiting[i:]...)
			break
		}
		if p.unpark(key) {
			delete(p.fair.queued, key)
			continue
		}
		keep = append(keep, key)
	}
	clear(p.fair.waiting[len(keep):])
	p.fair.waiting = keep
}
