//go:build unix

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// errWriterLocked: another process on this machine writes the capsule.
var errWriterLocked = errors.New("another writer is active")

// writerLockPath is the lock file of capsule c: in a directory beside the
// keystore (<keystore>.locks/), one file per capsule.
func writerLockPath(keystore string, c pdu.Name) string {
	ks := filepath.Clean(keystore)
	return filepath.Join(filepath.Dir(ks), filepath.Base(ks)+".locks", c.String()+".lock")
}

// lockHolder names this process in the lock files it holds: the command
// ("gdp gateway", "gdp fs put"), so the writer refused knows who holds it.
var lockHolder = commandName(os.Args)

// commandName is "gdp" and the subcommand words of args (up to two, before
// the first flag or argument that is not a word).
func commandName(args []string) string {
	words := []string{"gdp"}
	for _, a := range args[min(1, len(args)):] {
		if len(words) == 3 || strings.HasPrefix(a, "-") || strings.ContainsAny(a, "/.=") || len(a) > 12 {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// lockWriter takes the local writer lock of capsule c (flock, released
// when the process ends however it ends), so two `gdp capsule append` of
// one capsule on one machine cannot fork it. The lock file records who
// holds it.
//
// Beside a keystore on a read-only file system (a Kubernetes Secret, as
// gdp sim export mounts one at /var/lib/gdp) the lock goes to
// readOnlyLockPath instead: every process of that machine using that
// keystore finds the same file there (Session 20: before, gdp capsule
// append failed on such a keystore, "read-only file system").
func lockWriter(keystore string, c pdu.Name) (unlock func(), err error) {
	path := writerLockPath(keystore, c)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); errors.Is(err, syscall.EROFS) {
		if path, err = readOnlyLockPath(keystore, c); err != nil {
			return nil, fmt.Errorf("writer lock: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("writer lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("writer lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			holder = strings.TrimSpace(string(b))
		}
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			what := "wait for it to finish"
			if strings.Contains(holder, "(gdp gateway)") {
				// The gateway keeps a writer between requests.
				what = "the gateway keeps a capsule's writer until idle_close (default 5m) after its last write to it: write this capsule through the gateway, or wait"
			}
			return nil, fmt.Errorf("capsule %s: %w on this machine (%s holds %s); %s: two writers with one key fork the capsule",
				c, errWriterLocked, holder, path, what)
		}
		return nil, fmt.Errorf("writer lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "pid %d (%s) since %s\n", os.Getpid(), lockHolder, time.Now().UTC().Format(time.RFC3339))
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// readOnlyLockPath is the lock file of capsule c for a keystore beside
// which nothing can be written: <tmp>/gdp-<uid>/locks/<hash of the
// keystore's absolute path>/<capsule>.lock, in a directory this user owns
// with mode 0700 (created so; one of another owner or wider mode is
// refused, so no other user can hold or replace the lock).
func readOnlyLockPath(keystore string, c pdu.Name) (string, error) {
	abs, err := filepath.Abs(keystore)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(filepath.Clean(abs)))
	top := filepath.Join(os.TempDir(), fmt.Sprintf("gdp-%d", os.Getuid()))
	if err := os.Mkdir(top, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	st, err := os.Lstat(top)
	if err != nil {
		return "", err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || !ok || int(sys.Uid) != os.Getuid() || st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("keystore %s is read-only and %s, where its locks would go, is not a 0700 directory of this user: remove it", keystore, top)
	}
	dir := filepath.Join(top, "locks", hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return filepath.Join(dir, c.String()+".lock"), nil
}
