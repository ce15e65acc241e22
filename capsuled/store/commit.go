package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// committer is the group commit: appenders queue verified write batches,
// one goroutine merges everything queued into one engine batch, commits it
// with a single fsync, and only then releases the waiters. While one fsync
// runs, the next group gathers, so under load every fsync covers many
// appends from many callers.
type committer struct {
	eng      engine
	maxBytes int
	// dir, minFree, free: the free-space guard (Options.MinFreeBytes).
	dir     string
	minFree int64
	free    func(dir string) (uint64, error)

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*pendingWrite
	closed bool
	failed error
	done   chan struct{}

	groups, writes atomic.Uint64 // for metrics and tests
	diskFull       atomic.Uint64 // writes refused by the free-space guard

	// the last free-space probe: when (unix nanoseconds) and its answer
	probedAt atomic.Int64
	roomy    atomic.Bool

	// log gets one WARN when the guard starts refusing (at most one a
	// diskWarnEvery) and one INFO when space is back after it; warnedAt
	// is the last WARN (unix nanoseconds), warned whether this episode
	// had one.
	log      *zap.Logger
	warnedAt atomic.Int64
	warned   atomic.Bool
}

// diskWarnEvery bounds the "disk nearly full" WARN of a free space that
// hovers at min_free_bytes: the refusals are all counted, the line says
// it once.
const diskWarnEvery = time.Minute

// probeEvery bounds how often the free-space guard asks the file system.
const probeEvery = 50 * time.Millisecond

// room is the free-space guard, checked before a write touches the
// capsule's state: ErrDiskFull while the store's file system has less than
// minFree bytes free (probed at most every probeEvery; a probe that fails
// does not block writes).
func (c *committer) room() error {
	if c.minFree <= 0 || c.free == nil {
		return nil
	}
	now := time.Now().UnixNano()
	if last := c.probedAt.Load(); now-last >= int64(probeEvery) && c.probedAt.CompareAndSwap(last, now) {
		free, err := c.free(c.dir)
		ok := err != nil || free >= uint64(c.minFree)
		if was := c.roomy.Swap(ok); was != ok {
			c.diskEpisode(ok, free, now)
		}
	}
	if !c.roomy.Load() {
		c.diskFull.Add(1)
		return fmt.Errorf("%w: less than %d bytes free in %s", ErrDiskFull, c.minFree, c.dir)
	}
	return nil
}

// diskEpisode logs the guard's turn: refusing (the first write refused)
// or accepting again. Only the probe that won the CAS calls it, so each
// turn is logged once.
func (c *committer) diskEpisode(roomy bool, free uint64, now int64) {
	if c.log == nil {
		return
	}
	if roomy {
		if c.warned.Swap(false) {
			c.log.Info("disk space back: appends accepted again", zap.String("dir", c.dir), zap.Uint64("free_bytes", free),
				zap.Int64("min_free_bytes", c.minFree))
		}
		return
	}
	if last := c.warnedAt.Load(); last != 0 && now-last < int64(diskWarnEvery) {
		return
	}
	c.warnedAt.Store(now)
	c.warned.Store(true)
	c.log.Warn("disk nearly full: appends and new capsules refused (503), nothing stored",
		zap.String("dir", c.dir), zap.Uint64("free_bytes", free), zap.Int64("min_free_bytes", c.minFree),
		zap.String("fix", fmt.Sprintf("free space on the file system of %s or give the store a larger one; writers keep their other replicas, and this one catches up from its peers once there is room (refusals: gdp_capsuled_disk_full_total)", c.dir)))
}

// FreeBytes is the bytes available to unprivileged users on dir's file
// system: what the free-space guard compares with MinFreeBytes (and gdp
// doctor with the configured min_free_bytes).
func FreeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// pendingWrite is one caller's batch waiting for its fsync.
type pendingWrite struct {
	b         *writeBatch
	onDurable func()
	done      chan struct{}
	err       error
}

// wait blocks until the write is durable (nil) or failed, or ctx ends. A
// write whose wait was cut short by ctx may still become durable.
func (w *pendingWrite) wait(ctx context.Context) error {
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return fmt.Errorf("waiting for fsync: %w", ctx.Err())
	}
}

func (c *committer) start(eng engine, maxBytes int) {
	c.eng, c.maxBytes = eng, maxBytes
	c.cond = sync.NewCond(&c.mu)
	c.done = make(chan struct{})
	go c.run()
}

// enqueue queues b; onDurable (may be nil) runs on the commit goroutine
// after the fsync that covers b, before the waiter is released.
func (c *committer) enqueue(b *writeBatch, onDurable func()) (*pendingWrite, error) {
	w := &pendingWrite{b: b, onDurable: onDurable, done: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.failed != nil {
		return nil, fmt.Errorf("%w: %v", ErrFailed, c.failed)
	}
	c.queue = append(c.queue, w)
	c.cond.Signal()
	return w, nil
}

// stop refuses new writes, lets the queued ones commit, and waits.
func (c *committer) stop() {
	c.mu.Lock()
	c.closed = true
	c.cond.Signal()
	c.mu.Unlock()
	<-c.done
}

func (c *committer) run() {
	defer close(c.done)
	var group writeBatch
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return
		}
		n, size := 0, 0
		for n < len(c.queue) && (n == 0 || size+c.queue[n].b.bytes <= c.maxBytes) {
			size += c.queue[n].b.bytes
			n++
		}
		ws := c.queue[:n:n]
		c.queue = c.queue[n:]
		failed := c.failed
		c.mu.Unlock()

		err := failed
		if err == nil {
			group.ops, group.bytes = group.ops[:0], 0
			for _, w := range ws {
				group.merge(w.b)
			}
			if err = c.eng.commit(&group); err != nil {
				err = fmt.Errorf("%w: commit: %v", ErrFailed, err)
				c.mu.Lock()
				c.failed = err
				c.mu.Unlock()
			}
			clear(group.ops) // drop references to the callers' buffers
			c.groups.Add(1)
			c.writes.Add(uint64(len(ws)))
		}
		for _, w := range ws {
			w.err = err
			if err == nil && w.onDurable != nil {
				w.onDurable()
			}
			close(w.done)
		}
	}
}
