package gateway

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestAccessTokenQuery (Session 14): a browser's WebSocket API cannot set
// headers, so the token may come as the access_token query parameter
// (RFC 6750 §2.3): the right one is authorized, a wrong or empty one is
// not (mutant: the query parameter never read — every browser
// subscription refused; no test sent one).
func TestAccessTokenQuery(t *testing.T) {
	s := &Server{}
	s.SetToken([]byte("0123456789abcdef"))
	for q, want := range map[string]bool{
		"?access_token=0123456789abcdef": true,
		"?access_token=0123456789abcdeX": false,
		"?access_token=":                 false,
		"":                               false,
	} {
		r := httptest.NewRequest("GET", "/v1/capsules/x/subscribe"+q, nil)
		if got := s.authorized(r); got != want {
			t.Errorf("%q: authorized %v, want %v", q, got, want)
		}
	}
}

// TestListenUnixPathTooLong (Session 14): a socket path the kernel cannot
// bind (longer than sun_path's 108 bytes) is an error, not a panic
// (mutant: the listen error ignored: a nil listener dereferenced).
func TestListenUnixPathTooLong(t *testing.T) {
	p := filepath.Join(t.TempDir(), strings.Repeat("d", 100), "gdp.sock")
	ln, err := ListenUnix(p)
	if err == nil || ln != nil {
		t.Fatalf("a socket path of %d bytes: %v, %v; want an error", len(p), ln, err)
	}
}
