package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/csaupgrade"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/intent"
)

// IntentReconciler turns each NetworkIntent into its Service and
// EndpointSlices, and is the only writer of the intent's status.
type IntentReconciler struct {
	Client client.Client
	// APIReader reads from the API server, not the cache: what the
	// finalizer deletes, and who holds a Service the cache has not seen.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Prober runs the intents' active health checks. It must run on every
	// replica, leader or not (a ProbeTargetReconciler feeds it there), so
	// that a new leader starts from what it has observed.
	Prober *health.Prober
	// Workers is how many intents are reconciled at once (0: one). Each
	// intent is reconciled by one worker at a time whatever it is.
	Workers int
	// SliceWriter writes the EndpointSlices (nil: Client). A client of
	// its own gives the writes that take dead backends out of traffic a
	// rate budget of their own, so that they never wait behind status
	// writes or Service updates.
	SliceWriter client.Writer

	// statusHeld is the health-only status each intent holds back (by
	// key; see deferStatus), so that a burst of health flips is reported
	// in one write.
	statusHeld sync.Map
	// checkedOut holds, by intent, the backends its active checks judged
	// out of traffic at its last reconcile (countEjections); nothing for an
	// intent with none.
	checkedOut sync.Map

	// slicesWritten holds the slice writes the cache has not shown yet.
	slicesWritten sliceWrites
	// sliceIndex is the slice informer's store, with sliceIntentIndex
	// (nil: slices are listed through Client).
	sliceIndex toolscache.Indexer
	// serviceStore is the Service informer's store, which keeps with an
	// intent's Service what the operator owns in it (trimService; nil:
	// read from the API server).
	serviceStore toolscache.Store
	// intentStore is the intent informer's store (intentStore; nil:
	// intents are listed through Client).
	intentStore toolscache.Indexer

	// published is the ExternalName target each intent's last failover or
	// failback was announced for (by key), so that a move decided again
	// after a failed status write is not announced twice.
	published sync.Map
}

var _ reconcile.Reconciler = &IntentReconciler{}

// +kubebuilder:rbac:groups=networking.netintent.io,resources=networkintents,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=networking.netintent.io,resources=networkintents/status,verbs=patch
// +kubebuilder:rbac:groups=networking.netintent.io,resources=networkintents/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings the intent's Service in line with the intent and reports
// what it did in the intent's status.
func (r *IntentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	in := &v1alpha1.NetworkIntent{}
	if err := r.Client.Get(ctx, req.NamespacedName, in); err != nil {
		if apierrors.IsNotFound(err) {
			r.statusHeld.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !in.DeletionTimestamp.IsZero() {
		r.Prober.Remove(req.NamespacedName)
		r.published.Delete(req.NamespacedName)
		r.statusHeld.Delete(req.NamespacedName)
		r.checkedOut.Delete(req.NamespacedName)
		r.slicesWritten.forget(in.UID)
		forgetEndpointMetrics(in)
		forgetTargetMetrics(in)
		return ctrl.Result{}, r.finalize(ctx, in)
	}
	if !controllerutil.ContainsFinalizer(in, v1alpha1.IntentFinalizer) {
		patch := client.MergeFromWithOptions(in.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(in, v1alpha1.IntentFinalizer)
		if err := r.Client.Patch(ctx, in, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
	}

	before := in.Status.DeepCopy()
	scope := &intentScope{in: in}
	// The phases run in order over the scope, each only if the one before
	// succeeded; their results are merged, so no phase's requeue is lost.
	// The targets come first: the Service publishes the one chosen.
	var result ctrl.Result
	var err error
	for _, phase := range []func(context.Context, *intentScope) (ctrl.Result, error){
		r.reconcileTargets,
		r.reconcileService,
		r.reconcileEndpoints,
	} {
		var res ctrl.Result
		res, err = phase(ctx, scope)
		result = mergeResults(result, res)
		if err != nil {
			break
		}
	}
	if kept := (errStatusKept{}); errors.As(err, &kept) {
		return ctrl.Result{}, kept.error
	}
	if err == nil && result.RequeueAfter == 0 {
		// Only a generation that every phase has carried out, none of
		// them still waiting (for an old Service to go, for the cache), is
		// observed.
		in.Status.ObservedGeneration = in.Generation
	}
	// A failback due later is a timer, not a phase still waiting.
	result = mergeResults(result, ctrl.Result{RequeueAfter: scope.recheck})
	intent.SetReady(in)
	if equality.Semantic.DeepEqual(before, &in.Status) {
		r.statusHeld.Delete(req.NamespacedName) // back to what is written
	} else {
		if wait := r.deferStatus(req.NamespacedName, before, in, time.Now()); wait > 0 {
			log.V(1).Info("Deferring intent status", "intent", klog.KObj(in), "wait", wait)
			if err != nil {
				return ctrl.Result{}, err
			}
			return mergeResults(result, ctrl.Result{RequeueAfter: wait}), nil
		}
		log.V(1).Info("Updating intent status", "intent", klog.KObj(in))
		written := in.DeepCopy()
		written.Status = *before
		uerr := patchStatus(ctx, r.Client, in, written)
		if apierrors.IsNotFound(uerr) {
			// The intent went while this reconcile worked from the
			// cache's copy of it, its finalizer already run: what the
			// reconcile made for it has no one left to delete it.
			log.Info("Intent gone while reconciled; deleting what was made for it", "intent", klog.KObj(in), "uid", in.UID)
			return ctrl.Result{}, r.deleteOwned(ctx, in)
		}
		if uerr != nil && err == nil {
			// A conflict: the cache had not yet seen our last write; try
			// again on the fresh object.
			var retry ctrl.Result
			retry, err = retryConflict(fmt.Errorf("updating status: %w", uerr))
			result = mergeResults(result, retry)
		}
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	return result, nil
}

// statusQuiet and statusMaxDelay pace the status writes of an intent that
// only report endpoint health. A node's death flips many backends of an
// intent one after another, each flip publishes its slices at once, and
// the status follows in one write once the flips have stopped for
// statusQuiet, or statusMaxDelay after the first of them if they go on.
// Status writes of an intent (a custom resource, its spec and all) cost
// the API server several times what a slice write costs: written with
// each flip, they took half of it while a node's backends were taken out,
// and the slice writes waited.
const (
	statusQuiet    = time.Second
	statusMaxDelay = 5 * time.Second
)

// heldStatus is an intent status not yet written, that only reports
// endpoint health.
type heldStatus struct {
	// since is when the first change held came; changed, when the last
	// did.
	since, changed time.Time
	status         v1alpha1.NetworkIntentStatus
}

// deferStatus says how long the status write of in should wait: zero, but
// when the status written before (by this replica or any other, before
// a restart or a change of leader alike) reported the current generation
// and Ready, and Ready is unchanged, so that all that changed is endpoint
// health (see statusQuiet).
func (r *IntentReconciler) deferStatus(key types.NamespacedName, before *v1alpha1.NetworkIntentStatus, in *v1alpha1.NetworkIntent, now time.Time) time.Duration {
	if !healthOnly(before, in) {
		r.statusHeld.Delete(key)
		return 0
	}
	var held *heldStatus
	if v, ok := r.statusHeld.Load(key); ok {
		held = v.(*heldStatus)
	}
	switch {
	case held == nil:
		held = &heldStatus{since: now, changed: now, status: *in.Status.DeepCopy()}
		r.statusHeld.Store(key, held)
	case !equality.Semantic.DeepEqual(&held.status, &in.Status):
		held.changed, held.status = now, *in.Status.DeepCopy()
	}
	due := held.changed.Add(statusQuiet)
	if latest := held.since.Add(statusMaxDelay); latest.Before(due) {
		due = latest
	}
	if wait := due.Sub(now); wait > 0 {
		return wait
	}
	r.statusHeld.Delete(key)
	return 0
}

// healthOnly reports whether in's status differs from before in endpoint
// health alone (status.endpoints and the EndpointsHealthy condition): the
// status was written before, for the current generation, and Ready keeps
// its status. A move of an ExternalName target, or anything else, is no
// health-only change. What was written before is what the API server
// holds, whoever wrote it: a replica that has just become the leader
// holds back health-only writes as its predecessor did, so that a bulk
// failure right after a change of leader does not bring a status write
// with every flip.
func healthOnly(before *v1alpha1.NetworkIntentStatus, in *v1alpha1.NetworkIntent) bool {
	if before.ObservedGeneration != in.Generation || in.Status.ObservedGeneration != in.Generation {
		return false
	}
	wasReady := meta.FindStatusCondition(before.Conditions, v1alpha1.IntentConditionReady)
	isReady := meta.FindStatusCondition(in.Status.Conditions, v1alpha1.IntentConditionReady)
	if wasReady == nil || isReady == nil || wasReady.Status != isReady.Status {
		return false
	}
	return equality.Semantic.DeepEqual(withoutHealth(before), withoutHealth(&in.Status))
}

// withoutHealth is a copy of st without what endpoint health changes:
// status.endpoints, and the EndpointsHealthy and Ready conditions (Ready's
// message counts the healthy endpoints).
func withoutHealth(st *v1alpha1.NetworkIntentStatus) *v1alpha1.NetworkIntentStatus {
	out := st.DeepCopy()
	out.Endpoints = nil
	meta.RemoveStatusCondition(&out.Conditions, v1alpha1.IntentConditionEndpointsHealthy)
	meta.RemoveStatusCondition(&out.Conditions, v1alpha1.IntentConditionReady)
	return out
}

// intentScope is one reconcile of an intent: the intent, whose status the
// phases fill in, and what a phase learnt that a later one needs.
type intentScope struct {
	in *v1alpha1.NetworkIntent
	// externalName is the target an ExternalName intent's Service
	// publishes, as the targets phase chose it; recheck, when positive,
	// is when an automatic failback falls due.
	externalName string
	recheck      time.Duration
	// service is the intent's Service as the service phase last saw it;
	// nil when there is none, or the cache has not seen it yet.
	service *corev1.Service
	// pods are the pods the intent's selector selects, as the endpoints
	// phase listed them.
	pods []corev1.Pod
	// foreign: the Service of the intent's name belongs to someone else,
	// so the intent publishes nothing for it.
	foreign bool
}

// mergeResults folds two phases' results into one: the sooner of two
// requeues wins, and a requeue is never dropped for none.
func mergeResults(a, b ctrl.Result) ctrl.Result {
	switch {
	case a.RequeueAfter <= 0:
		return b
	case b.RequeueAfter <= 0 || a.RequeueAfter <= b.RequeueAfter:
		return a
	}
	return b
}

// reconcileService applies the intent's Service, or explains in the
// ServiceReady condition why it cannot. It observes the Service there is,
// then creates the intent's or applies it over the one there is.
func (r *IntentReconciler) reconcileService(ctx context.Context, s *intentScope) (ctrl.Result, error) {
	existing, err := r.observeService(ctx, s)
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case s.foreign:
		return ctrl.Result{}, nil
	case existing != nil && !existing.DeletionTimestamp.IsZero():
		intent.SetCondition(s.in, v1alpha1.IntentConditionServiceReady, false, v1alpha1.IntentReasonRecreating, "waiting for the old Service %s to be deleted", existing.Name)
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	desired := intent.DesiredService(s.in, s.externalName)
	if existing == nil {
		return r.createIntentService(ctx, s, desired)
	}
	return r.applyService(ctx, s, existing, desired)
}

// observeService reads the Service of the intent's name. One that belongs
// to someone else is a conflict (s.foreign); one of the intent's that must
// be recreated to match it (intent.RecreateReason) is deleted, and nil is
// returned as if none were there.
func (r *IntentReconciler) observeService(ctx context.Context, s *intentScope) (*corev1.Service, error) {
	in := s.in
	existing := &corev1.Service{}
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(in), existing)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("getting service: %w", err)
	case !metav1.IsControlledBy(existing, in):
		if removed, err := r.removeLeftBehind(ctx, in, existing); err != nil || removed {
			// Gone: the next reconcile, which the Service's deletion
			// brings, creates the intent's own.
			return nil, err
		}
		r.conflict(s, existing)
		return nil, nil
	}
	s.service = existing
	if !existing.DeletionTimestamp.IsZero() {
		return existing, nil
	}
	why := intent.RecreateReason(existing, in)
	if why == "" {
		return existing, nil
	}
	uid := existing.UID
	if err := r.Client.Delete(ctx, existing, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return nil, fmt.Errorf("deleting service to recreate it: %w", err)
	}
	r.Recorder.Eventf(in, existing, corev1.EventTypeNormal, v1alpha1.IntentReasonRecreating, "Recreate",
		"Recreating Service %s: %s", existing.Name, why)
	s.service = nil
	return nil, nil
}

// createIntentService creates the intent's Service: a create, never an
// apply, since an apply would take over a Service that the cache has not
// seen yet.
func (r *IntentReconciler) createIntentService(ctx context.Context, s *intentScope, desired *corev1ac.ServiceApplyConfiguration) (ctrl.Result, error) {
	in := s.in
	created, taken, err := r.createService(ctx, in, desired)
	switch {
	case err != nil:
		intent.SetCondition(in, v1alpha1.IntentConditionServiceReady, false, v1alpha1.IntentReasonApplyFailed, "creating Service %s failed: %v", in.Name, err)
		return ctrl.Result{}, err
	case taken != nil && metav1.IsControlledBy(taken, in):
		// Ours, created by an earlier reconcile: the cache brings it
		// back. Meanwhile the endpoints follow the API server's copy
		// (its IP families keep their placeholder slices).
		s.service = taken
		return ctrl.Result{RequeueAfter: time.Second}, nil
	case taken != nil:
		if removed, err := r.removeLeftBehind(ctx, in, taken); err != nil || removed {
			return ctrl.Result{RequeueAfter: time.Second}, err
		}
		r.conflict(s, taken)
		return ctrl.Result{}, nil
	}
	// The created Service, as the API server returned it: the endpoints
	// need not wait for the cache to see it.
	r.serviceApplied(s, created)
	return ctrl.Result{}, nil
}

// applyService applies the intent's Service over the intent's Service
// there is, unless it already matches.
func (r *IntentReconciler) applyService(ctx context.Context, s *intentScope, existing *corev1.Service, desired *corev1ac.ServiceApplyConfiguration) (ctrl.Result, error) {
	in := s.in
	current, err := r.ownedFieldsOf(ctx, existing)
	if err != nil {
		return ctrl.Result{}, err
	}
	if current != nil && intent.Unchanged(current, desired) {
		r.serviceApplied(s, existing)
		return ctrl.Result{}, nil
	}
	// A write needs the Service's managedFields, which the cache does not
	// keep: the same version, from the API server.
	if existing, err = r.liveService(ctx, existing); err != nil || existing == nil {
		// Changed since the cache's copy: its event brings us back.
		return ctrl.Result{RequeueAfter: time.Second}, err
	}
	// The create (or a port clean-up) left the operator's fields under an
	// update; an apply owns them only once they are moved.
	if err := r.adoptUpdatedFields(ctx, existing); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.dropForeignPorts(ctx, existing, desired); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Client.Apply(ctx, desired.WithResourceVersion(existing.ResourceVersion), client.FieldOwner(v1alpha1.FieldOwner), client.ForceOwnership); err != nil {
		if apierrors.IsConflict(err) {
			// The Service changed since the cache's copy, on which the
			// ownership check was made: an apply now could take back a
			// Service someone else has just taken over. The change's
			// event brings us back.
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		intent.SetCondition(in, v1alpha1.IntentConditionServiceReady, false, v1alpha1.IntentReasonApplyFailed, "applying Service %s failed: %v", in.Name, err)
		return ctrl.Result{}, fmt.Errorf("applying service: %w", err)
	}
	applied := &corev1.Service{}
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(in), applied); err != nil {
		// The cache may not have seen the write yet; the Service event
		// brings us back.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.serviceApplied(s, applied)
	return ctrl.Result{}, nil
}

// serviceApplied records that svc, the intent's Service, matches the
// intent.
func (r *IntentReconciler) serviceApplied(s *intentScope, svc *corev1.Service) {
	s.service = svc
	intent.ObserveService(s.in, svc)
	intent.SetCondition(s.in, v1alpha1.IntentConditionServiceReady, true, v1alpha1.IntentReasonApplied, "Service %s matches the intent", svc.Name)
}

// removeLeftBehind deletes svc, the Service of the intent's name, when an
// earlier intent of the same name left it: it is controlled by a
// NetworkIntent of that name with another UID, while the intent the API
// server holds under that name is this one, so that owner is gone (names
// are unique). The slices that owner left go with it. Kubernetes' garbage
// collector would delete them in time; the intent does not wait for it. It
// reports whether it deleted anything; a Service of anyone else is left
// alone.
func (r *IntentReconciler) removeLeftBehind(ctx context.Context, in *v1alpha1.NetworkIntent, svc *corev1.Service) (bool, error) {
	ref := controllingIntent(svc)
	if ref == nil || ref.Name != in.Name || ref.UID == in.UID {
		return false, nil
	}
	live := &v1alpha1.NetworkIntent{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(in), live); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if live.UID != in.UID || !live.DeletionTimestamp.IsZero() {
		return false, nil // this copy of the intent is the stale one
	}
	uid := svc.UID
	if err := r.Client.Delete(ctx, svc, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("deleting the Service an earlier intent of this name left: %w", err)
	}
	earlier := &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Namespace: in.Namespace, Name: in.Name, UID: ref.UID}}
	if err := r.deleteSlices(ctx, earlier, r.APIReader); err != nil {
		return false, err
	}
	r.Recorder.Eventf(in, svc, corev1.EventTypeNormal, v1alpha1.IntentReasonRecreating, "Recreate",
		"Deleted Service %s, left by an earlier intent of this name (uid %s)", svc.Name, ref.UID)
	intent.SetCondition(in, v1alpha1.IntentConditionServiceReady, false, v1alpha1.IntentReasonRecreating,
		"deleted Service %s, left by an earlier intent of this name; creating the intent's own", svc.Name)
	return true, nil
}

// conflict reports that the Service of the intent's name belongs to
// someone else. The intent then publishes nothing for it: reconcileEndpoints
// withdraws its EndpointSlices and stops its probes.
func (r *IntentReconciler) conflict(s *intentScope, svc *corev1.Service) {
	in := s.in
	s.foreign, s.service = true, nil
	if !conditionIs(in, v1alpha1.IntentConditionServiceReady, v1alpha1.IntentReasonServiceConflict) {
		r.Recorder.Eventf(in, svc, corev1.EventTypeWarning, v1alpha1.IntentReasonServiceConflict, "Apply",
			"Service %s exists and is not owned by this intent; it is left untouched, and the intent's endpoints are withdrawn", svc.Name)
	}
	intent.SetCondition(in, v1alpha1.IntentConditionServiceReady, false, v1alpha1.IntentReasonServiceConflict,
		"Service %s/%s exists and is not owned by this intent, so the intent publishes no endpoints for it and probes nothing; delete or rename that Service, or give the intent another name",
		svc.Namespace, svc.Name)
	intent.ClearServiceStatus(in)
}

// createService creates the intent's Service. When a Service of that name
// already exists (one the cache had not seen), it returns that Service as
// the API server has it, and touches nothing.
func (r *IntentReconciler) createService(ctx context.Context, in *v1alpha1.NetworkIntent, desired *corev1ac.ServiceApplyConfiguration) (created, taken *corev1.Service, err error) {
	raw, err := json.Marshal(desired)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding service: %w", err)
	}
	svc := &corev1.Service{}
	if err := json.Unmarshal(raw, svc); err != nil {
		return nil, nil, fmt.Errorf("decoding service: %w", err)
	}
	err = r.Client.Create(ctx, svc, client.FieldOwner(v1alpha1.FieldOwner))
	if apierrors.IsAlreadyExists(err) {
		live := &corev1.Service{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(in), live); err != nil {
			return nil, nil, fmt.Errorf("getting the service that exists: %w", err)
		}
		return nil, live, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("creating service: %w", err)
	}
	return svc, nil, nil
}

// ownedFieldsOf are the fields of svc that the operator's field manager
// owns (ownedFields): as the cache transform read them from this version's
// managedFields and kept them with it (keptOwnedFields), or from svc's own
// managedFields when it has them (as the API server returned it), or else
// from the API server's copy of this version. nil when the API server has
// another version: the cache's is stale.
func (r *IntentReconciler) ownedFieldsOf(ctx context.Context, svc *corev1.Service) (*corev1ac.ServiceApplyConfiguration, error) {
	if owned, ok, err := keptOwnedFields(r.serviceStore, svc); ok || err != nil {
		return owned, err
	}
	if len(svc.ManagedFields) == 0 {
		live, err := r.liveService(ctx, svc)
		if err != nil || live == nil {
			return nil, err
		}
		svc = live
	}
	return ownedFields(svc)
}

// liveService is the API server's copy of svc, managedFields included, or
// nil when it has another version of it (or none).
func (r *IntentReconciler) liveService(ctx context.Context, svc *corev1.Service) (*corev1.Service, error) {
	live := &corev1.Service{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(svc), live); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if live.UID != svc.UID || live.ResourceVersion != svc.ResourceVersion {
		return nil, nil
	}
	return live, nil
}

// ownedFields are the fields of svc that the operator's field manager owns,
// whether through its apply or through an update (the create, or
// dropForeignPorts) whose fields adoptUpdatedFields has not moved to the
// apply yet.
func ownedFields(svc *corev1.Service) (*corev1ac.ServiceApplyConfiguration, error) {
	upgraded := svc.DeepCopy()
	if err := csaupgrade.UpgradeManagedFields(upgraded, sets.New(v1alpha1.FieldOwner), v1alpha1.FieldOwner); err != nil {
		return nil, fmt.Errorf("reading owned fields of service: %w", err)
	}
	current, err := corev1ac.ExtractService(upgraded, v1alpha1.FieldOwner)
	if err != nil {
		return nil, fmt.Errorf("reading owned fields of service: %w", err)
	}
	return current, nil
}

// adoptUpdatedFields moves the fields the operator's field manager owns
// through an update (a create, or dropForeignPorts) to its apply entry, so
// that applies own them: else a field the intent stops declaring would stay.
// It is put off until the Service is to change (a create is not followed by
// a write of its own), and writes nothing when there are none.
func (r *IntentReconciler) adoptUpdatedFields(ctx context.Context, svc *corev1.Service) error {
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(svc, sets.New(v1alpha1.FieldOwner), v1alpha1.FieldOwner)
	if err != nil {
		return fmt.Errorf("moving the operator's updated fields to its apply entry: %w", err)
	}
	if patch == nil {
		return nil
	}
	if err := r.Client.Patch(ctx, svc, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		return fmt.Errorf("moving the operator's updated fields to its apply entry: %w", err)
	}
	return nil
}

// dropForeignPorts removes Service ports the intent does not declare. The
// intent owns the whole port list, but server-side apply cannot remove an
// entry another field manager wrote (say a hand edit that renumbered a
// port), and such an entry may clash with a declared one.
func (r *IntentReconciler) dropForeignPorts(ctx context.Context, existing *corev1.Service, desired *corev1ac.ServiceApplyConfiguration) error {
	declared := map[string]bool{}
	for _, p := range desired.Spec.Ports {
		declared[portKey(*p.Port, *p.Protocol)] = true
	}
	keep := existing.Spec.Ports[:0:0]
	for _, p := range existing.Spec.Ports {
		if declared[portKey(p.Port, p.Protocol)] {
			keep = append(keep, p)
		}
	}
	if len(keep) == len(existing.Spec.Ports) {
		return nil
	}
	updated := existing.DeepCopy()
	updated.Spec.Ports = keep
	if len(keep) == 0 {
		// Only ExternalName Services may have no port: put the declared
		// ones in place; the apply that follows takes them over.
		for _, p := range desired.Spec.Ports {
			updated.Spec.Ports = append(updated.Spec.Ports, corev1.ServicePort{
				Name: *p.Name, Port: *p.Port, Protocol: *p.Protocol, TargetPort: ptr.Deref(p.TargetPort, intstr.FromInt32(*p.Port)),
			})
		}
	}
	if err := r.Client.Update(ctx, updated, client.FieldOwner(v1alpha1.FieldOwner)); err != nil {
		return fmt.Errorf("removing ports the intent does not declare: %w", err)
	}
	*existing = *updated
	return nil
}

func portKey(port int32, proto corev1.Protocol) string {
	return fmt.Sprintf("%d/%s", port, proto)
}

// finalize removes what the intent owns, and nothing it does not, then lets
// the intent go.
func (r *IntentReconciler) finalize(ctx context.Context, in *v1alpha1.NetworkIntent) error {
	if !controllerutil.ContainsFinalizer(in, v1alpha1.IntentFinalizer) {
		return nil
	}
	if err := r.deleteOwned(ctx, in); err != nil {
		return err
	}
	patch := client.MergeFromWithOptions(in.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(in, v1alpha1.IntentFinalizer)
	if err := r.Client.Patch(ctx, in, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing finalizer: %w", err)
	}
	return nil
}

// deleteOwned deletes the intent's Service and EndpointSlices, as the API
// server has them: the cache may not have seen a Service or slice created
// just before the intent was deleted.
func (r *IntentReconciler) deleteOwned(ctx context.Context, in *v1alpha1.NetworkIntent) error {
	svc := &corev1.Service{}
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(in), svc)
	switch {
	case err == nil && metav1.IsControlledBy(svc, in):
		uid := svc.UID
		if err := r.Client.Delete(ctx, svc, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting service: %w", err)
		}
	case client.IgnoreNotFound(err) != nil:
		return fmt.Errorf("getting service: %w", err)
	}
	return r.deleteSlices(ctx, in, r.APIReader)
}

// deleteOwnedSlices deletes the EndpointSlices the intent owns, as the
// cache knows them.
func (r *IntentReconciler) deleteOwnedSlices(ctx context.Context, in *v1alpha1.NetworkIntent) error {
	return r.deleteSlices(ctx, in, r.Client)
}

// deleteSlices deletes the EndpointSlices the intent owns, as reader lists
// them.
func (r *IntentReconciler) deleteSlices(ctx context.Context, in *v1alpha1.NetworkIntent, reader client.Reader) error {
	owned, err := listOwnedSlices(ctx, reader, in)
	if err != nil {
		return err
	}
	for i := range owned {
		if err := r.Client.Delete(ctx, &owned[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting endpoint slice %s: %w", owned[i].Name, err)
		}
	}
	return nil
}

func conditionIs(in *v1alpha1.NetworkIntent, typ, reason string) bool {
	c := meta.FindStatusCondition(in.Status.Conditions, typ)
	return c != nil && c.Reason == reason
}

// SetupWithManager registers the reconciler, which runs on the leader,
// and the ProbeTargetReconciler that feeds its Prober on every replica.
// Services are mapped to the intent of the same name, owned or not, so a
// conflict clears itself when the foreign Service goes.
func (r *IntentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := (&ProbeTargetReconciler{Intents: r}).SetupWithManager(mgr); err != nil {
		return err
	}
	services, err := sharedInformer(context.Background(), mgr, &corev1.Service{})
	if err != nil {
		return fmt.Errorf("watching Services: %w", err)
	}
	r.serviceStore = services.GetStore()
	if r.sliceIndex, err = indexSlicesByIntent(context.Background(), mgr); err != nil {
		return err
	}
	if r.intentStore, err = intentStore(context.Background(), mgr); err != nil {
		return err
	}
	byName := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("networkintent").
		// One Options: each WithOptions replaces the whole of the last.
		WithOptions(controller.Options{RateLimiter: retryLimiter(), MaxConcurrentReconciles: r.Workers}).
		For(&v1alpha1.NetworkIntent{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{}, deletionPredicate()))).
		Watches(&corev1.Service{}, byName).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &v1alpha1.NetworkIntent{}, handler.OnlyControllerOwner())).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.intentsSelecting)).
		WatchesMetadata(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.intentsOnNode), builder.WithPredicates(nodeZoneChanged())).
		WatchesRawSource(flipSource(r.Prober.Flips())).
		Complete(r)
}

// maxRetryDelay bounds how long a failed reconcile waits before it is tried
// again, so that intents converge soon after an API outage rather than after
// minutes of doubled delays.
const maxRetryDelay = 10 * time.Second

// retryLimiter is controller-runtime's default limiter with its delays
// capped at maxRetryDelay.
func retryLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return cappedLimiter{TypedRateLimiter: workqueue.DefaultTypedControllerRateLimiter[reconcile.Request](), max: maxRetryDelay}
}

type cappedLimiter struct {
	workqueue.TypedRateLimiter[reconcile.Request]
	max time.Duration
}

func (l cappedLimiter) When(item reconcile.Request) time.Duration {
	return min(l.TypedRateLimiter.When(item), l.max)
}

// intentsSelecting maps a pod to the intents in its namespace whose
// selector matches it.
func (r *IntentReconciler) intentsSelecting(ctx context.Context, obj client.Object) []reconcile.Request {
	names, err := intentsSelectingLabels(ctx, r.Client, r.intentStore, obj.GetNamespace(), obj.GetLabels())
	if err != nil {
		logf.FromContext(ctx).Error(err, "Listing intents for a pod", "pod", klog.KObj(obj))
		return nil
	}
	reqs := make([]reconcile.Request, len(names))
	for i, name := range names {
		reqs[i] = reconcile.Request{NamespacedName: name}
	}
	return reqs
}

// deletionPredicate passes updates that start an object's deletion.
func deletionPredicate() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
	}}
}
