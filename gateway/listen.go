package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/gdpnet/gdpnet/internal/fsutil"
)

// ListenUnix listens on a unix socket at path with mode 0600: only the
// user running the gateway (and root) may connect. The socket is bound
// under a temporary name, set to 0600 and only then renamed into place,
// so there is no moment at which others could connect. A stale socket
// left by a gateway that died is replaced; a live one is an error.
func ListenUnix(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("unix socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("unix socket %s: another gateway is listening there", path)
		}
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	return ln, nil
}

// ErrNotLoopback: a TCP listen address that is not loopback, refused
// unless forced.
var ErrNotLoopback = errors.New("not a loopback address")

// CheckLoopback accepts "127.0.0.1:P", "[::1]:P" and "localhost:P" (any
// 127/8 address too); anything else — a LAN address, 0.0.0.0, [::], a
// host name — is refused unless force is set.
func CheckLoopback(addr string, force bool) error {
	if force {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("tcp listen %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("tcp listen %q: %w: the gateway serves this machine only; set allow_non_loopback: true (and protect the token) to serve a network", addr, ErrNotLoopback)
	}
	return nil
}

// ListenTCP listens on addr after CheckLoopback.
func ListenTCP(addr string, force bool) (net.Listener, error) {
	if err := CheckLoopback(addr, force); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp listen %s: %w", addr, err)
	}
	return ln, nil
}

// LoadOrCreateToken returns the bearer token in path, creating it (32
// random bytes, hex, mode 0600) when the file does not exist. A token
// file others may read is refused, as the keystore refuses readable keys.
func LoadOrCreateToken(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, err
		}
		tok := hex.EncodeToString(raw[:])
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("token file %s: %w", path, err)
		}
		if err := fsutil.WriteFile(path, []byte(tok+"\n"), 0o600, false); err != nil {
			return nil, fmt.Errorf("token file %s: %w", path, err)
		}
		return []byte(tok), nil
	}
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("token file %s: mode %04o lets others read it; chmod 600 it", path, st.Mode().Perm())
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return nil, fmt.Errorf("token file %s: a token of %d characters is too short (at least 16)", path, len(tok))
	}
	return []byte(tok), nil
}
