package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/netintent/netintent/internal/testenv"
)

// whoami asks the backend behind addr which host it is.
func whoami(hc *http.Client, addr string) (string, error) {
	resp, err := hc.Get("http://" + addr + "/whoami")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /whoami: %s", resp.Status)
	}
	return string(body), nil
}

// reachAll sends requests to addr until each of want has answered at least
// once. Every request must succeed and come from one of want.
func reachAll(t *testing.T, hc *http.Client, addr string, want ...string) {
	t.Helper()
	if err := tryReachAll(t, hc, addr, want...); err != nil {
		t.Fatal(err)
	}
}

// tryReachAll is reachAll returning what went wrong.
func tryReachAll(t *testing.T, hc *http.Client, addr string, want ...string) error {
	seen := map[string]int{}
	for _, w := range want {
		seen[w] = 0
	}
	const most = 300
	for i := range most {
		from, err := whoami(hc, addr)
		if err != nil {
			return fmt.Errorf("request %d to %s: %w", i+1, addr, err)
		}
		if _, ok := seen[from]; !ok {
			return fmt.Errorf("request %d to %s answered by %s, want one of %v", i+1, addr, from, want)
		}
		seen[from]++
		if !hasZero(seen) {
			t.Logf("%s: %d requests reached every backend: %v", addr, i+1, seen)
			return nil
		}
	}
	return fmt.Errorf("%d requests to %s did not reach every backend: %v", most, addr, seen)
}

func hasZero(m map[string]int) bool {
	for _, n := range m {
		if n == 0 {
			return true
		}
	}
	return false
}

// request is one request of a stream.
type request struct {
	start, end time.Time
	from       string // the backend that answered
	err        error
}

// stream sends one request after another to addr, at most one per
// interval, until stopped.
type stream struct {
	mu   sync.Mutex
	reqs []request
	stop chan struct{}
	done chan struct{}
}

func startStream(hc *http.Client, addr string, interval time.Duration) *stream {
	s := &stream{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			r := request{start: time.Now()}
			r.from, r.err = whoami(hc, addr)
			r.end = time.Now()
			s.mu.Lock()
			s.reqs = append(s.reqs, r)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// tailWhere counts the requests at the end of the stream for which ok holds.
func (s *stream) tailWhere(ok func(request) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := len(s.reqs) - 1; i >= 0 && ok(s.reqs[i]); i-- {
		n++
	}
	return n
}

// finish stops the stream and returns its requests.
func (s *stream) finish() []request {
	close(s.stop)
	<-s.done
	return s.reqs
}

// waitTail waits until the last n requests of the stream all satisfy ok.
func (s *stream) waitTail(t *testing.T, timeout time.Duration, n int, what string, ok func(request) bool) {
	t.Helper()
	testenv.Await(t, what, timeout, func() error {
		if got := s.tailWhere(ok); got < n {
			return fmt.Errorf("%d of the last requests, want %d", got, n)
		}
		return nil
	})
}

// impact sums up the requests of a stream that ended at or after since:
// how many there were, how many matched bad, and when the last bad one
// ended (zero if none).
func impact(reqs []request, since time.Time, bad func(request) bool) (total, nbad int, last time.Duration) {
	for _, r := range reqs {
		if r.end.Before(since) {
			continue
		}
		total++
		if bad(r) {
			nbad++
			last = max(last, r.end.Sub(since))
		}
	}
	return total, nbad, last
}

// before returns the first request that ended before t and matched bad.
func before(reqs []request, t time.Time, bad func(request) bool) error {
	for _, r := range reqs {
		if r.end.Before(t) && bad(r) {
			return errors.New("request at " + r.start.Format(time.RFC3339Nano) + ": " + describe(r))
		}
	}
	return nil
}

func describe(r request) string {
	if r.err != nil {
		return r.err.Error()
	}
	return "answered by " + r.from
}

func failed(r request) bool { return r.err != nil }
