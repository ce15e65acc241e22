package certs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeystoreSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	ks, err := OpenKeystore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("keystore dir mode %o, want 700", st.Mode().Perm())
	}
	f := newFixture(t)
	if err := ks.Save("r1", f.router); err != nil {
		t.Fatal(err)
	}
	capID, err := NewIdentityFor(f.capsule, f.owner)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Save("sensor", capID); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "r1.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %o, want 600", st.Mode().Perm())
	}
	got, err := ks.Load("r1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != f.router.Name || !bytes.Equal(got.Key, f.router.Key) || !got.Meta.Equal(f.router.Meta) {
		t.Error("loaded identity differs")
	}
	if got, err := ks.LoadName(f.capsule.Name()); err != nil || got.Meta.Kind != KindCapsule {
		t.Errorf("LoadName capsule: %v", err)
	}
	es, err := ks.List()
	if err != nil || len(es) != 2 || es[0].Alias != "r1" || es[1].Alias != "sensor" || es[1].Kind != KindCapsule {
		t.Errorf("List = %+v, %v", es, err)
	}
	// Never overwritten.
	if err := ks.Save("r1", f.server); !errors.Is(err, ErrExists) {
		t.Errorf("overwrite: got %v, want ErrExists", err)
	}
	if _, err := ks.Load("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing alias: got %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", ".hidden", "a/b", "../up", strings.Repeat("x", 65)} {
		if err := ks.Save(bad, f.server); err == nil {
			t.Errorf("alias %q accepted", bad)
		}
	}
	// No key file may mention the key in a config-like way: only the PEM seed.
	raw, _ := os.ReadFile(filepath.Join(dir, "r1.key"))
	if !bytes.HasPrefix(raw, []byte("-----BEGIN GDP PRIVATE KEY-----")) {
		t.Errorf("key file is not a GDP PRIVATE KEY block: %q", raw)
	}
}

func TestKeystoreRefusesReadableKeys(t *testing.T) {
	ks, err := OpenKeystore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	if err := ks.Save("r1", f.router); err != nil {
		t.Fatal(err)
	}
	kp := filepath.Join(ks.Dir(), "r1.key")
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		if err := os.Chmod(kp, mode); err != nil {
			t.Fatal(err)
		}
		_, err := ks.Load("r1")
		if !errors.Is(err, ErrKeyPermissions) {
			t.Fatalf("mode %o: got %v, want ErrKeyPermissions", mode, err)
		}
		if !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %o: error does not say how to fix it: %v", mode, err)
		}
	}
	os.Chmod(kp, 0o400)
	if _, err := ks.Load("r1"); err != nil {
		t.Errorf("mode 400: %v", err)
	}
}

func TestKeystoreMismatchedMetadata(t *testing.T) {
	ks, err := OpenKeystore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	if err := ks.Save("r1", f.router); err != nil {
		t.Fatal(err)
	}
	// Someone replaces the metadata with another identity's.
	if err := os.WriteFile(filepath.Join(ks.Dir(), "r1.meta"), Armor(PEMMetadata, f.server.Meta.Marshal()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Load("r1"); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("got %v, want a key/metadata mismatch", err)
	}
	// Saving an identity whose key is not the metadata's key is refused.
	bad := &Identity{Meta: f.server.Meta, Name: f.server.Name, Key: f.router.Key}
	if err := ks.Save("bad", bad); err == nil {
		t.Error("mismatched identity saved")
	}
	if _, err := os.Stat(filepath.Join(ks.Dir(), "bad.meta")); !os.IsNotExist(err) {
		t.Error("a refused save left a file behind")
	}
}

func TestArmor(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	b := f.chain.Marshal()
	pemPath := filepath.Join(dir, "c.chain")
	os.WriteFile(pemPath, Armor(PEMChain, b), 0o644)
	binPath := filepath.Join(dir, "c.bin")
	os.WriteFile(binPath, b, 0o644)
	for _, p := range []string{pemPath, binPath} {
		if _, err := ReadChainFile(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := ReadCertFile(pemPath); !errors.Is(err, ErrMalformed) {
		t.Errorf("chain read as cert: %v", err)
	}
	two := append(Armor(PEMChain, b), Armor(PEMChain, b)...)
	os.WriteFile(pemPath, two, 0o644)
	if _, err := ReadChainFile(pemPath); !errors.Is(err, ErrMalformed) {
		t.Errorf("two blocks: %v", err)
	}
}
