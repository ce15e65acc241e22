package store

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsule"
)

// Options configures a Store. The zero value works.
type Options struct {
	// Engine is "pebble" or "bbolt". Default pebble.
	Engine string
	// MaxData bounds one record's data in bytes. Default capsule.DefaultMaxData (64 KiB).
	MaxData int
	// MaxGroupBytes cuts a group commit once it holds this many bytes. Default 32 MiB.
	MaxGroupBytes int
	// NodeCache is how many Merkle interior nodes to keep in memory for
	// proofs (32 bytes each plus overhead). Default 65,536.
	NodeCache int
	// ReorderWindow is how long an append that starts beyond the head
	// waits for the appends before it (a writer pipelining over several
	// connections or goroutines) before it fails as a gap. Default 250 ms.
	ReorderWindow time.Duration
	// Logger receives equivocation and branch reports. Default: no logging.
	Logger *zap.Logger
	// MinFreeBytes refuses writes (ErrDiskFull) while the file system
	// holding the store has less than this many bytes free, plus twice the
	// group being committed. Default 64 MiB; negative: no check.
	MinFreeBytes int64
	// ReadAheadBytes bounds the bytes of records read ahead for one
	// requester's sequential reads (ReadRawFor), over all its streams; a
	// fill stops there (Stats.ReadAheadLimitedRequester). Default 4 MiB;
	// negative: no read-ahead.
	ReadAheadBytes int
	// ReadAheadStreams bounds one requester's read-ahead streams (a
	// capsule it reads sequentially); a new one drops its least recently
	// used (Stats.ReadAheadEvicted). Default 4.
	ReadAheadStreams int
	// ReadAheadTotal bounds the bytes read ahead for all requesters
	// (Stats.ReadAheadLimitedTotal). Default 64 MiB.
	ReadAheadTotal int
	// ReadAheadIdle: a stream not read for this long is dropped
	// (Stats.ReadAheadIdled; swept every quarter of it, READs or not).
	// Default 10 s.
	ReadAheadIdle time.Duration

	// freeBytes replaces the free-space probe (tests).
	freeBytes func(dir string) (uint64, error)

	// fs replaces the file system under the pebble engine (tests: a strict
	// in-memory file system that can drop everything not fsynced).
	fs vfs.FS
	// memTable overrides pebble's memtable size (tests: many WAL rotations
	// with little data). Default pebbleMemTable.
	memTable int
	// wrapEngine, when set, wraps the engine (tests: a slow commit).
	wrapEngine func(engine) engine
}

func (o Options) withDefaults() (Options, error) {
	switch o.Engine {
	case "":
		o.Engine = "pebble"
	case "pebble", "bbolt":
	default:
		return o, fmt.Errorf("store engine %q: want pebble or bbolt", o.Engine)
	}
	if o.MaxData <= 0 {
		o.MaxData = capsule.DefaultMaxData
	}
	if o.MaxData > capsule.MaxDataLimit {
		return o, fmt.Errorf("store max data %d above the limit %d", o.MaxData, capsule.MaxDataLimit)
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = DefaultMinFreeBytes
	}
	if o.freeBytes == nil {
		o.freeBytes = FreeBytes
	}
	if o.MaxGroupBytes <= 0 {
		o.MaxGroupBytes = 32 << 20
	}
	if o.NodeCache <= 0 {
		o.NodeCache = 1 << 16
	}
	if o.ReorderWindow <= 0 {
		o.ReorderWindow = 250 * time.Millisecond
	}
	if o.ReadAheadBytes == 0 {
		o.ReadAheadBytes = 4 << 20
	}
	if o.ReadAheadStreams <= 0 {
		o.ReadAheadStreams = 4
	}
	if o.ReadAheadTotal <= 0 {
		o.ReadAheadTotal = 64 << 20
	}
	if o.ReadAheadIdle <= 0 {
		o.ReadAheadIdle = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o, nil
}

// DefaultMinFreeBytes is Options.MinFreeBytes when it is zero: 64 MiB.
const DefaultMinFreeBytes = 64 << 20
