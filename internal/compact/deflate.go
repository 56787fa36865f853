package compact

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
)

// dictionary is what DEFLATE finds the compact forms' encodings in, so
// that what every intent, and the metadata of every object the operator
// owns, repeats is not held again for each: field names, owner references,
// finalizers, conditions and their messages. A ClusterIP intent's spec
// and status take some 950 bytes as JSON and some 100 compressed against
// it; an intent's slice's metadata (owner reference, creation time), 127
// as protobuf and 69 compressed (its owner's UID, random, compresses
// least). It is made once, from the API types; what is compressed against
// it is never kept beyond the process, so it may change with any release.
var dictionary = append(metaExamples(), intentExamples()...)

// exampleName names the dictionary's examples' objects.
const exampleName = "web"

// metaExamples are the dictionary's part for metadata (see meta): the rest
// of an intent's and of an object it owns.
func metaExamples() []byte {
	at := metav1.NewTime(time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC))
	var dict []byte
	for _, m := range []metav1.ObjectMeta{
		{CreationTimestamp: at, Generation: 1, Finalizers: []string{v1alpha1.IntentFinalizer}},
		{CreationTimestamp: at, Generation: 1, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "NetworkIntent", Name: exampleName,
			UID: "6b2a1c9e-9f0e-4c1a-8d1e-2f3a4b5c6d7e", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
		}}},
	} {
		raw, err := m.Marshal()
		if err != nil {
			panic(err)
		}
		dict = append(dict, raw...)
	}
	return dict
}

// deflateLevel is the fastest level of compress/flate that compresses
// against a dictionary (BestSpeed's encoder does not look in it).
const deflateLevel = 2

// deflater is the one compressor, made at its first use and kept: it takes
// some 800 KB and most of a millisecond to make, and while objects change
// a pooled one would be dropped by every other collection and made again.
// Compressing an object takes microseconds, so that one is enough.
var deflater struct {
	sync.Mutex
	w *flate.Writer
}

// inflaters are decompressors set to the dictionary (some 45 KB each).
var inflaters = sync.Pool{New: func() any { return flate.NewReaderDict(nil, dictionary) }}

// deflate is raw compressed against the dictionary.
func deflate(raw []byte) ([]byte, error) {
	deflater.Lock()
	defer deflater.Unlock()
	if deflater.w == nil {
		w, err := flate.NewWriterDict(nil, deflateLevel, dictionary)
		if err != nil {
			return nil, err
		}
		deflater.w = w
	}
	var buf bytes.Buffer
	deflater.w.Reset(&buf)
	if _, err := deflater.w.Write(raw); err != nil {
		return nil, err
	}
	if err := deflater.w.Close(); err != nil {
		return nil, err
	}
	return bytes.Clone(buf.Bytes()), nil
}

// inflate is what deflate compressed into b. The forms decompress only
// what they compressed themselves, so that it can fail only through a
// defect, as a DeepCopy can.
func inflate(b []byte) []byte {
	r := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(r)
	if err := r.(flate.Resetter).Reset(bytes.NewReader(b), dictionary); err != nil {
		panic(fmt.Sprintf("decompressing a cached object: %v", err))
	}
	var out bytes.Buffer
	out.Grow(4 * len(b))
	if _, err := out.ReadFrom(r); err != nil {
		panic(fmt.Sprintf("decompressing a cached object: %v", err))
	}
	return out.Bytes()
}
