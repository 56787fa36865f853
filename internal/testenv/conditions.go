package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
)

// CheckCondition returns nil when the condition typ of an object at
// generation is for that generation and has status want, and reason when
// reason is not empty.
func CheckCondition(conds []metav1.Condition, generation int64, typ string, want metav1.ConditionStatus, reason string) error {
	c := meta.FindStatusCondition(conds, typ)
	switch {
	case c == nil:
		return fmt.Errorf("condition %s missing (conditions %+v)", typ, conds)
	case c.ObservedGeneration != generation:
		return fmt.Errorf("condition %s is for generation %d, the object is at %d", typ, c.ObservedGeneration, generation)
	case c.Status != want || (reason != "" && c.Reason != reason):
		return fmt.Errorf("condition %s is %s/%s (%s), want %s/%s", typ, c.Status, c.Reason, c.Message, want, reason)
	}
	return nil
}

// IntentCondition is CheckCondition of an intent.
func IntentCondition(in *v1alpha1.NetworkIntent, typ string, want metav1.ConditionStatus, reason string) error {
	return CheckCondition(in.Status.Conditions, in.Generation, typ, want, reason)
}

// WaitForCondition waits until the intent key has condition typ with status
// want (and reason, when not empty) for its current generation, and
// returns the intent as it then is.
func WaitForCondition(t testing.TB, c client.Client, key client.ObjectKey, typ string, want metav1.ConditionStatus, reason string, timeout time.Duration) *v1alpha1.NetworkIntent {
	t.Helper()
	in := &v1alpha1.NetworkIntent{}
	Await(t, fmt.Sprintf("intent %s %s=%s %s", key, typ, want, reason), timeout, func() error {
		if err := c.Get(context.Background(), key, in); err != nil {
			return err
		}
		return IntentCondition(in, typ, want, reason)
	})
	return in
}
