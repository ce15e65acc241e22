package certs

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gdpnet/gdpnet/internal/fsutil"
)

// Keystore is a directory of identities. Each alias has two files:
//
//	ALIAS.key   the Ed25519 private key seed, PEM "GDP PRIVATE KEY", mode 0600
//	ALIAS.meta  the identity's metadata, PEM "GDP METADATA" (public)
//
// Key files readable by group or others are refused (ErrKeyPermissions), as
// ssh does. Files are written atomically and never overwritten.
type Keystore struct {
	dir string
}

// Entry is one identity in a keystore listing.
type Entry struct {
	Alias string
	Name  Name
	Kind  Kind
}

// OpenKeystore opens dir, creating it (mode 0700) if it does not exist.
func OpenKeystore(dir string) (*Keystore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keystore %s: %w", dir, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("keystore %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("keystore %s: not a directory", dir)
	}
	return &Keystore{dir: dir}, nil
}

// Dir returns the keystore directory.
func (k *Keystore) Dir() string { return k.dir }

// ValidAlias checks an alias: 1-64 characters of [A-Za-z0-9._-], not
// starting with a dot.
func ValidAlias(alias string) error {
	if alias == "" || len(alias) > 64 || alias[0] == '.' {
		return fmt.Errorf("alias %q: want 1-64 characters of A-Z a-z 0-9 . _ -, not starting with a dot", alias)
	}
	for _, r := range alias {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("alias %q: want 1-64 characters of A-Z a-z 0-9 . _ -, not starting with a dot", alias)
		}
	}
	return nil
}

func (k *Keystore) keyPath(alias string) string  { return filepath.Join(k.dir, alias+".key") }
func (k *Keystore) metaPath(alias string) string { return filepath.Join(k.dir, alias+".meta") }

// Save stores id under alias. It refuses to replace an existing alias.
func (k *Keystore) Save(alias string, id *Identity) error {
	if err := ValidAlias(alias); err != nil {
		return fmt.Errorf("keystore save: %w", err)
	}
	if id == nil || id.Meta == nil {
		return fmt.Errorf("keystore save %s: no identity", alias)
	}
	if _, err := NewIdentityFor(id.Meta, id.Key); err != nil {
		return fmt.Errorf("keystore save %s: %w", alias, err)
	}
	for _, p := range []string{k.keyPath(alias), k.metaPath(alias)} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("keystore save %s: %w: %s", alias, ErrExists, p)
		}
	}
	// Metadata first: a key file never exists without its metadata.
	if err := writeNew(k.metaPath(alias), Armor(PEMMetadata, id.Meta.Marshal()), 0o644); err != nil {
		return fmt.Errorf("keystore save %s: %w", alias, err)
	}
	if err := writeNew(k.keyPath(alias), Armor(PEMPrivateKey, id.Key.Seed()), 0o600); err != nil {
		os.Remove(k.metaPath(alias))
		return fmt.Errorf("keystore save %s: %w", alias, err)
	}
	return nil
}

// writeNew writes data to path atomically and durably, and fails with
// ErrExists rather than replace an existing file.
func writeNew(path string, data []byte, mode os.FileMode) error {
	if err := fsutil.WriteFile(path, data, mode, false); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, path)
		}
		return err
	}
	return nil
}

// Load returns the identity stored under alias. It refuses a key file that
// group or others may read, and checks the key against the metadata.
func (k *Keystore) Load(alias string) (*Identity, error) {
	if err := ValidAlias(alias); err != nil {
		return nil, fmt.Errorf("keystore load: %w", err)
	}
	kp := k.keyPath(alias)
	// Open first and check the mode of what was opened, so the file cannot
	// be swapped between the check and the read.
	f, err := os.Open(kp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keystore %s: alias %q: %w", k.dir, alias, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("keystore load %s: %w", alias, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keystore load %s: %w", alias, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("keystore load %s: %s is not a regular file", alias, kp)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("keystore load %s: refusing %s: %w (mode %04o); run: chmod 600 %s",
			alias, kp, ErrKeyPermissions, perm, kp)
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("keystore load %s: %w", alias, err)
	}
	typ, body, err := Dearmor(data)
	if err == nil && typ != PEMPrivateKey {
		err = fmt.Errorf("%w: not a %q PEM block", ErrMalformed, PEMPrivateKey)
	}
	if err != nil {
		return nil, fmt.Errorf("keystore load %s: %s: %w", alias, kp, err)
	}
	if len(body) != ed25519.SeedSize {
		return nil, fmt.Errorf("keystore load %s: %w: key seed has %d bytes, want %d", alias, ErrMalformed, len(body), ed25519.SeedSize)
	}
	key := ed25519.NewKeyFromSeed(body)
	m, err := ReadMetadataFile(k.metaPath(alias))
	if err != nil {
		return nil, fmt.Errorf("keystore load %s: %w", alias, err)
	}
	if !bytes.Equal(m.Key, key.Public().(ed25519.PublicKey)) {
		return nil, fmt.Errorf("keystore load %s: the key in %s does not belong to the metadata in %s", alias, kp, k.metaPath(alias))
	}
	return &Identity{Meta: m, Name: m.Name(), Key: key}, nil
}

// List returns the identities in the keystore, sorted by alias. Entries
// whose metadata cannot be read are skipped.
func (k *Keystore) List() ([]Entry, error) {
	des, err := os.ReadDir(k.dir)
	if err != nil {
		return nil, fmt.Errorf("keystore %s: %w", k.dir, err)
	}
	var out []Entry
	for _, de := range des {
		alias, ok := strings.CutSuffix(de.Name(), ".key")
		if !ok || ValidAlias(alias) != nil {
			continue
		}
		m, err := ReadMetadataFile(k.metaPath(alias))
		if err != nil {
			continue
		}
		out = append(out, Entry{Alias: alias, Name: m.Name(), Kind: m.Kind})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Alias < out[j].Alias })
	return out, nil
}

// LoadName returns the identity whose name is n.
func (k *Keystore) LoadName(n Name) (*Identity, error) {
	es, err := k.List()
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if e.Name == n {
			return k.Load(e.Alias)
		}
	}
	return nil, fmt.Errorf("keystore %s: name %s: %w", k.dir, n, ErrNotFound)
}
