package testenv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// interval is how often a wait of timeout calls its check: a hundredth of
// the timeout, between 5 ms and 50 ms, so that short waits of pure code
// notice soon and long waits on the API server do not load it.
func interval(timeout time.Duration) time.Duration {
	return min(max(timeout/100, 5*time.Millisecond), 50*time.Millisecond)
}

// Poll calls check at once and then every interval until it returns nil, and
// returns check's last error, named by what, if timeout passes or ctx ends
// first.
func Poll(ctx context.Context, every, timeout time.Duration, what string, check func() error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, every, timeout, true, func(context.Context) (bool, error) {
		last = check()
		return last == nil, nil
	})
	if err == nil {
		return nil
	}
	if last == nil {
		last = err
	}
	return fmt.Errorf("%s: not within %s: %w", what, timeout, last)
}

// Await polls check until it returns nil, and fails the test with its last
// error, named by what, when timeout passes first.
func Await(t testing.TB, what string, timeout time.Duration, check func() error) {
	t.Helper()
	if err := Poll(context.Background(), interval(timeout), timeout, what, check); err != nil {
		t.Fatal(err)
	}
}

// Eventually is Await for a check whose errors say what it waits for.
func Eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	Await(t, "condition", timeout, check)
}

// Consistently calls check every 100 ms for d and fails the test on its
// first error.
func Consistently(t testing.TB, d time.Duration, check func() error) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, d, true, func(context.Context) (bool, error) {
		return false, check()
	})
	if err != nil && !wait.Interrupted(err) {
		t.Fatalf("condition broke: %v", err)
	}
}

// Holds turns a predicate into a check for Eventually: its error is what,
// while cond is false.
func Holds(what string, cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errors.New(what)
	}
}
