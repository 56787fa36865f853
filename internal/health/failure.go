package health

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
)

// Failure classes: what a failed probe says in an intent's status, in place
// of the raw error text (which names addresses, ports and Go internals, and
// changes from one failure to the next of the same kind).
const (
	FailureForbiddenTarget   = "ForbiddenTarget"
	FailureConnectionRefused = "ConnectionRefused"
	FailureConnectionReset   = "ConnectionReset"
	FailureTimeout           = "Timeout"
	FailureNoRoute           = "NoRoute"
	FailureNameNotFound      = "NameNotFound"
	FailureNoAddress         = "NoAddress"
	FailureNameResolution    = "NameResolutionFailed"
	FailureInvalidProbe      = "InvalidProbe"
	FailureProbeError        = "ProbeError"
	// FailureGRPCNotServing: the gRPC health service answered NOT_SERVING.
	FailureGRPCNotServing = "GRPCNotServing"
	// FailureGRPCStatusUnknown: the gRPC health service answered UNKNOWN.
	FailureGRPCStatusUnknown = "GRPCStatusUnknown"
	// FailureGRPCServiceUnknown: the gRPC health service does not know the
	// service asked about (SERVICE_UNKNOWN, or the call failed NotFound).
	FailureGRPCServiceUnknown = "GRPCServiceUnknown"
	// FailureGRPCHealthUnimplemented: the server has no gRPC health
	// service (the call failed Unimplemented).
	FailureGRPCHealthUnimplemented = "GRPCHealthUnimplemented"
	// failureHTTPStatus is followed by the status received: "HTTPStatus 503".
	failureHTTPStatus = "HTTPStatus"
	// failureGRPCError is followed by the code a gRPC health check call
	// failed with, for codes with no class of their own: "GRPCError
	// Unavailable".
	failureGRPCError = "GRPCError"
)

// FailureClass sorts a probe's error into a short class: ConnectionRefused,
// ConnectionReset, Timeout, NoRoute, NoAddress, NameNotFound, NameResolutionFailed,
// ForbiddenTarget, InvalidProbe, "HTTPStatus <code>", GRPCNotServing,
// GRPCStatusUnknown, GRPCServiceUnknown, GRPCHealthUnimplemented,
// "GRPCError <code>", or ProbeError for anything else. It returns "" for nil.
func FailureClass(err error) string {
	if class := grpcClass(err); class != "" {
		return class
	}
	var status *StatusError
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrForbiddenTarget):
		return FailureForbiddenTarget
	case errors.As(err, &status):
		return failureHTTPStatus + " " + strconv.Itoa(status.Code)
	case errors.Is(err, errInvalidProbe):
		return FailureInvalidProbe
	case errors.Is(err, ErrNoAddress):
		return FailureNoAddress
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return FailureNameNotFound
		case dnsErr.IsTimeout:
			return FailureTimeout
		}
		return FailureNameResolution
	case errors.Is(err, errResolution):
		return FailureNameResolution
	case errors.Is(err, syscall.ECONNREFUSED):
		return FailureConnectionRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FailureConnectionReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTDOWN), errors.Is(err, syscall.ENETDOWN):
		return FailureNoRoute
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return FailureTimeout
	}
	return FailureProbeError
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// forbiddenDetail is why the guard refused the target err names, "" when
// err is no refusal of one address.
func forbiddenDetail(err error) string {
	var fe *ForbiddenError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return ""
}
