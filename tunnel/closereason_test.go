package tunnel

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/quic-go/quic-go"
)

// A normal close is logged as one, not as quic-go's "Application error
// 0x0"; other causes keep their text.
func TestCloseReason(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "closed"},
		{ErrClosed, "closed"},
		{&quic.ApplicationError{ErrorCode: closeNormal, Remote: true}, "closed by peer"},
		{fmt.Errorf("wrapped: %w", &quic.ApplicationError{ErrorCode: closeNormal}), "closed"},
		{&quic.ApplicationError{ErrorCode: closeRefused, Remote: true}, "refused by peer"},
		{&quic.IdleTimeoutError{}, "peer silent (idle timeout)"},
		{errors.New("tunnel: peer credentials expired"), "tunnel: peer credentials expired"},
	} {
		got := CloseReason(c.err)
		if got != c.want || strings.Contains(got, "Application error") {
			t.Errorf("CloseReason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
