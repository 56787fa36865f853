package controllers

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// conflictRetry is how soon a write that met a newer object than the
// cache's is tried again.
const conflictRetry = 200 * time.Millisecond

// patchStatus is the operator's one way of writing a status: a JSON merge
// patch of obj's status from before's, with before's resourceVersion as an
// optimistic lock. A status computed from a cache that lags so fails with a
// conflict, rather than undo a newer write or repeat one and its event;
// retryConflict says what then.
func patchStatus(ctx context.Context, c client.Client, obj, before client.Object) error {
	return c.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

// retryConflict is the one retry policy of a write under an optimistic
// lock: a conflict is tried again after conflictRetry, on the newer object
// the cache will by then have shown; any other error is returned.
func retryConflict(err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return ctrl.Result{}, err
}
