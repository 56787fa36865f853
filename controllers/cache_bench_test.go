package controllers

import (
	"runtime"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// BenchmarkSliceCache measures what the cache keeps of another controller's
// EndpointSlice of 100 endpoints, decoded from protobuf as the informer
// decodes it, whole and through trimSlice: the live heap after GC for each
// endpoint of 200 such slices held.
func BenchmarkSliceCache(b *testing.B) {
	raw, err := foreignSlice("ns", "web", 100).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		trim bool
	}{{"whole", false}, {"trimmed", true}} {
		b.Run(tc.name, func(b *testing.B) {
			const slices, perSlice = 200, 100
			var perEndpoint float64
			for b.Loop() {
				kept := make([]any, slices)
				before := liveHeap()
				for i := range kept {
					s := &discoveryv1.EndpointSlice{}
					if err := s.Unmarshal(raw); err != nil {
						b.Fatal(err)
					}
					var obj any = s
					if tc.trim {
						if obj, err = trimSlice(obj); err != nil {
							b.Fatal(err)
						}
					}
					kept[i] = obj
				}
				perEndpoint = float64(liveHeap()-before) / (slices * perSlice)
				runtime.KeepAlive(kept)
			}
			b.ReportMetric(perEndpoint, "B/endpoint")
		})
	}
}

// liveHeap is the heap in use right after a garbage collection.
func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
