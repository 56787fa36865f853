package compact

import (
	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/types"
)

// uid is an object's UID as a compact form holds it: a UUID in its
// canonical form (as the API server makes every UID) as its 16 bytes, and
// any other (a client may set one; none) as it is, apart. A UID string
// takes 48 bytes of heap besides its header; this, 24 bytes in all.
type uid struct {
	uuid  [16]byte
	other *types.UID // nil for a UUID
}

// noUID is the empty UID, which is not a UUID.
var noUID types.UID

func newUID(u types.UID) uid {
	if b, ok := parseUUID(string(u)); ok {
		return uid{uuid: b}
	}
	if u == "" {
		return uid{other: &noUID}
	}
	return uid{other: &u}
}

// isUUID says whether the UID is held as a UUID's bytes.
func (u uid) isUUID() bool { return u.other == nil }

// value is the UID, written out anew for a UUID.
func (u uid) value() types.UID {
	if !u.isUUID() {
		return *u.other
	}
	return types.UID(uuid.UUID(u.uuid).String())
}

// parseUUID reads a UUID in its canonical form only (lower-case, dashed
// 8-4-4-4-12), so that value gives back exactly what was held.
func parseUUID(s string) ([16]byte, bool) {
	id, err := uuid.Parse(s)
	if err != nil || id.String() != s {
		return [16]byte{}, false
	}
	return id, true
}
