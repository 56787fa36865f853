package dnsserver

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
	"weak"
)

// portList is a list of ports as the index holds it: one copy of each list,
// shared by every Service and slice that has it (sharePorts). Most Services
// of a cluster have one of a few lists, and so do their slices; every
// endpoint of a slice has its slice's. Never changed once made.
type portList struct{ p *[]portSpec }

// all is the list's ports (nil for none), not to be changed.
func (l portList) all() []portSpec {
	if l.p == nil {
		return nil
	}
	return *l.p
}

// portLists are the lists the index holds, by their key (portsKey). An
// entry goes once nothing holds its list.
var portLists = struct {
	sync.Mutex
	m map[string]weak.Pointer[[]portSpec]
}{m: map[string]weak.Pointer[[]portSpec]{}}

// sharePorts is ports as a portList: the copy held already, if any.
func sharePorts(ports []portSpec) portList {
	if len(ports) == 0 {
		return portList{}
	}
	key := portsKey(ports)
	portLists.Lock()
	defer portLists.Unlock()
	if p := portLists.m[key].Value(); p != nil {
		return portList{p}
	}
	p := new([]portSpec)
	*p = ports
	portLists.m[key] = weak.Make(p)
	runtime.AddCleanup(p, forgetPorts, key)
	return portList{p}
}

// forgetPorts drops the entry of a list nothing holds any more, unless
// another has taken its key since.
func forgetPorts(key string) {
	portLists.Lock()
	defer portLists.Unlock()
	if portLists.m[key].Value() == nil {
		delete(portLists.m, key)
	}
}

// portsKey tells lists of ports apart: name, protocol and number of each.
func portsKey(ports []portSpec) string {
	var b strings.Builder
	for _, p := range ports {
		b.WriteString(p.name)
		b.WriteByte('/')
		b.WriteString(p.proto)
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(p.port)))
		b.WriteByte(';')
	}
	return b.String()
}
