package wire

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Status is a response code in the spirit of HTTP's (and the original
// GDP's acks and naks). Zero means "not a response".
type Status uint16

// Status codes (docs/PROTOCOL.md §8.4).
const (
	StatusOK             Status = 200 // done
	StatusCreated        Status = 201 // capsule created (CREATE)
	StatusBadRequest     Status = 400 // malformed, fails verification, gap without a hole
	StatusUnauthorized   Status = 401 // heartbeat not signed by the writer key
	StatusForbidden      Status = 403 // no valid AdCert for this server, route refused
	StatusNotFound       Status = 404 // unknown capsule, no such entry
	StatusConflict       Status = 409 // stale/replayed heartbeat, or writer equivocation (with evidence)
	StatusWriterConflict Status = 412 // APPEND does not extend the head: another writer is active; nothing stored
	StatusTooLarge       Status = 413 // record or message beyond the limits
	StatusGap            Status = 416 // the server lacks entries before the batch: it is catching up
	StatusInternal       Status = 500 // store failure
	StatusUnavailable    Status = 503 // server draining or overloaded
)

var statusNames = map[Status]string{
	StatusOK: "ok", StatusCreated: "created", StatusBadRequest: "bad request",
	StatusUnauthorized: "unauthorized", StatusForbidden: "forbidden", StatusNotFound: "not found",
	StatusConflict: "conflict", StatusWriterConflict: "another writer is active", StatusTooLarge: "too large", StatusGap: "behind (gap)",
	StatusInternal: "internal error", StatusUnavailable: "unavailable",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status %d", uint16(s))
}

// Success reports a 2xx status.
func (s Status) Success() bool { return s >= 200 && s < 300 }

// StatusError is a failure status a server answered with.
type StatusError struct {
	Op     Op
	Status Status
	Reason string
}

func (e *StatusError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("%s: %s", e.Op, e.Status)
	}
	return fmt.Sprintf("%s: %s: %s", e.Op, e.Status, displayReason(e.Reason))
}

// maxReasonShown bounds how much of a server's reason an error shows.
const maxReasonShown = 300

// displayReason is a server's free-text reason as an error may show it:
// the server chose those bytes, and errors reach operators' terminals
// and log lines, so control characters (escape sequences, newlines that
// would fake a second log line) and invalid UTF-8 become U+FFFD, and a
// long reason is cut.
func displayReason(r string) string {
	if len(r) > maxReasonShown {
		cut := maxReasonShown
		for cut > 0 && !utf8.RuneStart(r[cut]) {
			cut--
		}
		r = r[:cut] + "…"
	}
	return strings.Map(func(c rune) rune {
		if c == utf8.RuneError || !unicode.IsGraphic(c) {
			return utf8.RuneError
		}
		return c
	}, r)
}

// Err returns nil for a success status, else a *StatusError.
func (m *Message) Err() error {
	if m.Status.Success() {
		return nil
	}
	return &StatusError{Op: m.Op, Status: m.Status, Reason: m.Error}
}
