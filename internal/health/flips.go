package health

// Flip says that a target's health flipped, after its thresholds, between
// healthy and unhealthy. It is a notification to reconcile Key: the state to
// act on is what Status(Key) says when the reconcile runs. It is also sent,
// with the health unchanged, when a target given by name changes how many
// of its addresses it probed or how many passed, so that status can say so.
//
// When the consumer falls behind, flips waiting for the same key are merged
// so that the prober never blocks and never grows without bound: flips of one
// target keep only the latest; flips of several targets become one Flip with
// an empty TargetID ("something under Key changed"), whose Healthy and Err
// mean nothing. A key is never dropped.
type Flip struct {
	// Key is the owner key given to Set, e.g. "namespace/intent".
	Key string
	// TargetID is the target that flipped; empty when several did.
	TargetID string
	// Healthy is the target's new health.
	Healthy bool
	// Err is the last probe error when the target turned unhealthy.
	Err string
}

// flipQueue holds flips not yet taken by the consumer, at most one per key,
// in the order their keys first became pending.
type flipQueue struct {
	order   []string
	pending map[string]Flip
}

func (q *flipQueue) push(f Flip) {
	if q.pending == nil {
		q.pending = make(map[string]Flip)
	}
	old, ok := q.pending[f.Key]
	if !ok {
		q.pending[f.Key] = f
		q.order = append(q.order, f.Key)
		return
	}
	if old.TargetID != f.TargetID {
		f = Flip{Key: f.Key}
	}
	q.pending[f.Key] = f
}

func (q *flipQueue) pop() (Flip, bool) {
	if len(q.order) == 0 {
		return Flip{}, false
	}
	key := q.order[0]
	q.order = q.order[1:]
	f := q.pending[key]
	delete(q.pending, key)
	return f, true
}

func (q *flipQueue) len() int { return len(q.order) }
