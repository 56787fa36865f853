package compact

import (
	"fmt"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Service is a Service as the cache keeps it: its metadata (see meta), and
// its spec and status in their protobuf encoding, which is read back
// whenever the Service is. A Service's spec and status take some 800 bytes
// as Go structs (the ServiceSpec struct alone 280, with a dozen fields a
// Service seldom sets) and under 100 as protobuf for a ClusterIP Service.
type Service struct {
	encoded
	// kept is what its maker keeps with the Service (see Keep).
	kept    unique.Handle[string]
	hasKept bool
}

var (
	_ metav1.Object  = &Service{}
	_ runtime.Object = &Service{}
)

// FromService is svc in its compact form. It takes svc's metadata over:
// svc must not be used after.
func FromService(svc *corev1.Service) (*Service, error) {
	e, err := encode(svc.ObjectMeta, &corev1.Service{Spec: svc.Spec, Status: svc.Status})
	if err != nil {
		return nil, fmt.Errorf("encoding service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return &Service{encoded: e}, nil
}

// Service is the Service c was made from, which the caller may change.
func (c *Service) Service() *corev1.Service {
	out := &corev1.Service{}
	out.ObjectMeta = c.decode(out)
	return out
}

// Keep keeps s with the Service, for its readers: a string that its maker
// derives from this version of the Service and would otherwise keep apart
// (the controllers: what the operator owns in it). A handle, so that
// Services that keep the same string share one copy. It is for the maker,
// before the form is stored: a stored form is never changed.
func (c *Service) Keep(s unique.Handle[string]) { c.kept, c.hasKept = s, true }

// Kept is what was kept with the Service, if anything (see Keep).
func (c *Service) Kept() (unique.Handle[string], bool) { return c.kept, c.hasKept }

// DeepCopyObject is the whole Service (see Service).
func (c *Service) DeepCopyObject() runtime.Object { return c.Service() }
