package controllers

import (
	"slices"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// sliceWriteMemory is how long a write is remembered at most: far longer
// than a watch event takes, even from a loaded API server, so that a write
// whose event never comes as such (a relist that saw the slice created and
// deleted by someone else) is not overlaid for ever.
const sliceWriteMemory = time.Minute

// maxSupersededVersions bounds the versions one remembered write stands
// for: writes of one slice in a row that the cache has not seen.
const maxSupersededVersions = 16

// sliceWrites remembers the EndpointSlices this replica wrote until its
// cache shows them, so that the next reconcile of the intent builds on its
// own last write rather than on the version that write replaced.
//
// When backends fail one after another (a node's worth of them, each
// decided by its own probe a few hundred milliseconds after the last), the
// intent's slices are written again before the API server has sent the
// watch event of the last write: building on the cache's stale version
// would send its resourceVersion, be refused as a conflict, and wait out a
// retry for each flip. Writes still carry a resourceVersion, so a write
// made by anyone else in the meantime is still refused, and the next
// reconcile sees it.
type sliceWrites struct {
	mu       sync.Mutex
	byIntent map[types.UID]map[string]*sliceWrite // by slice name
}

// sliceWrite is a slice as this replica last wrote it.
type sliceWrite struct {
	// obj is the slice as the API server returned it; nil when it was
	// deleted.
	obj *discoveryv1.EndpointSlice
	// superseded are the resourceVersions the write replaced: a cache
	// that shows one of them has not seen the write yet.
	superseded []string
	// created says the slice did not exist before this replica's
	// writes: a cache without it has not seen them yet.
	created bool
	// at is when it was written.
	at time.Time
}

// created records a slice this replica created (s as the API server
// returned it).
func (w *sliceWrites) created(uid types.UID, s *discoveryv1.EndpointSlice) {
	w.record(uid, s.Name, "", s.DeepCopy())
}

// updated records an update of a slice from version base (s as the API
// server returned it).
func (w *sliceWrites) updated(uid types.UID, base string, s *discoveryv1.EndpointSlice) {
	w.record(uid, s.Name, base, s.DeepCopy())
}

// deleted records the deletion of version base of slice name.
func (w *sliceWrites) deleted(uid types.UID, name, base string) {
	w.record(uid, name, base, nil)
}

func (w *sliceWrites) record(uid types.UID, name, base string, obj *discoveryv1.EndpointSlice) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byIntent == nil {
		w.byIntent = map[types.UID]map[string]*sliceWrite{}
	}
	writes := w.byIntent[uid]
	if writes == nil {
		writes = map[string]*sliceWrite{}
		w.byIntent[uid] = writes
	}
	next := &sliceWrite{obj: obj, created: base == "", at: time.Now()}
	if base != "" {
		next.superseded = []string{base}
	}
	// A write on top of one the cache has not seen stands for both.
	if prev := writes[name]; prev != nil && prev.obj != nil && prev.obj.ResourceVersion == base {
		next.created = prev.created
		next.superseded = append(prev.superseded, base)
		if len(next.superseded) > maxSupersededVersions {
			next.superseded = next.superseded[len(next.superseded)-maxSupersededVersions:]
		}
	}
	writes[name] = next
}

// overlay returns the intent's slices as cached, with this replica's own
// writes in place of the versions they replaced wherever the cache has
// not seen them yet. A write the cache has seen, or that someone else's
// has replaced, is forgotten.
func (w *sliceWrites) overlay(uid types.UID, cached []discoveryv1.EndpointSlice) []discoveryv1.EndpointSlice {
	w.mu.Lock()
	defer w.mu.Unlock()
	writes := w.byIntent[uid]
	if len(writes) == 0 {
		return cached
	}
	expired := time.Now().Add(-sliceWriteMemory)
	for name, wr := range writes {
		if wr.at.Before(expired) {
			delete(writes, name)
		}
	}
	out := cached[:0:0]
	seen := make(map[string]bool, len(cached))
	for _, c := range cached {
		seen[c.Name] = true
		wr := writes[c.Name]
		switch {
		case wr == nil:
			out = append(out, c)
		case slices.Contains(wr.superseded, c.ResourceVersion):
			// The cache is behind this replica's write.
			if wr.obj != nil {
				out = append(out, *wr.obj.DeepCopy())
			}
		default:
			// The cache shows the write, or a later one.
			delete(writes, c.Name)
			out = append(out, c)
		}
	}
	for name, wr := range writes {
		if seen[name] {
			continue
		}
		if wr.created && wr.obj != nil {
			out = append(out, *wr.obj.DeepCopy()) // created, not seen yet
		} else {
			delete(writes, name) // its deletion seen
		}
	}
	if len(writes) == 0 {
		delete(w.byIntent, uid)
	}
	return out
}

// forgetSlice drops what is remembered of the write of one slice: the API
// server said it is gone.
func (w *sliceWrites) forgetSlice(uid types.UID, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.byIntent[uid], name)
}

// forget drops what is remembered of the intent's writes.
func (w *sliceWrites) forget(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.byIntent, uid)
}
