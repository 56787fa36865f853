package health

import (
	"container/heap"
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// Target is one backend to probe under an owner key.
type Target struct {
	// ID names the target, stable and unique under its key, such as
	// "10.0.0.5:8080" or a host name. Status and Flip report by ID.
	ID string
	// Address is the IP address or host name to probe. A host name is
	// resolved at every probe, and the guard judges the address dialled.
	Address string
	// Spec says how to probe. Zero fields take their defaults.
	Spec ProbeSpec
	// StartUnhealthy makes a new target unhealthy until it passes
	// HealthyThreshold probes. By default a new target is healthy until
	// proven otherwise, so that new backends are not held out of traffic
	// for the time it takes to probe them. It matters only when the target
	// is new or its Address or Spec changed.
	StartUnhealthy bool
	// StartUnproven makes a new target unhealthy until its first probe
	// passes, whatever HealthyThreshold says: for a target whose last
	// known health is unknown rather than failed. StartUnhealthy wins when
	// both are set.
	StartUnproven bool
}

// TargetState is what the prober knows of one target.
type TargetState struct {
	// Healthy is the target's health after thresholds.
	Healthy bool
	// LastError is the error of the last probe; empty if it passed or
	// none has run yet.
	LastError string
	// Failure is the short class of the last probe's failure (see
	// FailureClass), for status; empty if it passed or none has run yet.
	Failure string
	// Forbidden says why the guard refuses the target, such as
	// "loopback"; empty unless Failure is FailureForbiddenTarget.
	Forbidden string
	// LastProbe is when the last probe finished; zero before the first.
	LastProbe time.Time
	// LastChange is when Healthy last flipped; zero if it never has.
	LastChange time.Time
	// Addresses is how many addresses the last probe dialled (every
	// address a host name resolved to), and Passed how many of them
	// passed; zero before the first probe.
	Addresses, Passed int
	// ConsecutiveSuccesses and ConsecutiveFailures count the last run of
	// passing or failing probes.
	ConsecutiveSuccesses int
	ConsecutiveFailures  int
}

// Options configure a Prober.
type Options struct {
	// MaxInFlight bounds how many probes are in flight at once, each on
	// a goroutine of its own. Default: DefaultMaxInFlight(). Each owner
	// key is guaranteed a fair share of them (see fair.go).
	MaxInFlight int
	// Logger receives a line for every flip. Default: the logger of the
	// context Start is given, named "health", if it holds one.
	Logger logr.Logger
	// Checker runs the probes. Default: a zero Checker.
	Checker *Checker
	// Clock times the probes: when each falls due, when it ran, when a
	// target's health changed. Default: the real clock.
	Clock clock.WithDelayedExecution
}

// Prober probes targets once a period, at phases spread over the period,
// each probe on a goroutine
// of its own, with a bound on the probes in flight shared fairly among
// owner keys (see fairShare); it keeps each
// target's health after its thresholds, and reports
// flips on Flips. Targets are grouped under owner keys (the key of the
// intent they belong to) that Set replaces as a whole.
//
// Set, Remove and Status are safe for concurrent use and never wait for a
// probe. Targets may be set before Start; they are probed once it runs.
// Prober fits a controller-runtime manager as a Runnable that runs on every
// replica, leader or not (NeedLeaderElection), so that a replica that
// becomes leader has its verdicts already. Flips wait, merged by key, until
// their consumer reads them.
type Prober struct {
	maxInFlight int
	log         logr.Logger
	clock       clock.WithDelayedExecution
	probe       func(ctx context.Context, address string, spec ProbeSpec) Result
	// refuse judges a target's address before any probe: an IP literal
	// the guard refuses is unhealthy from the start.
	refuse func(address string) error
	rand   func() float64

	mu      sync.Mutex
	owners  map[types.NamespacedName]map[string]*target
	due     dueQueue
	pending flipQueue
	started bool
	ctx     context.Context // Start's, for the probes it starts
	fair    fairShare
	running sync.WaitGroup // probes in flight

	// wake tells the scheduler that the earliest due time may have
	// changed; flipReady tells the deliverer that a flip is pending. Both
	// hold one signal, so sending never blocks.
	wake      chan struct{}
	flipReady chan struct{}
	flips     chan Flip
	// active holds a token for each probe working now (see activeSlots);
	// decisive, for each decisive probe working beyond them (see
	// decisiveSlots).
	active   chan struct{}
	decisive chan struct{}

	// Probing shared among replicas (see share.go): the live members,
	// sorted, this replica's name among them, and each other member's last
	// report. reportReady signals that Report may have changed.
	self        string
	members     []string
	reports     map[string]Verdicts
	reportReady chan struct{}
}

// activeSlots bounds the probes working at once (connecting, sending,
// reading) as opposed to waiting on the network: a few per CPU keep
// every CPU busy, and more only add latency to each probe when the CPUs
// are saturated, until healthy backends' probes time out. activeHold is how
// long a probe holds its slot before it counts as waiting: well above a
// healthy probe's time on a local network (about a millisecond), well
// below any timeout.
var activeSlots = 32 * runtime.GOMAXPROCS(0)

const activeHold = 10 * time.Millisecond

// decisiveSlots are active slots only a decisive probe may take (one whose
// result alone flips its target's verdict, see verdict.decisive), beyond
// activeSlots: when the CPUs are saturated and routine probes queue for a
// slot, the probe that takes a dead backend out of traffic, or brings a
// recovered one back, does not queue behind them.
var decisiveSlots = activeSlots / 4

// NewProber returns a Prober; call Start (or add it to a manager) to run it.
func NewProber(opts Options) *Prober {
	p := &Prober{
		maxInFlight: opts.MaxInFlight,
		log:         opts.Logger,
		clock:       opts.Clock,
		rand:        rand.Float64,
		owners:      make(map[types.NamespacedName]map[string]*target),
		wake:        make(chan struct{}, 1),
		flipReady:   make(chan struct{}, 1),
		flips:       make(chan Flip),
		active:      make(chan struct{}, activeSlots),
		decisive:    make(chan struct{}, decisiveSlots),
		reportReady: make(chan struct{}, 1),
	}
	if p.maxInFlight <= 0 {
		p.maxInFlight = DefaultMaxInFlight()
	}
	if p.clock == nil {
		p.clock = clock.RealClock{}
	}
	checker := opts.Checker
	if checker == nil {
		checker = &Checker{}
	}
	p.probe = checker.Probe
	p.refuse = checker.refuseLiteral
	return p
}

// target is the prober's record of one Target. key, id, address and spec
// never change: a changed Target replaces its record.
type target struct {
	key         types.NamespacedName
	id, address string
	spec        ProbeSpec

	verdict    verdict
	lastErr    string
	failure    string
	forbidden  string
	lastProbe  time.Time
	lastChange time.Time
	addresses  int
	passed     int
	byName     bool // address is a host name, not an IP literal

	dueAt   time.Time
	index   int  // position in the due queue; -1 when not queued
	removed bool // Set or Remove dropped it while a probe ran
	// owned says this replica probes the target (see SetMembers); busy,
	// that it is parked or probed, out of the due queue until its probe
	// is done.
	owned bool
	busy  bool
	// spread: taken over from another member and due at once; its next
	// probe is spread over half a period (see nextDue).
	spread bool
}

// Set replaces the targets under key. A target whose ID, Address and Spec
// are unchanged keeps its state and schedule; a new or changed one starts
// afresh, with its first probe a random fraction of its period away. Targets
// no longer listed are forgotten. Of targets sharing an ID, the first counts.
func (p *Prober) Set(key types.NamespacedName, targets []Target) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.owners[key]
	next := make(map[string]*target, len(targets))
	now := p.clock.Now()
	changed := false // in the owned targets
	for _, tg := range targets {
		if _, dup := next[tg.ID]; dup {
			continue
		}
		spec := tg.Spec.WithDefaults()
		if t, ok := old[tg.ID]; ok && t.address == tg.Address && t.spec.Equal(spec) {
			next[tg.ID] = t
			delete(old, tg.ID)
			continue
		}
		t := &target{
			key:     key,
			id:      tg.ID,
			address: tg.Address,
			spec:    spec,
			verdict: initialVerdict(tg, spec.HealthyThreshold),
			byName:  !isIP(tg.Address),
			dueAt:   now.Add(firstDelay(spec.Period, p.rand())),
			index:   -1,
		}
		t.owned = p.owns(t)
		p.judgeAddress(t)
		if t.owned {
			heap.Push(&p.due, t)
			changed = true
		} else {
			p.adopt(t)
		}
		next[tg.ID] = t
	}
	for _, t := range old {
		changed = changed || t.owned
		p.drop(t)
	}
	if changed {
		signal(p.reportReady)
	}
	_, had := p.owners[key]
	if len(next) == 0 {
		delete(p.owners, key)
	} else {
		p.owners[key] = next
	}
	if _, has := p.owners[key]; has != had {
		p.recountReserve() // the share changed
	}
	p.unparkAll()
	signal(p.wake)
}

// isIP reports whether address is an IP address rather than a name.
func isIP(address string) bool {
	_, ok := ipLiteral(address)
	return ok
}

// initialVerdict is a new target's health before its first probe.
func initialVerdict(tg Target, healthyThreshold int) verdict {
	switch {
	case tg.StartUnhealthy:
		return verdict{}
	case tg.StartUnproven:
		// One pass short of the threshold: the first pass returns it.
		return verdict{successes: max(healthyThreshold-1, 0)}
	}
	return verdict{healthy: true}
}

// Remove forgets every target under key.
func (p *Prober) Remove(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.owners[key]; !ok {
		return
	}
	for _, t := range p.owners[key] {
		p.drop(t)
	}
	delete(p.owners, key)
	signal(p.reportReady)
	p.recountReserve() // the share changed
	p.unparkAll()
}

// judgeAddress makes a new target whose address the guard refuses
// unhealthy at once: no probe of it can ever pass, and it must not be
// published ready while its first probe is awaited.
func (p *Prober) judgeAddress(t *target) {
	if err := p.refuse(t.address); err != nil {
		t.verdict.healthy = false
		t.record(err)
	}
}

// record keeps what a probe's error says.
func (t *target) record(err error) {
	t.lastErr, t.failure, t.forbidden = "", "", ""
	if err != nil {
		t.lastErr, t.failure, t.forbidden = err.Error(), FailureClass(err), forbiddenDetail(err)
	}
}

func (p *Prober) drop(t *target) {
	t.removed = true
	if t.index >= 0 {
		heap.Remove(&p.due, t.index)
	}
}

// Status returns the state of each target under key, by target ID; empty
// when the key has no targets.
func (p *Prober) Status(key types.NamespacedName) map[string]TargetState {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.owners[key]
	out := make(map[string]TargetState, len(ts))
	for id, t := range ts {
		out[id] = TargetState{
			Healthy:              t.verdict.healthy,
			LastError:            t.lastErr,
			Failure:              t.failure,
			Forbidden:            t.forbidden,
			LastProbe:            t.lastProbe,
			LastChange:           t.lastChange,
			Addresses:            t.addresses,
			Passed:               t.passed,
			ConsecutiveSuccesses: t.verdict.successes,
			ConsecutiveFailures:  t.verdict.failures,
		}
	}
	return out
}

// Flips returns the channel on which flips are delivered, closed when Start
// returns. It has one consumer: either read it, or use Source, not both.
func (p *Prober) Flips() <-chan Flip {
	return p.flips
}

// NeedLeaderElection is false, as controller-runtime's
// manager.LeaderElectionRunnable asks: every
// replica probes, so that a new leader acts at once on what it has
// observed, not on what was published before it.
func (p *Prober) NeedLeaderElection() bool {
	return false
}

// Start runs the scheduler, the workers and the flip delivery until ctx is
// done, as controller-runtime's manager.Runnable asks. It may be called
// once.
func (p *Prober) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("health prober already started")
	}
	p.started = true
	if p.log.GetSink() == nil {
		p.log = logr.FromContextOrDiscard(ctx).WithName("health")
	}
	// Targets set long before Start would otherwise all fall due at once.
	now := p.clock.Now()
	for _, t := range p.due {
		if t.dueAt.Before(now) {
			t.dueAt = now.Add(firstDelay(t.spec.Period, p.rand()))
		}
	}
	heap.Init(&p.due)
	p.fair.init()
	p.recountReserve()
	p.ctx = ctx
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { p.deliver(ctx) })
	p.schedule(ctx)
	wg.Wait()
	p.running.Wait()
	close(p.flips)
	return nil
}

// schedule starts each target's probe when it falls due, within its key's
// share (see dispatch). A target is out of the due queue while it is parked
// or probed, so it never runs twice at once.
func (p *Prober) schedule(ctx context.Context) {
	timer := p.clock.NewTimer(time.Hour)
	timer.Stop()
	for {
		wait := time.Duration(-1)
		p.mu.Lock()
		now := p.clock.Now()
		for p.due.Len() > 0 && !p.due[0].dueAt.After(now) {
			p.dispatch(heap.Pop(&p.due).(*target))
		}
		if p.due.Len() > 0 {
			wait = p.due[0].dueAt.Sub(now)
		}
		p.mu.Unlock()

		var fire <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-p.wake:
		case <-fire:
		}
		timer.Stop()
	}
}

// run probes t, claimed by dispatch when it fell due at due, and records
// the result. The probe holds an active slot while it works (see
// activeSlots), a decisive probe one of the decisiveSlots when no other is
// free.
func (p *Prober) run(t *target, due time.Time, decisive bool) {
	ctx := p.ctx
	if p.skip(t) {
		return
	}
	slots := p.active
	var reserved chan struct{} // nil for a routine probe: never ready
	if decisive {
		reserved = p.decisive
	}
	select {
	case p.active <- struct{}{}:
	case reserved <- struct{}{}:
		slots = reserved
	case <-ctx.Done():
		return
	}
	var once sync.Once
	done := func() { once.Do(func() { <-slots }) }
	// A probe not done within activeHold is waiting on the network (a
	// connect to a dead host, a backend slow to answer): it gives its
	// slot back and waits holding only its socket.
	hold := p.clock.AfterFunc(activeHold, done)
	start := p.clock.Now()
	probeStartDelay.Observe(max(start.Sub(due), 0).Seconds())
	res := p.probe(ctx, t.address, t.spec)
	hold.Stop()
	done()
	if ctx.Err() != nil {
		// Shutting down: the error says nothing about the target.
		return
	}
	probeDuration.Observe(p.clock.Since(start).Seconds())
	probeTotal.WithLabelValues(resultOf(res.Err)).Inc()
	if f, flipped := p.finish(t, start, res); flipped {
		p.log.Info("Target health changed", "key", f.Key, "target", f.TargetID, "healthy", f.Healthy, "error", f.Err)
	}
}

// skip releases the claim of a target removed, or given to another
// member, before its probe ran.
func (p *Prober) skip(t *target) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !t.removed && t.owned {
		return false
	}
	t.busy = false
	p.release(t)
	return true
}

// finish records a probe's result, queues a flip for delivery (and returns
// it), and schedules the next probe a period after this one was due (see
// nextDue).
func (p *Prober) finish(t *target, start time.Time, res Result) (f Flip, flipped bool) {
	err := res.Err
	p.mu.Lock()
	defer p.mu.Unlock()
	p.release(t)
	t.busy = false
	if t.removed || !t.owned {
		// Given to another member while probed: its verdict is the
		// new owner's now.
		return Flip{}, false
	}
	now := p.clock.Now()
	failure, first := t.failure, t.lastProbe.IsZero()
	t.lastProbe = now
	// A target given by name tells how many of its addresses it probed
	// and how many passed; a change is worth a status update too.
	counted := t.byName && (t.addresses != res.Addresses || t.passed != res.Passed)
	t.addresses, t.passed = res.Addresses, res.Passed
	t.record(err)
	flipped = t.verdict.observe(err == nil, t.spec.HealthyThreshold, t.spec.UnhealthyThreshold)
	if t.failure == FailureForbiddenTarget && t.verdict.healthy {
		// No later probe can pass: out of traffic now, whatever the
		// threshold (a host name may resolve to a refused address).
		t.verdict = verdict{failures: t.verdict.failures}
		flipped = true
	}
	if flipped {
		t.lastChange = now
		f = Flip{Key: t.key, TargetID: t.id, Healthy: t.verdict.healthy}
		if !f.Healthy {
			f.Err = t.lastErr
		}
		p.pending.push(f)
		signal(p.flipReady)
	} else if counted {
		p.pending.push(Flip{Key: t.key, TargetID: t.id, Healthy: t.verdict.healthy})
		signal(p.flipReady)
	}
	if flipped || counted || first || (!t.verdict.healthy && t.failure != failure) {
		signal(p.reportReady) // what Report says of t changed
	}
	t.dueAt = nextDue(t.dueAt, start, t.spec.Period, t.spread, p.rand())
	t.spread = false
	heap.Push(&p.due, t)
	signal(p.wake)
	return f, flipped
}

// deliver hands pending flips to the consumer. It alone may block on the
// consumer; while it does, further flips merge in the pending queue.
func (p *Prober) deliver(ctx context.Context) {
	for {
		p.mu.Lock()
		f, ok := p.pending.pop()
		p.mu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-p.flipReady:
				continue
			}
		}
		select {
		case p.flips <- f:
		case <-ctx.Done():
			return
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// dueQueue is a min-heap of targets by due time.
type dueQueue []*target

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].dueAt.Before(q[j].dueAt) }
func (q dueQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}

func (q *dueQueue) Push(x any) {
	t := x.(*target)
	t.index = len(*q)
	*q = append(*q, t)
}

func (q *dueQueue) Pop() any {
	old := *q
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	t.index = -1
	*q = old[:n-1]
	return t
}
