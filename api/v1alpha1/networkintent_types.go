package v1alpha1

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Exposure says how an intent's application is reached; it is the type of the
// Service the operator produces.
// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer;ExternalName
type Exposure string

// The exposures an intent may declare.
const (
	ExposureClusterIP    Exposure = "ClusterIP"
	ExposureNodePort     Exposure = "NodePort"
	ExposureLoadBalancer Exposure = "LoadBalancer"
	ExposureExternalName Exposure = "ExternalName"
)

// AddressPoolClass is the loadBalancerClass under which netintent allocates
// LoadBalancer addresses from AddressPools.
const AddressPoolClass = "networking.netintent.io/address-pool"

// NetworkIntentSpec declares how an application is reached.
// +kubebuilder:validation:XValidation:rule="self.exposure != 'ExternalName' || (!has(self.ipFamilyPolicy) && !has(self.ipFamilies))",message="ipFamilyPolicy and ipFamilies are not valid with exposure ExternalName: its Service has no cluster IP"
// +kubebuilder:validation:XValidation:rule="!has(self.ipFamilies) || size(self.ipFamilies) < 2 || (has(self.ipFamilyPolicy) && self.ipFamilyPolicy != 'SingleStack')",message="two ipFamilies need ipFamilyPolicy PreferDualStack or RequireDualStack: SingleStack, the default, takes one IP family"
// +kubebuilder:validation:XValidation:rule="self.exposure != 'ExternalName' || (has(self.externalName) && size(self.externalName.targets) > 0)",message="exposure ExternalName needs externalName.targets with at least one host"
// +kubebuilder:validation:XValidation:rule="self.exposure == 'ExternalName' || !has(self.externalName)",message="externalName is only valid with exposure ExternalName"
// +kubebuilder:validation:XValidation:rule="self.exposure != 'ExternalName' || (!has(self.selector) && !has(self.backends))",message="an ExternalName intent has no selector or backends: its traffic goes to externalName.targets"
// +kubebuilder:validation:XValidation:rule="self.exposure == 'ExternalName' || (has(self.ports) && size(self.ports) > 0)",message="ports are required unless exposure is ExternalName"
// +kubebuilder:validation:XValidation:rule="self.exposure in ['NodePort', 'LoadBalancer'] || !has(self.ports) || self.ports.all(p, !has(p.nodePort))",message="nodePort is only valid with exposure NodePort or LoadBalancer"
// +kubebuilder:validation:XValidation:rule="self.exposure == 'ClusterIP' || !has(self.headless) || !self.headless",message="headless is only valid with exposure ClusterIP"
// +kubebuilder:validation:XValidation:rule="!has(self.trafficDistribution) || (self.exposure != 'ExternalName' && !(has(self.headless) && self.headless))",message="trafficDistribution steers proxied traffic to close endpoints: not valid with exposure ExternalName or headless, whose traffic no proxy spreads"
// +kubebuilder:validation:XValidation:rule="self.exposure == 'LoadBalancer' || !has(self.loadBalancer)",message="loadBalancer is only valid with exposure LoadBalancer"
// +kubebuilder:validation:XValidation:rule="self.exposure != 'ExternalName' || !has(self.healthCheck) || !has(self.healthCheck.mode) || self.healthCheck.mode == 'Enforce'",message="healthCheck.mode Observe is not for ExternalName intents: their targets' checks always decide which target is published"
// +kubebuilder:validation:XValidation:rule="!has(self.healthCheck) || !has(self.healthCheck.readinessGate) || !self.healthCheck.readinessGate || has(self.selector)",message="healthCheck.readinessGate writes a condition on the intent's pods: it needs a selector"
// +kubebuilder:validation:XValidation:rule="self.exposure != 'ExternalName' || !has(self.healthCheck) || (!has(self.healthCheck.http) && !has(self.healthCheck.tcp) && !has(self.healthCheck.grpc) && !has(self.healthCheck.minHealthyPercent))",message="an ExternalName intent sets each target's probe under externalName.targets; healthCheck may only give period, timeout and thresholds"
// +kubebuilder:validation:XValidation:rule="!has(self.backends) || !has(self.ports) || size(self.ports) <= 1 || self.backends.all(b, !has(b.port))",message="backends[].port is only valid on an intent with one port: with several, each port's targetPort is used on every backend; give the ports numeric targetPorts instead"
// +kubebuilder:validation:XValidation:rule="!has(self.loadBalancer) || !has(self.loadBalancer.externalTrafficPolicy) || self.loadBalancer.externalTrafficPolicy != 'Local' || !has(self.backends) || size(self.backends) == 0",message="externalTrafficPolicy Local sends outside traffic only to endpoints on the node that receives it, and static backends are on no node, so they would never get any: use Cluster, or drop backends"
type NetworkIntentSpec struct {
	// exposure is how the application is reached: ClusterIP (inside the
	// cluster), NodePort (on every node's port), LoadBalancer (an external
	// address) or ExternalName (a DNS alias to an outside host). It is the
	// type of the Service the operator produces.
	// +required
	Exposure Exposure `json:"exposure"`

	// selector chooses the pods, in the intent's namespace, that back the
	// application. Their addresses are published as the Service's endpoints.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// ipFamilyPolicy is the Service's IP family policy: SingleStack (one
	// cluster IP, of the first of ipFamilies or the cluster's primary
	// family), PreferDualStack (two cluster IPs on a dual-stack cluster,
	// one otherwise) or RequireDualStack (two cluster IPs, or the Service
	// is refused on a single-stack cluster). Empty: the API server's
	// default, SingleStack (a headless intent's Service, which has no
	// selector, gets both families on a dual-stack cluster). The
	// EndpointSlices, health checks, LoadBalancer addresses and DNS answers
	// follow the families the Service gets: one set of slices per family,
	// each address probed on its own, one address per family from an
	// AddressPool holding both families where one exists (PreferDualStack
	// falls back to one family; RequireDualStack waits with
	// AddressAssigned False, reason NoDualStackPool), and A and AAAA
	// answers. Not valid with exposure ExternalName.
	// +optional
	// +kubebuilder:validation:Enum=SingleStack;PreferDualStack;RequireDualStack
	IPFamilyPolicy *corev1.IPFamilyPolicy `json:"ipFamilyPolicy,omitempty"`

	// ipFamilies are the IP families of the Service, primary first: IPv4,
	// IPv6, or both in either order (two need ipFamilyPolicy
	// PreferDualStack or RequireDualStack, as on a Service).
	// Empty: the cluster's primary family, and for a dual-stack policy
	// the other one second. Adding or removing the second family changes
	// the Service in place; the API server refuses to change a Service's
	// primary family, so changing ipFamilies[0] recreates the Service (it
	// gets new cluster IPs). Not valid with exposure ExternalName.
	// +optional
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:Enum=IPv4;IPv6
	// +kubebuilder:validation:XValidation:rule="self.all(f, self.exists_one(g, g == f))",message="ipFamilies must not list a family twice"
	// +listType=atomic
	IPFamilies []corev1.IPFamily `json:"ipFamilies,omitempty"`

	// backends are static addresses outside the cluster that back the
	// application, beside or instead of selected pods. An address of a
	// family the Service does not have (an IPv6 backend of an IPv4
	// Service) is not published, and status names it FamilyNotServed.
	// Not valid with loadBalancer.externalTrafficPolicy Local.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +listType=map
	// +listMapKey=address
	Backends []Backend `json:"backends,omitempty"`

	// ports are the ports the Service exposes. Required unless exposure is
	// ExternalName. Names must be unique, and so must port/protocol pairs.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(p, self.exists_one(q, q.port == p.port && q.protocol == p.protocol))",message="each port number may appear once per protocol"
	// +listType=map
	// +listMapKey=name
	Ports []IntentPort `json:"ports,omitempty"`

	// trafficDistribution asks the proxies to keep traffic close to its
	// client, as a Service's trafficDistribution does: PreferSameZone (or
	// its older name PreferClose) prefers endpoints in the client's zone,
	// PreferSameNode endpoints on the client's node, then in its zone. It
	// is set on the Service, and the EndpointSlices carry the hints the
	// proxies follow: each ready endpoint is hinted for its own zone (its
	// node's topology.kubernetes.io/zone label) and, with PreferSameNode,
	// for its own node. The slices carry no hints at all while a ready
	// endpoint has no zone (a static backend, a pod on a node without the
	// label) or a zone of the intent's endpoints has none ready, so that
	// every client falls back to all endpoints; status says why. Not valid
	// with exposure ExternalName or headless.
	// +optional
	TrafficDistribution TrafficDistribution `json:"trafficDistribution,omitempty"`

	// externalName lists the outside hosts an ExternalName intent points to.
	// +optional
	ExternalName *ExternalNameSpec `json:"externalName,omitempty"`

	// loadBalancer configures a LoadBalancer intent.
	// +optional
	LoadBalancer *LoadBalancerSpec `json:"loadBalancer,omitempty"`

	// headless makes a ClusterIP intent's Service headless (no cluster IP):
	// DNS answers its name with the healthy endpoint addresses themselves.
	// +optional
	Headless bool `json:"headless,omitempty"`

	// sessionAffinity is None (default) or ClientIP: whether connections
	// from one client go to the same backend.
	// +optional
	// +kubebuilder:validation:Enum=None;ClientIP
	SessionAffinity corev1.ServiceAffinity `json:"sessionAffinity,omitempty"`

	// healthCheck configures how backends are judged healthy. Unhealthy
	// backends are taken out of traffic.
	// +optional
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`

	// dns configures the embedded DNS server's answers for this intent.
	// +optional
	DNS *DNSSpec `json:"dns,omitempty"`
}

// Backend is a static backend address outside the cluster.
type Backend struct {
	// address is the backend's IPv4 or IPv6 address. Loopback, link-local,
	// multicast and unspecified addresses are refused, as Kubernetes refuses
	// them in endpoints.
	// +required
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="address must be an IPv4 or IPv6 address"
	// +kubebuilder:validation:XValidation:rule="!isIP(self) || ip(self).isGlobalUnicast()",message="address must not be loopback, link-local, multicast or unspecified"
	Address string `json:"address"`

	// port is the backend's port, when it differs from the targetPort.
	// Only valid for intents with one port (refused at admission
	// otherwise): with several, each port's numeric targetPort is used.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`
}

// IntentPort is one port the Service exposes.
type IntentPort struct {
	// name is the port's name, unique in the intent; DNS SRV records are
	// published under it (_name._protocol.service...).
	// +required
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// port is the port the Service listens on.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// targetPort is the port on the backends, by number or by the name of a
	// container port. Defaults to port.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == string || (self >= 1 && self <= 65535)",message="targetPort must be a number from 1 to 65535 or a container port name"
	TargetPort *intstr.IntOrString `json:"targetPort,omitempty"`

	// protocol is TCP (default), UDP or SCTP.
	// +optional
	// +kubebuilder:default=TCP
	// +kubebuilder:validation:Enum=TCP;UDP;SCTP
	Protocol corev1.Protocol `json:"protocol,omitempty"`

	// nodePort requests a node port (30000-32767) for NodePort and
	// LoadBalancer intents. Left empty, one is allocated.
	// +optional
	// +kubebuilder:validation:Minimum=30000
	// +kubebuilder:validation:Maximum=32767
	NodePort *int32 `json:"nodePort,omitempty"`

	// appProtocol is the application protocol of the port (e.g. http,
	// kubernetes.io/h2c), as in a Service port.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	AppProtocol *string `json:"appProtocol,omitempty"`
}

// TrafficDistribution is a Service's preference for close endpoints.
// +kubebuilder:validation:Enum=PreferClose;PreferSameZone;PreferSameNode
type TrafficDistribution string

// The traffic distributions an intent may ask for: the values Kubernetes
// accepts in a Service's trafficDistribution.
const (
	// TrafficDistributionPreferClose is the older name of PreferSameZone.
	TrafficDistributionPreferClose TrafficDistribution = "PreferClose"
	// TrafficDistributionPreferSameZone prefers endpoints in the client's zone.
	TrafficDistributionPreferSameZone TrafficDistribution = "PreferSameZone"
	// TrafficDistributionPreferSameNode prefers endpoints on the client's
	// node, then in its zone.
	TrafficDistributionPreferSameNode TrafficDistribution = "PreferSameNode"
)

// FailbackPolicy says when an ExternalName alias returns to a
// higher-priority target that is healthy again.
// +kubebuilder:validation:Enum=Automatic;Manual
type FailbackPolicy string

// The failback policies.
const (
	// FailbackAutomatic returns once the target has passed its probes for
	// failbackAfter without a failure.
	FailbackAutomatic FailbackPolicy = "Automatic"
	// FailbackManual stays on the present target until it fails, or until
	// a person asks (AnnotationFailbackNow, or an edit of the intent).
	FailbackManual FailbackPolicy = "Manual"
)

// AnnotationFailbackNow on an ExternalName intent asks the operator to
// publish the first healthy target now, whatever the failback policy; the
// operator removes the annotation once it has acted on it. Any value.
const AnnotationFailbackNow = "networking.netintent.io/failback-now"

// DefaultFailbackAfter is how long a higher-priority target must pass its
// probes before an Automatic failback returns to it.
const DefaultFailbackAfter = 30 * time.Second

// ExternalNameSpec lists the outside hosts of an ExternalName intent.
// +kubebuilder:validation:XValidation:rule="!has(self.failbackAfter) || !has(self.failback) || self.failback == 'Automatic'",message="failbackAfter applies to failback Automatic only; with Manual the alias moves back only when asked (annotation networking.netintent.io/failback-now, or an edit of the intent)"
type ExternalNameSpec struct {
	// targets are the outside hosts, in priority order. The alias (the
	// Service's externalName and the DNS CNAME) moves from the published
	// target to the first healthy one as soon as the published target
	// fails its probes (failover); when every target fails, the last one
	// published stays. A target without a probe counts as healthy. Each
	// target's name is resolved through the operator's DNS server, as its
	// clients resolve it, and every address of the answer is probed.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +listType=map
	// +listMapKey=host
	Targets []ExternalTarget `json:"targets"`

	// failback says when the alias returns to a higher-priority target
	// that is healthy again. Automatic (the default) returns once that
	// target has passed its probes for failbackAfter without a failure, so
	// that a flapping target does not flap the alias. Manual stays on the
	// present target until it fails; to move back, annotate the intent
	// with networking.netintent.io/failback-now (any value; the operator
	// publishes the first healthy target and removes the annotation), or
	// edit the intent's spec (any change that bumps its generation).
	// +optional
	Failback FailbackPolicy `json:"failback,omitempty"`

	// failbackAfter is how long a higher-priority target must pass its
	// probes, without a failure, before an Automatic failback returns to
	// it: from 0s (at once) to 1h. Default 30s. Only with failback
	// Automatic. It is counted from status.externalName.targets[].lastTransitionTime,
	// kept to the second, so a failback may come up to a second late,
	// never early.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="failbackAfter must be between 0s and 1h"
	FailbackAfter *metav1.Duration `json:"failbackAfter,omitempty"`
}

// ExternalTarget is one outside host of an ExternalName intent.
// +kubebuilder:validation:XValidation:rule="!has(self.tcp) || has(self.tcp.port)",message="a tcp probe of an external target needs a port"
// +kubebuilder:validation:XValidation:rule="!has(self.grpc) || has(self.grpc.port)",message="a grpc probe of an external target needs a port"
type ExternalTarget struct {
	// host is a DNS name (RFC 1123), such as api.example.com. IP addresses
	// and localhost are refused: DNS cannot alias to an address, so an
	// outside IP backend belongs in backends with another exposure.
	// +required
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="!format.dns1123Subdomain().validate(self).hasValue()",message="host must be a lower case RFC 1123 DNS name, such as api.example.com"
	// +kubebuilder:validation:XValidation:rule="!isIP(self)",message="host must be a DNS name, not an IP address; put outside IP backends under backends with exposure ClusterIP"
	// +kubebuilder:validation:XValidation:rule="self != 'localhost' && !self.endsWith('.localhost')",message="host must not be localhost or a name under it"
	Host string `json:"host"`

	// ProbeHandler optionally health-checks the target: http (port 80 by
	// default), tcp or grpc (each with a port). The intent's healthCheck gives the
	// period, timeout and thresholds (default every 10s; three failures in
	// a row take a target out, one pass brings it back). The target's name
	// is resolved at every probe, and addresses Kubernetes refuses as
	// endpoints (loopback, link-local, multicast, unspecified) are never
	// probed.
	ProbeHandler `json:",inline"`
}

// ProbeHandler is an active health check: one of http, tcp or grpc.
// +kubebuilder:validation:XValidation:rule="(has(self.http) ? 1 : 0) + (has(self.tcp) ? 1 : 0) + (has(self.grpc) ? 1 : 0) <= 1",message="set only one of http, tcp or grpc: a probe is of one kind"
type ProbeHandler struct {
	// http checks with an HTTP GET that must answer with an expected status.
	// +optional
	HTTP *HTTPProbe `json:"http,omitempty"`

	// tcp checks that a TCP connection can be opened.
	// +optional
	TCP *TCPProbe `json:"tcp,omitempty"`

	// grpc checks with the gRPC health checking protocol
	// (grpc.health.v1.Health/Check), which must answer SERVING.
	// +optional
	GRPC *GRPCProbe `json:"grpc,omitempty"`
}

// HTTPProbe is an HTTP GET health check. Redirects are not followed.
type HTTPProbe struct {
	// path is the request path. Defaults to /.
	// +optional
	// +kubebuilder:default="/"
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path,omitempty"`

	// port is the port to probe. Defaults to the endpoint's first target
	// port (80 for an ExternalName target).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// host is the Host header to send. Defaults to the address probed.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host,omitempty"`

	// expectedStatuses are the status ranges that count as healthy.
	// Defaults to 200-399.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	ExpectedStatuses []StatusRange `json:"expectedStatuses,omitempty"`
}

// StatusRange is an inclusive range of HTTP status codes.
// +kubebuilder:validation:XValidation:rule="!has(self.max) || self.max >= self.min",message="max must not be below min"
type StatusRange struct {
	// min is the lowest status in the range.
	// +required
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=599
	Min int32 `json:"min"`

	// max is the highest status in the range. Defaults to min.
	// +optional
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=599
	Max int32 `json:"max,omitempty"`
}

// TCPProbe is a TCP connect health check.
type TCPProbe struct {
	// port is the port to connect to. Defaults to the endpoint's first
	// target port (required for an ExternalName target).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`
}

// GRPCProbeTLS says whether a gRPC health check speaks TLS.
// +kubebuilder:validation:Enum=Disabled;InsecureSkipVerify
type GRPCProbeTLS string

// The TLS modes of a gRPC health check.
const (
	// GRPCProbeTLSDisabled speaks plaintext HTTP/2 (h2c), as a gRPC
	// server without TLS expects.
	GRPCProbeTLSDisabled GRPCProbeTLS = "Disabled"
	// GRPCProbeTLSInsecureSkipVerify speaks TLS and accepts any server
	// certificate: the connection is encrypted, but the server is not
	// authenticated.
	GRPCProbeTLSInsecureSkipVerify GRPCProbeTLS = "InsecureSkipVerify"
)

// GRPCProbe is a gRPC health check: one Check call of the standard health
// service, grpc.health.v1.Health, on a new connection. SERVING passes;
// NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN, a server without the health
// service and no answer within the timeout fail. The call is not retried.
type GRPCProbe struct {
	// port is the port of the gRPC server. Defaults to the endpoint's
	// first target port (required for an ExternalName target).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// service is the service name sent in the health check request, such
	// as my.package.Payments, as the server registers it with its health
	// service. Empty (the default) asks about the server as a whole.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Service string `json:"service,omitempty"`

	// tls is Disabled (the default: plaintext, as most in-cluster gRPC
	// servers listen) or InsecureSkipVerify: TLS without verifying the
	// server's certificate or name, for servers that only speak TLS. The
	// name sent in SNI is the target's host name, or none for an address.
	// +optional
	TLS GRPCProbeTLS `json:"tls,omitempty"`
}

// LoadBalancerSpec configures a LoadBalancer intent.
// +kubebuilder:validation:XValidation:rule="!has(self.pool) && !has(self.address) || (has(self.class) && self.class == 'networking.netintent.io/address-pool')",message="pool and address need class networking.netintent.io/address-pool"
type LoadBalancerSpec struct {
	// class is the Service's loadBalancerClass. Empty: the cluster's own
	// load balancer implementation assigns the address.
	// networking.netintent.io/address-pool: netintent allocates it from an
	// AddressPool. The API refuses to change a Service's class in place, so
	// changing this (setting or clearing it included) recreates the
	// Service: it gets a new cluster IP, and its load-balancer address from
	// the new class's implementation.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Class string `json:"class,omitempty"`

	// pool names the AddressPool to allocate from. Empty: any pool with
	// autoAssign that the namespace may use.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Pool string `json:"pool,omitempty"`

	// address requests a specific address; it must be free and inside a pool
	// the namespace may use. A dual-stack intent gets its address of the
	// other family from the same pool (PreferDualStack: none if that pool
	// has no free one; RequireDualStack: neither address until it has).
	// +optional
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="address must be an IPv4 or IPv6 address"
	Address string `json:"address,omitempty"`

	// externalTrafficPolicy is Cluster (default) or Local, as in a Service.
	// Local keeps the client's address but sends outside traffic only to
	// pods on the node that receives it, so it is refused with static
	// backends, which are on no node.
	// +optional
	// +kubebuilder:validation:Enum=Cluster;Local
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`
}

// HealthCheckMode says whether the active checks' verdicts take backends out
// of traffic.
// +kubebuilder:validation:Enum=Enforce;Observe
type HealthCheckMode string

const (
	// HealthCheckEnforce takes a backend that fails its checks out of
	// traffic.
	HealthCheckEnforce HealthCheckMode = "Enforce"
	// HealthCheckObserve runs the checks and reports what they would do,
	// leaving traffic to pod readiness alone.
	HealthCheckObserve HealthCheckMode = "Observe"
)

// HealthCheck configures how backends are judged healthy.
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || !has(self.period) || duration(self.timeout) <= duration(self.period)",message="timeout must not be longer than period"
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'Observe' || has(self.http) || has(self.tcp) || has(self.grpc)",message="mode Observe needs an http, tcp or grpc probe to observe; without one pod readiness alone decides"
// +kubebuilder:validation:XValidation:rule="!has(self.readinessGate) || !self.readinessGate || has(self.http) || has(self.tcp) || has(self.grpc)",message="readinessGate writes the active probe's verdict on pods: it needs an http, tcp or grpc probe"
// +kubebuilder:validation:XValidation:rule="!has(self.readinessGate) || !self.readinessGate || !has(self.mode) || self.mode == 'Enforce'",message="readinessGate is not for mode Observe: it makes the checks hold pods not Ready, which Observe promises not to do"
type HealthCheck struct {
	// mode is Enforce (the default): a backend that fails its active
	// checks leaves traffic; or Observe: the checks run, and status
	// (status.endpoints.observed), events (EndpointWouldBeUnhealthy,
	// EndpointWouldBeHealthy) and metrics
	// (netintent_endpoint_ejections_detected_total next to
	// netintent_endpoint_ejections_enforced_total) say what they would
	// have done, while the EndpointSlices are what pod readiness alone
	// gives. Switching to Enforce applies the checks' current verdicts at
	// once. Not for ExternalName intents, whose targets' checks always
	// decide.
	// +optional
	Mode HealthCheckMode `json:"mode,omitempty"`

	// ignorePodReadiness makes a pod's Ready condition not count: only the
	// active probe decides. Default false.
	// +optional
	IgnorePodReadiness bool `json:"ignorePodReadiness,omitempty"`

	// readinessGate makes the operator write its verdict on each selected
	// pod as the pod condition networking.netintent.io/backend-healthy:
	// True once the active probe passes, False with the failure class as
	// reason (Timeout, ConnectionRefused, HTTPStatus503, ...) when the
	// probe takes the pod out of traffic. A pod that lists this condition
	// in spec.readinessGates (the admission policy of
	// config/admission adds it in namespaces labelled
	// networking.netintent.io/readiness-gate=enabled) is Ready only when it
	// is True, so a rolling update waits for the operator's checks and not
	// only the kubelet's. Below minHealthyPercent no pod is held (True,
	// reason BelowHealthyFloor). Needs an http, tcp or grpc probe, a
	// selector, and mode Enforce. Default false.
	// +optional
	ReadinessGate bool `json:"readinessGate,omitempty"`

	// ProbeHandler is the optional active probe (http, tcp or grpc).
	// Without one, pod readiness alone decides.
	ProbeHandler `json:",inline"`

	// period is how often each backend is probed (100ms to 5m). Default 10s.
	// Each backend costs one probe a period: probes per second =
	// backends / period (100 backends at 100ms: 1,000 probes a second).
	// A dead backend leaves traffic after about unhealthyThreshold periods
	// plus one timeout.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms') && duration(self) <= duration('5m')",message="period must be between 100ms and 5m"
	Period *metav1.Duration `json:"period,omitempty"`

	// timeout is how long one probe may take (10ms to 1m), at most the
	// period. Default 2s, or the period when that is shorter.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10ms') && duration(self) <= duration('1m')",message="timeout must be between 10ms and 1m"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// healthyThreshold is how many passing probes in a row bring an
	// unhealthy backend back into traffic (1-10). Default 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	HealthyThreshold *int32 `json:"healthyThreshold,omitempty"`

	// unhealthyThreshold is how many failing probes in a row take a backend
	// out of traffic (1-10). Default 3.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	UnhealthyThreshold *int32 `json:"unhealthyThreshold,omitempty"`

	// minHealthyPercent is the floor (0-100): when fewer than this percent of
	// the backends are healthy, every pod-ready backend is published as
	// ready rather than pruning nearly all of them (fail open), and the
	// EndpointsHealthy condition says BelowHealthyFloor. Default 0 (no floor).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MinHealthyPercent *int32 `json:"minHealthyPercent,omitempty"`
}

// DNSSpec configures the embedded DNS server's answers for an intent.
type DNSSpec struct {
	// ttl is the time to live, in seconds, of the DNS answers for this
	// intent's names (0-3600). Default: the server's --dns-ttl.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	TTL *int32 `json:"ttl,omitempty"`
}

// NetworkIntentStatus is what the operator observed and did for an intent.
type NetworkIntentStatus struct {
	// observedGeneration is the latest generation of the spec the operator
	// has fully carried out: its Service and endpoints written, nothing
	// failed and nothing still waiting. Each condition carries its own
	// observedGeneration.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (all is in place), ServiceReady (the Service
	// matches the intent), EndpointsHealthy (backends and their health),
	// AddressAssigned (LoadBalancer address).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// serviceName is the name of the Service the operator owns for the intent.
	// +optional
	ServiceName string `json:"serviceName,omitempty"`

	// address is where the application is reached: the load-balancer
	// address, the cluster IP, or the external name; of the primary IP
	// family when there are two.
	// +optional
	Address string `json:"address,omitempty"`

	// addresses are every address the application is reached at, primary
	// family first: both load-balancer addresses or both cluster IPs of a
	// dual-stack intent.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	Addresses []string `json:"addresses,omitempty"`

	// addressSummary is addresses joined with commas, for display: the
	// ADDRESS column of kubectl get networkintents.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	AddressSummary string `json:"addressSummary,omitempty"`

	// ipFamilies are the IP families the Service got, primary first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:Enum=IPv4;IPv6
	IPFamilies []corev1.IPFamily `json:"ipFamilies,omitempty"`

	// clusterIPs are the Service's cluster IPs, one per IP family, primary
	// first.
	// +optional
	// +listType=atomic
	ClusterIPs []string `json:"clusterIPs,omitempty"`

	// nodePorts are the node ports allocated for the Service's ports.
	// +optional
	// +listType=map
	// +listMapKey=name
	NodePorts []NodePortStatus `json:"nodePorts,omitempty"`

	// loadBalancer holds the Service's load-balancer ingress addresses and,
	// when netintent allocated them, the pool.
	// +optional
	LoadBalancer *LoadBalancerStatus `json:"loadBalancer,omitempty"`

	// endpoints counts the backends and names the unhealthy ones.
	// +optional
	Endpoints *EndpointsStatus `json:"endpoints,omitempty"`

	// externalName is the state of an ExternalName intent's targets.
	// +optional
	ExternalName *ExternalNameStatus `json:"externalName,omitempty"`
}

// NodePortStatus is the node port allocated for one port.
type NodePortStatus struct {
	// name is the port's name.
	// +required
	Name string `json:"name"`
	// nodePort is the allocated node port.
	// +required
	NodePort int32 `json:"nodePort"`
}

// LoadBalancerStatus is the load-balancer state of an intent.
type LoadBalancerStatus struct {
	// ingress are the Service's load-balancer addresses (IP or hostname).
	// +optional
	// +listType=atomic
	Ingress []string `json:"ingress,omitempty"`
	// pool is the AddressPool the address came from, when netintent
	// allocated it.
	// +optional
	Pool string `json:"pool,omitempty"`
}

// EndpointsStatus counts an intent's backends.
type EndpointsStatus struct {
	// total is the number of backends.
	// +required
	Total int32 `json:"total"`
	// healthy is the number of backends in traffic by their own health.
	// +required
	Healthy int32 `json:"healthy"`
	// summary is healthy/total, for display.
	// +optional
	Summary string `json:"summary,omitempty"`
	// unhealthy names up to 10 unhealthy backends and why.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	Unhealthy []UnhealthyEndpoint `json:"unhealthy,omitempty"`
	// observed, with healthCheck.mode Observe, names up to 10 backends that
	// fail their checks and would be out of traffic in mode Enforce, and
	// why; they stay in traffic. observedCount is how many there are.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	Observed []UnhealthyEndpoint `json:"observed,omitempty"`
	// observedCount is the number of backends that would be out of traffic
	// in mode Enforce.
	// +optional
	ObservedCount int32 `json:"observedCount,omitempty"`
}

// UnhealthyEndpoint names a backend out of traffic.
type UnhealthyEndpoint struct {
	// address is the backend's address.
	// +required
	Address string `json:"address"`
	// pod is the backing pod's name, when there is one.
	// +optional
	Pod string `json:"pod,omitempty"`
	// family is the address's IP family. Each address of a dual-stack
	// pod or backend is judged on its own: its IPv6 address may be out of
	// traffic while its IPv4 one is in.
	// +optional
	// +kubebuilder:validation:Enum=IPv4;IPv6
	Family corev1.IPFamily `json:"family,omitempty"`
	// reason says why it is out of traffic: NotReady, ProbeFailed,
	// ForbiddenTarget (an address the prober never dials: loopback,
	// link-local, multicast, cloud metadata, an IPv6 form embedding one
	// of those, or outside the operator's --probe-allowed-cidrs),
	// NoSuchPort or FamilyNotServed (a static backend of an IP family the
	// Service does not have).
	// +required
	Reason EndpointReason `json:"reason"`
	// message is the class of the last probe failure (ConnectionRefused,
	// ConnectionReset, Timeout, NoRoute, NameNotFound, "HTTPStatus 503",
	// GRPCNotServing, GRPCHealthUnimplemented, ...) or other detail.
	// +optional
	Message string `json:"message,omitempty"`
}

// ExternalNameStatus is the state of an ExternalName intent's targets.
type ExternalNameStatus struct {
	// activeTarget is the host currently published.
	// +optional
	ActiveTarget string `json:"activeTarget,omitempty"`
	// targets is each target's health, in priority order.
	// +optional
	// +listType=atomic
	Targets []TargetStatus `json:"targets,omitempty"`
}

// TargetStatus is the health of one ExternalName target.
type TargetStatus struct {
	// host is the target's host.
	// +required
	Host string `json:"host"`
	// healthy says whether the target passes its probe (true without one).
	// +required
	Healthy bool `json:"healthy"`
	// message is the class of the last probe failure (ConnectionRefused,
	// Timeout, NoAddress, "HTTPStatus 503", GRPCNotServing,
	// ForbiddenTarget, ...); empty when the last probe passed.
	// +optional
	Message string `json:"message,omitempty"`
	// addresses is how many addresses the last probe dialled: every
	// address the target's name resolved to (at most 16). Zero when none
	// could be dialled (no address, or an address the prober refuses).
	// +optional
	Addresses int32 `json:"addresses,omitempty"`
	// passingAddresses is how many of them passed; the target is healthy
	// when one does.
	// +optional
	PassingAddresses int32 `json:"passingAddresses,omitempty"`
	// lastTransitionTime is when healthy last changed, or when the target
	// was first judged.
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
}

// NetworkIntent declares how an application is reached: the operator
// produces and owns a Service of the declared exposure, publishes the healthy
// backends as its endpoints, and answers DNS for it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ni,categories=netintent
// +kubebuilder:printcolumn:name="Exposure",type=string,JSONPath=`.spec.exposure`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.status.addressSummary`
// +kubebuilder:printcolumn:name="Healthy",type=string,JSONPath=`.status.endpoints.summary`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NetworkIntent struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares how the application is reached.
	// +required
	Spec NetworkIntentSpec `json:"spec"`

	// status is what the operator observed and did.
	// +optional
	Status NetworkIntentStatus `json:"status,omitempty"`
}

// NetworkIntentList is a list of NetworkIntents.
// +kubebuilder:object:root=true
type NetworkIntentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NetworkIntent `json:"items"`
}

func init() {
	SchemeBuilder.Register(&NetworkIntent{}, &NetworkIntentList{})
}
