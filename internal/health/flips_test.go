package health

import (
	"reflect"
	"testing"
)

func TestFlipQueueCoalescesPerKey(t *testing.T) {
	down := func(key, id string) Flip { return Flip{Key: nsName(key), TargetID: id, Healthy: false, Err: "refused"} }
	up := func(key, id string) Flip { return Flip{Key: nsName(key), TargetID: id, Healthy: true} }
	tests := []struct {
		name   string
		pushes []Flip
		want   []Flip
	}{
		{name: "nothing", want: nil},
		{
			name:   "distinct keys keep their order",
			pushes: []Flip{down("ns/b", "1"), down("ns/a", "1"), up("ns/c", "2")},
			want:   []Flip{down("ns/b", "1"), down("ns/a", "1"), up("ns/c", "2")},
		},
		{
			name:   "one target flipping again keeps the latest",
			pushes: []Flip{down("ns/a", "1"), up("ns/a", "1")},
			want:   []Flip{up("ns/a", "1")},
		},
		{
			name:   "several targets of a key become key changed",
			pushes: []Flip{down("ns/a", "1"), down("ns/b", "1"), down("ns/a", "2"), up("ns/a", "1")},
			want:   []Flip{{Key: nsName("ns/a")}, down("ns/b", "1")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q flipQueue
			for _, f := range tt.pushes {
				q.push(f)
			}
			var got []Flip
			for {
				f, ok := q.pop()
				if !ok {
					break
				}
				got = append(got, f)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if q.len() != 0 {
				t.Errorf("%d left after popping all", q.len())
			}
		})
	}

	// A key popped and pushed again is pending again, at the back.
	var q flipQueue
	q.push(down("ns/a", "1"))
	q.push(down("ns/b", "1"))
	if f, _ := q.pop(); f.Key != nsName("ns/a") {
		t.Fatalf("popped %+v first", f)
	}
	q.push(up("ns/a", "1"))
	var keys []string
	for f, ok := q.pop(); ok; f, ok = q.pop() {
		keys = append(keys, f.Key.String())
	}
	if !reflect.DeepEqual(keys, []string{"ns/b", "ns/a"}) {
		t.Errorf("order %v, want [ns/b ns/a]", keys)
	}
}
