package health

import "k8s.io/apimachinery/pkg/types"

// Fair shares of the worker pool.
//
// Each owner key (an intent) may have at most share() probes claimed at
// once, queued for a worker or running: the pool divided by the keys that
// have targets, and at least one. So a key whose backends all hang until
// their timeout holds no more than its share of the workers, and every
// other key still finds a worker free when its targets fall due: with no
// more keys than workers, the claims of all keys together never exceed the
// pool. A due target of a key at its share waits (is parked) until one of
// that key's probes finishes; the delay falls on the key that is slow.
//
// With more keys than workers each key has one probe in flight at most, and
// a due target may wait for a worker behind other keys' probes; raise the
// worker count with the number of intents.

// fairShare is the prober's bookkeeping of claims, guarded by Prober.mu.
type fairShare struct {
	// claimed counts each key's probes queued in runq or running.
	claimed map[types.NamespacedName]int
	// parked holds due targets of keys at their share, in due order.
	parked map[types.NamespacedName][]*target
	// runq holds claimed targets waiting for a worker, first in first out.
	runq []*target
	// runReady tells the workers that runq may hold a target; it holds
	// one signal, so sending never blocks.
	runReady chan struct{}
}

func (f *fairShare) init() {
	if f.claimed == nil {
		f.claimed = map[types.NamespacedName]int{}
		f.parked = map[types.NamespacedName][]*target{}
		f.runReady = make(chan struct{}, 1)
	}
}

// share is how many probes one key may have claimed at once. p.mu is held.
func (p *Prober) share() int {
	return max(1, p.workers/max(1, len(p.owners)))
}

// dispatch hands a due target to the workers, or parks it when its key is
// at its share. p.mu is held.
func (p *Prober) dispatch(t *target) {
	p.fair.init()
	if p.fair.claimed[t.key] >= p.share() {
		p.fair.parked[t.key] = append(p.fair.parked[t.key], t)
		return
	}
	p.claim(t)
}

func (p *Prober) claim(t *target) {
	p.fair.claimed[t.key]++
	p.fair.runq = append(p.fair.runq, t)
	signal(p.fair.runReady)
}

// release ends t's claim and hands its key's parked targets to the
// workers as far as the share allows. p.mu is held.
func (p *Prober) release(t *target) {
	p.fair.init()
	if p.fair.claimed[t.key]--; p.fair.claimed[t.key] <= 0 {
		delete(p.fair.claimed, t.key)
	}
	p.unpark(t.key)
}

// unpark claims key's parked targets while the key is under its share,
// forgetting those removed meanwhile. p.mu is held.
func (p *Prober) unpark(key types.NamespacedName) {
	queue := p.fair.parked[key]
	for len(queue) > 0 && p.fair.claimed[key] < p.share() {
		t := queue[0]
		queue[0] = nil
		queue = queue[1:]
		if !t.removed {
			p.claim(t)
		}
	}
	if len(queue) == 0 {
		delete(p.fair.parked, key)
	} else {
		p.fair.parked[key] = queue
	}
}

// unparkAll unparks every key, for when the share may have grown: a key
// came or went. p.mu is held.
func (p *Prober) unparkAll() {
	p.fair.init()
	for key := range p.fair.parked {
		p.unpark(key)
	}
}

// next takes the first claimed target off the run queue, or returns nil
// when it is empty.
func (p *Prober) next() *target {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.fair.runq) == 0 {
		return nil
	}
	t := p.fair.runq[0]
	p.fair.runq[0] = nil
	p.fair.runq = p.fair.runq[1:]
	if len(p.fair.runq) > 0 {
		// Another worker may be idle: pass the signal on.
		signal(p.fair.runReady)
	}
	return t
}

// skip releases the claim of a target removed before its probe ran.
func (p *Prober) skip(t *target) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !t.removed {
		return false
	}
	p.release(t)
	return true
}
