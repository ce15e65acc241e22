package capsuled

import (
	"errors"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
)

// statusOf maps an error from the store or the capsule package to the
// status a client sees.
func statusOf(err error) wire.Status {
	switch {
	case err == nil:
		return wire.StatusOK
	case errors.Is(err, errForbidden), errors.Is(err, client.ErrRefused):
		return wire.StatusForbidden
	case errors.Is(err, store.ErrWriterConflict):
		return wire.StatusWriterConflict
	case errors.Is(err, store.ErrUnknownCapsule), errors.Is(err, store.ErrNotFound):
		return wire.StatusNotFound
	case errors.Is(err, store.ErrOutOfRange):
		return wire.StatusNotFound
	case errors.Is(err, store.ErrCapsuleExists), errors.Is(err, capsule.ErrEquivocation), errors.Is(err, capsule.ErrStale):
		return wire.StatusConflict
	case errors.Is(err, capsule.ErrBadSignature):
		return wire.StatusUnauthorized
	case errors.Is(err, capsule.ErrTooLarge), errors.Is(err, wire.ErrTooLarge):
		return wire.StatusTooLarge
	case errors.Is(err, capsule.ErrMalformed), errors.Is(err, capsule.ErrWrongCapsule), errors.Is(err, capsule.ErrBadDataHash),
		errors.Is(err, capsule.ErrBrokenChain), errors.Is(err, capsule.ErrGap), errors.Is(err, capsule.ErrRootMismatch),
		errors.Is(err, capsule.ErrBadProof), errors.Is(err, capsule.ErrBadTime), errors.Is(err, wire.ErrMalformed):
		return wire.StatusBadRequest
	case errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrDiskFull), errors.Is(err, errUnpublished), errors.Is(err, errBusy),
		errors.Is(err, errStorageShare):
		return wire.StatusUnavailable
	}
	return wire.StatusInternal
}
