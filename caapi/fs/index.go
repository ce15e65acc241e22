package fs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Version is one manifest: a version of one path.
type Version struct {
	// Seqno is the manifest record's seqno: the version's identifier.
	Seqno uint64
	// Time is when the writer wrote the manifest.
	Time time.Time
	*Manifest
}

// Entry is what a path is in one state of the tree.
type Entry struct {
	Path string
	Name string // last element ("" for the root)
	Type uint8  // TypeFile or TypeDir
	// Version is the file's (or explicit directory's) manifest; nil for a
	// directory that exists only because paths below it do.
	Version *Version
}

// Size is the file's size (0 for a directory).
func (e Entry) Size() int64 {
	if e.Version == nil || e.Type != TypeFile {
		return 0
	}
	return int64(e.Version.Size)
}

// index is the tree at one point of the capsule: every manifest from the
// first up to head, newest version per path.
type index struct {
	head    uint64 // seqno of the newest manifest taken (0: none)
	latest  map[string]*Version
	history map[string][]*Version // newest first
	// skipped counts the records, newest first from the point read, that
	// are not files-capsule records and were passed over to find the
	// newest one that is (Session 20).
	skipped uint64
}

func newIndex() *index {
	return &index{latest: map[string]*Version{}, history: map[string][]*Version{}}
}

// fetchFn returns the verified data and time of record seqno.
type fetchFn func(ctx context.Context, seqno uint64) (data []byte, t time.Time, err error)

// pageFn returns the verified data of some records ending at hi: those of
// [lo, hi] for an lo it picks (1 ≤ lo ≤ hi), oldest first.
type pageFn func(ctx context.Context, hi uint64) (lo uint64, data [][]byte, err error)

// build walks the manifest chain back from record start (any record of
// the capsule; 0: empty) and adds every manifest to ix. Records at start
// and below it that are not files-capsule records (another program's,
// written with the writer's key: a KV put, a plain append) are skipped,
// counted in ix.skipped, until one that is: its header names the newest
// manifest (docs/FILES.md §2, Session 20). A capsule with records but
// none of them a files record is not a files capsule (ErrNotFS). The
// manifests' prev pointers are the writer's own and must name manifests.
func (ix *index) build(ctx context.Context, start uint64, fetch fetchFn, page pageFn) error {
	s, data, t, err := ix.tip(ctx, start, fetch, page)
	if err != nil {
		return err
	}
	var chain []*Version
	first := true
	for s != 0 {
		if data == nil {
			if data, t, err = fetch(ctx, s); err != nil {
				return err
			}
		}
		kind, prev, body, err := parseHeader(data)
		data = nil
		if err != nil {
			return fmt.Errorf("record %d: %w", s, err)
		}
		if kind != kindManifest {
			if !first {
				return fmt.Errorf("record %d: %w: a manifest's prev points at a %q record", s, ErrNotFS, kind)
			}
			first = false
			if prev >= s {
				return fmt.Errorf("record %d: %w: prev %d is not older", s, ErrNotFS, prev)
			}
			s = prev
			continue
		}
		first = false
		m, err := decodeManifest(body)
		if err != nil {
			return fmt.Errorf("record %d: %w", s, err)
		}
		if err := checkRefs(m, s); err != nil {
			return err
		}
		chain = append(chain, &Version{Seqno: s, Time: t, Manifest: m})
		if prev >= s {
			return fmt.Errorf("record %d: %w: prev %d is not older", s, ErrNotFS, prev)
		}
		s = prev
	}
	for i := len(chain) - 1; i >= 0; i-- {
		ix.add(chain[i])
	}
	return nil
}

// tipSingles is how many records the look-back for the newest files
// record reads one by one (exactly the records it needs) before it reads
// pages of them.
const tipSingles = 8

// tip is the seqno of the newest files-capsule record at or below start
// (0: start is 0), skipping and counting the others: the first
// tipSingles one READ each, then a page per read. With the record's data
// and time when it was read alone (else nil).
func (ix *index) tip(ctx context.Context, start uint64, fetch fetchFn, page pageFn) (uint64, []byte, time.Time, error) {
	hi := start
	for n := 0; hi != 0 && n < tipSingles; n++ {
		data, t, err := fetch(ctx, hi)
		if err != nil {
			return 0, nil, time.Time{}, err
		}
		if IsRecord(data) {
			return hi, data, t, nil
		}
		ix.skipped++
		if n == 0 && hi > 1 {
			// A files capsule's first record is a files record (a put
			// writes one first; the gateway and the CLI tell files
			// capsules by it): a capsule whose first record is not one
			// holds no files, said after one more READ, not after
			// paging back through its whole log.
			first, _, err := fetch(ctx, 1)
			if err != nil {
				return 0, nil, time.Time{}, err
			}
			if !IsRecord(first) {
				return 0, nil, time.Time{}, fmt.Errorf("%w: record 1 is not one: not a files capsule", ErrNotFS)
			}
		}
		hi--
	}
	for hi != 0 {
		lo, data, err := page(ctx, hi)
		if err != nil {
			return 0, nil, time.Time{}, err
		}
		if lo < 1 || lo > hi || uint64(len(data)) != hi-lo+1 {
			return 0, nil, time.Time{}, fmt.Errorf("records [%d, %d]: %w: the replica does not have them", lo, hi, ErrNotExist)
		}
		for i := len(data) - 1; i >= 0; i-- {
			if IsRecord(data[i]) {
				return lo + uint64(i), nil, time.Time{}, nil
			}
			ix.skipped++
		}
		hi = lo - 1
	}
	if ix.skipped > 0 {
		return 0, nil, time.Time{}, fmt.Errorf("%w: none of the capsule's %d records up to %d is one", ErrNotFS, ix.skipped, start)
	}
	return 0, nil, time.Time{}, nil
}

// checkRefs: a manifest may only name records written before it.
func checkRefs(m *Manifest, seqno uint64) error {
	for _, e := range m.Extents {
		if e.First+e.Count > seqno || e.First+e.Count < e.First {
			return fmt.Errorf("record %d: %w: extent [%d,+%d) not before the manifest", seqno, ErrNotFS, e.First, e.Count)
		}
	}
	for _, l := range m.Lists {
		if l == 0 || l >= seqno {
			return fmt.Errorf("record %d: %w: hash list %d not before the manifest", seqno, ErrNotFS, l)
		}
	}
	return nil
}

// add takes version v, newer than every one held.
func (ix *index) add(v *Version) {
	ix.latest[v.Path] = v
	ix.history[v.Path] = append([]*Version{v}, ix.history[v.Path]...)
	ix.head = v.Seqno
}

// stat returns what p is.
func (ix *index) stat(p string) (Entry, error) {
	p, err := CleanPath(p)
	if err != nil {
		return Entry{}, err
	}
	name := p[strings.LastIndexByte(p, '/')+1:]
	if p == "" {
		return Entry{Path: "", Type: TypeDir}, nil
	}
	if v := ix.latest[p]; v != nil && v.Type != TypeRemoved {
		return Entry{Path: p, Name: name, Type: v.Type, Version: v}, nil
	}
	prefix := p + "/"
	for q, v := range ix.latest {
		if v.Type != TypeRemoved && strings.HasPrefix(q, prefix) {
			return Entry{Path: p, Name: name, Type: TypeDir}, nil
		}
	}
	return Entry{}, fmt.Errorf("%s: %w", p, ErrNotExist)
}

// readDir lists directory dir, sorted by name. A file that later became
// a directory's parent (a put of a/b after a put of a) shows as the file;
// its children are not listed.
func (ix *index) readDir(dir string) ([]Entry, error) {
	e, err := ix.stat(dir)
	if err != nil {
		return nil, err
	}
	if e.Type != TypeDir {
		return nil, fmt.Errorf("%s: not a directory", e.Path)
	}
	prefix := ""
	if e.Path != "" {
		prefix = e.Path + "/"
	}
	kids := map[string]Entry{}
	for q, v := range ix.latest {
		if v.Type == TypeRemoved || !strings.HasPrefix(q, prefix) {
			continue
		}
		rest := q[len(prefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			n := rest[:i]
			if _, ok := kids[n]; !ok {
				kids[n] = Entry{Path: prefix + n, Name: n, Type: TypeDir}
			}
			continue
		}
		kids[rest] = Entry{Path: q, Name: rest, Type: v.Type, Version: v}
	}
	out := make([]Entry, 0, len(kids))
	for _, k := range kids {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// log is p's versions, newest first (removals included).
func (ix *index) log(p string) ([]*Version, error) {
	p, err := CleanPath(p)
	if err != nil {
		return nil, err
	}
	h := ix.history[p]
	if len(h) == 0 {
		return nil, fmt.Errorf("%s: %w", p, ErrNotExist)
	}
	return append([]*Version(nil), h...), nil
}

// version finds version seqno of p.
func (ix *index) version(p string, seqno uint64) (*Version, error) {
	h, err := ix.log(p)
	if err != nil {
		return nil, err
	}
	for _, v := range h {
		if v.Seqno == seqno {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%s version %d: %w", p, seqno, ErrNotExist)
}
