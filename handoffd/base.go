package handoffd

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrNoBase is returned when a base image is not in the cache.
var ErrNoBase = errors.New("base image not in cache")

// BaseMeta describes one cached base image.
type BaseMeta struct {
	ID    string    `json:"id"`    // hex content hash: SHA-256 over the size and every block hash
	Size  int64     `json:"size"`  // bytes
	Label string    `json:"label"` // free text, e.g. "debian-12 disk"
	Added time.Time `json:"added"`
}

// Base is a cached base image with its per-block hash index loaded.
type Base struct {
	BaseMeta
	Path   string // the image file
	Hashes []Hash // one per 4 KiB block
}

// BaseCache is a directory of base images both cloudlets hold, each under
// its content hash: DIR/ID/{image,index,meta.json}. index is every block's
// SHA-256, 32 bytes each, in order.
type BaseCache struct {
	Dir string

	mu     sync.Mutex
	loaded map[string]*Base
}

// OpenBaseCache opens (creating) the cache directory.
func OpenBaseCache(dir string) (*BaseCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("base cache %s: %w", dir, err)
	}
	return &BaseCache{Dir: dir, loaded: map[string]*Base{}}, nil
}

func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// Add copies the image at path into the cache and indexes it. Adding an
// image already cached returns its metadata unchanged.
func (c *BaseCache) Add(path, label string) (BaseMeta, error) {
	size, hashes, err := hashPath(path)
	if err != nil {
		return BaseMeta{}, fmt.Errorf("base add %s: %w", path, err)
	}
	d := digestOf(size, hashes)
	id := hex.EncodeToString(d[:])
	dir := filepath.Join(c.Dir, id)
	if m, err := readMeta(dir); err == nil {
		return m, nil
	}
	tmp, err := os.MkdirTemp(c.Dir, ".add-")
	if err != nil {
		return BaseMeta{}, fmt.Errorf("base add: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := copyFile(path, filepath.Join(tmp, "image")); err != nil {
		return BaseMeta{}, fmt.Errorf("base add %s: %w", path, err)
	}
	// The copy must be the image that was hashed: a file changing under us
	// would otherwise be cached under the wrong name.
	size2, hashes2, err := hashPath(filepath.Join(tmp, "image"))
	if err != nil || digestOf(size2, hashes2) != d {
		return BaseMeta{}, fmt.Errorf("base add %s: the file changed while it was copied", path)
	}
	if err := os.WriteFile(filepath.Join(tmp, "index"), flatten(hashes), 0o644); err != nil {
		return BaseMeta{}, fmt.Errorf("base add: %w", err)
	}
	m := BaseMeta{ID: id, Size: size, Label: label, Added: time.Now().UTC().Truncate(time.Second)}
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), mb, 0o644); err != nil {
		return BaseMeta{}, fmt.Errorf("base add: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return BaseMeta{}, fmt.Errorf("base add: %w", err)
	}
	return m, nil
}

func flatten(hs []Hash) []byte {
	b := make([]byte, 0, len(hs)*32)
	for i := range hs {
		b = append(b, hs[i][:]...)
	}
	return b
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil { // copy_file_range where the kernel can
		out.Close()
		return err
	}
	return out.Close()
}

func readMeta(dir string) (BaseMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return BaseMeta{}, err
	}
	var m BaseMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return BaseMeta{}, fmt.Errorf("%s/meta.json: %w", dir, err)
	}
	return m, nil
}

// List returns every cached base, sorted by label then ID.
func (c *BaseCache) List() ([]BaseMeta, error) {
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("base ls: %w", err)
	}
	var out []BaseMeta
	for _, e := range ents {
		if !e.IsDir() || !validID(e.Name()) {
			continue
		}
		m, err := readMeta(filepath.Join(c.Dir, e.Name()))
		if err != nil {
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Label != out[j].Label {
			return out[i].Label < out[j].Label
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Resolve turns a unique ID prefix (at least 8 hex digits) into a full ID.
func (c *BaseCache) Resolve(prefix string) (string, error) {
	if validID(prefix) {
		if _, err := os.Stat(filepath.Join(c.Dir, prefix)); err != nil {
			return "", fmt.Errorf("base %s: %w", prefix, ErrNoBase)
		}
		return prefix, nil
	}
	if len(prefix) < 8 {
		return "", fmt.Errorf("base %q: give at least 8 hex digits", prefix)
	}
	ms, err := c.List()
	if err != nil {
		return "", err
	}
	var hit []string
	for _, m := range ms {
		if strings.HasPrefix(m.ID, prefix) {
			hit = append(hit, m.ID)
		}
	}
	switch len(hit) {
	case 0:
		return "", fmt.Errorf("base %s: %w", prefix, ErrNoBase)
	case 1:
		return hit[0], nil
	}
	return "", fmt.Errorf("base %s: ambiguous (%d matches)", prefix, len(hit))
}

// Remove deletes a cached base.
func (c *BaseCache) Remove(id string) error {
	id, err := c.Resolve(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.loaded, id)
	c.mu.Unlock()
	if err := os.RemoveAll(filepath.Join(c.Dir, id)); err != nil {
		return fmt.Errorf("base rm %s: %w", id, err)
	}
	return nil
}

// Get loads a base with its index (cached in memory after the first call).
func (c *BaseCache) Get(id string) (*Base, error) {
	if !validID(id) {
		return nil, fmt.Errorf("base %q: not a 64-digit lower-case hex id", id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.loaded[id]; b != nil {
		return b, nil
	}
	dir := filepath.Join(c.Dir, id)
	m, err := readMeta(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("base %s: %w", id, ErrNoBase)
		}
		return nil, fmt.Errorf("base %s: %w", id, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "index"))
	if err != nil {
		return nil, fmt.Errorf("base %s index: %w", id, err)
	}
	if int64(len(raw)) != blocksOf(m.Size)*32 || m.ID != id {
		return nil, fmt.Errorf("base %s: index does not match meta.json (run gdp handoff base verify)", id)
	}
	b := &Base{BaseMeta: m, Path: filepath.Join(dir, "image"), Hashes: make([]Hash, len(raw)/32)}
	for i := range b.Hashes {
		copy(b.Hashes[i][:], raw[i*32:])
	}
	c.loaded[id] = b
	return b, nil
}

// Verify re-reads a cached base and checks its image, index and ID agree.
func (c *BaseCache) Verify(id string) error {
	id, err := c.Resolve(id)
	if err != nil {
		return err
	}
	dir := filepath.Join(c.Dir, id)
	size, hashes, err := hashPath(filepath.Join(dir, "image"))
	if err != nil {
		return fmt.Errorf("base verify %s: %w", id, err)
	}
	d := digestOf(size, hashes)
	if hex.EncodeToString(d[:]) != id {
		return fmt.Errorf("base verify %s: image content does not match its id", id)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "index"))
	if err != nil {
		return fmt.Errorf("base verify %s: %w", id, err)
	}
	if string(raw) != string(flatten(hashes)) {
		return fmt.Errorf("base verify %s: index does not match the image", id)
	}
	m, err := readMeta(dir)
	if err != nil || m.ID != id || m.Size != size {
		return fmt.Errorf("base verify %s: meta.json does not match the image", id)
	}
	return nil
}

// ImageID is the cache id an image would have: the hex digest of its size
// and block hashes (docs/PROTOCOL.md §12.2).
func ImageID(path string) (string, error) {
	size, hashes, err := hashPath(path)
	if err != nil {
		return "", err
	}
	d := digestOf(size, hashes)
	return hex.EncodeToString(d[:]), nil
}
