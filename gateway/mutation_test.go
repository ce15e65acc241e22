package gateway

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tests in this file each kill mutants that survived the rest of the
// package's tests (docs/SECURITY.md, "Mutation sweep").

// TestAuthorizedWithoutToken: before a token is set (SetToken(nil)), no
// request is authorized and none panics (mutants: the nil check skipped or
// dropped: a nil dereference per request).
func TestAuthorizedWithoutToken(t *testing.T) {
	s := &Server{}
	for _, h := range []string{"Bearer x", "Bearer ", ""} {
		r := httptest.NewRequest("GET", "/v1/status?access_token=x", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("%q: panic: %v", h, p)
				}
			}()
			if s.authorized(r) {
				t.Fatalf("%q authorized with no token set", h)
			}
		}()
	}
	s.SetToken([]byte("0123456789abcdef"))
	r := httptest.NewRequest("GET", "/v1/status", nil)
	r.Header.Set("Authorization", "Bearer 0123456789abcdef")
	if !s.authorized(r) {
		t.Fatal("the token refused")
	}
}

// TestListenUnixLeavesOtherFiles: a regular file where the socket goes is
// an error and stays as it was (mutant: the socket-type check skipped: the
// file was replaced by the socket).
func TestListenUnixLeavesOtherFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gdp.sock")
	if err := os.WriteFile(p, []byte("notes"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ln, err := ListenUnix(p); err == nil {
		ln.Close()
		t.Fatal("listened over a regular file")
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "notes" {
		t.Fatalf("the file in the way was changed: %q, %v", b, err)
	}
}

// TestTokenFileLimits: a token of 16 characters is taken, 15 refused; a
// token file that cannot be created is an error (mutants: the length check
// skipped, < → <=, the create errors ignored).
func TestTokenFileLimits(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		tok string
		ok  bool
	}{{strings.Repeat("a", 16), true}, {strings.Repeat("a", 15), false}} {
		p := filepath.Join(dir, tc.tok)
		if err := os.WriteFile(p, []byte(tc.tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := LoadOrCreateToken(p)
		if tc.ok && (err != nil || string(got) != tc.tok) {
			t.Errorf("%d characters: %q, %v", len(tc.tok), got, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%d characters accepted", len(tc.tok))
		}
	}
	// The parent is a regular file: the token cannot be written.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := LoadOrCreateToken(filepath.Join(file, "sub", "token")); err == nil {
		t.Fatalf("a token that could not be stored: %q", tok)
	}
}

// TestListenTCPPortInUse: a port already taken is an error, not a nil
// listener (mutant: the listen error ignored).
func TestListenTCPPortInUse(t *testing.T) {
	first, err := ListenTCP("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if ln, err := ListenTCP(first.Addr().String(), false); err == nil || ln != nil {
		t.Fatalf("a port in use: listener %v, error %v", ln, err)
	}
}
