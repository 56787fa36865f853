package controllers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/compact"
	"github.com/netintent/netintent/internal/testenv"
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

// liveHeap is the heap in use right after two garbage collections: what
// a sync.Pool caches (the compact forms' decompressors) outlives one.
func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkIntentCache measures what the cache keeps for one intent: the
// intent, its Service and its slice, read from testdata/cached (as the API
// server returned them to kubectl, managedFields included), decoded as the
// informers decode them (the intent from JSON, the others from protobuf)
// and put through the cache's transforms: the live heap after GC for each
// intent of 1,000 held, whole and as the cache keeps it (what
// what is kept with each Service of what the operator owns in it
// included).
func BenchmarkIntentCache(b *testing.B) {
	in, svc, slice := readCached(b)
	rawSvc, err := svc.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	rawSlice, err := slice.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(testenv.NewScheme()).UniversalDeserializer()
	for _, cached := range []bool{false, true} {
		name := "whole"
		if cached {
			name = "cached"
		}
		b.Run(name, func(b *testing.B) {
			const intents = 1000
			var perIntent float64
			for b.Loop() {
				kept := make([]any, 0, 3*intents)
				before := liveHeap()
				for i := range intents {
					objs := make([]client.Object, 0, 3)
					obj, _, err := decoder.Decode(in, nil, nil)
					if err != nil {
						b.Fatal(err)
					}
					objs = append(objs, obj.(client.Object))
					s := &corev1.Service{}
					if err := s.Unmarshal(rawSvc); err != nil {
						b.Fatal(err)
					}
					// Each its own Service, with a UID as the API server
					// makes them.
					s.UID = types.UID(fmt.Sprintf("%s%012x", s.UID[:24], i))
					sl := &discoveryv1.EndpointSlice{}
					if err := sl.Unmarshal(rawSlice); err != nil {
						b.Fatal(err)
					}
					objs = append(objs, s, sl)
					for _, o := range objs {
						var keep any = o
						if cached {
							if keep, err = cacheTransform(o); err != nil {
								b.Fatal(err)
							}
						}
						kept = append(kept, keep)
					}
				}
				perIntent = float64(liveHeap()-before) / intents
				runtime.KeepAlive(kept)
			}
			b.ReportMetric(perIntent, "B/intent")
		})
	}
}

// readCached reads testdata/cached: an intent (its JSON) and its Service
// and slice.
func readCached(tb testing.TB) (intentJSON []byte, svc *corev1.Service, slice *discoveryv1.EndpointSlice) {
	tb.Helper()
	read := func(name string, into any) []byte {
		raw, err := os.ReadFile(filepath.Join("testdata", "cached", name))
		if err != nil {
			tb.Fatal(err)
		}
		if into != nil {
			if err := json.Unmarshal(raw, into); err != nil {
				tb.Fatal(err)
			}
		}
		return raw
	}
	svc, slice = &corev1.Service{}, &discoveryv1.EndpointSlice{}
	read("service.json", svc)
	read("slice.json", slice)
	return read("intent.json", nil), svc, slice
}

// cacheTransform puts obj through the transform CacheOptions gives its kind.
func cacheTransform(obj client.Object) (any, error) {
	opts := CacheOptions()
	for o, by := range opts.ByObject {
		if reflect.TypeOf(o) == reflect.TypeOf(obj) && by.Transform != nil {
			return by.Transform(obj)
		}
	}
	return opts.DefaultTransform(obj)
}

// BenchmarkOwnershipLookup measures reading back what the operator owns in
// a cached intent's Service (testdata/cached), as a reconcile does before
// it compares the Service with the intent.
func BenchmarkOwnershipLookup(b *testing.B) {
	_, svc, _ := readCached(b)
	out, err := trimService(svc)
	if err != nil {
		b.Fatal(err)
	}
	held, ok := out.(*compact.Service)
	if !ok {
		b.Fatalf("the cache holds the Service as a %T", out)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := ownedFieldsKept(held); !ok || err != nil {
			b.Fatal("not kept", err)
		}
	}
}

// BenchmarkCacheRead measures what a read from the cache costs: the copy
// a cache reader makes of what the cache holds, for the testdata intent
// and its Service and for an intent's slice of 100 pod endpoints (foreignSlice,
// controlled by an intent, so kept whole), held as the API type, trimmed
// (its DeepCopy, as before the compact forms), and in the compact form
// the cache holds now (read back from its encoding).
func BenchmarkCacheRead(b *testing.B) {
	rawIntent, svc, _ := readCached(b)
	in := &v1alpha1.NetworkIntent{}
	if err := json.Unmarshal(rawIntent, in); err != nil {
		b.Fatal(err)
	}
	slice := foreignSlice("ns", "web", 100)
	slice.OwnerReferences[0].Kind, slice.OwnerReferences[0].APIVersion = "NetworkIntent", "networking.netintent.io/v1alpha1"
	for _, tc := range []struct {
		name string
		obj  client.Object
	}{{"intent", in}, {"service", svc}, {"slice-100", slice}} {
		held, err := cacheTransform(tc.obj.DeepCopyObject().(client.Object))
		if err != nil {
			b.Fatal(err)
		}
		for _, form := range []struct {
			name string
			obj  client.Object
		}{{"api-type", held.(client.Object).DeepCopyObject().(client.Object)}, {"compact", held.(client.Object)}} {
			b.Run(tc.name+"/"+form.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_ = form.obj.DeepCopyObject()
				}
			})
		}
	}
}
