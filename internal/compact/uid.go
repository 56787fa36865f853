package compact

import (
	"encoding/hex"

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

// value is the UID, made anew from its bytes for a UUID.
func (u uid) value() types.UID {
	if !u.isUUID() {
		return *u.other
	}
	var out [36]byte
	hex.Encode(out[0:8], u.uuid[0:4])
	hex.Encode(out[9:13], u.uuid[4:6])
	hex.Encode(out[14:18], u.uuid[6:8])
	hex.Encode(out[19:23], u.uuid[8:10])
	hex.Encode(out[24:36], u.uuid[10:16])
	out[8], out[13], out[18], out[23] = '-', '-', '-', '-'
	return types.UID(out[:])
}

// parseUUID reads a UUID in its canonical form: lower-case hex digits,
// dashed 8-4-4-4-12. Any other form is not one, so that value gives back
// exactly what was held.
func parseUUID(s string) ([16]byte, bool) {
	var b [16]byte
	if len(s) != 36 {
		return b, false
	}
	j := 0
	for i := 0; i < len(s); {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return b, false
			}
			i++
			continue
		}
		hi, ok := lowerHex(s[i])
		lo, ok2 := lowerHex(s[i+1])
		if !ok || !ok2 {
			return b, false
		}
		b[j] = hi<<4 | lo
		i, j = i+2, j+1
	}
	return b, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
