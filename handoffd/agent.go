package handoffd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
)

// AgentConfig is the destination agent's behaviour. The zero value works
// except for the directories.
type AgentConfig struct {
	// MaxConcurrent bounds handoffs received at once; more are refused at
	// once (gdp_handoff_refused_total{reason="busy"}). Default 1.
	MaxConcurrent int
	// IdleTimeout bounds the silence inside one handoff. Default 30 s.
	IdleTimeout time.Duration
	// MaxPerPeer bounds handoffs from one peer at once (its share of
	// MaxConcurrent). Default 1.
	MaxPerPeer int
	// Senders, when not empty, are the only peers (names over the overlay,
	// hosts over TCP) whose handoffs are accepted; others are refused
	// (reason not_allowed). A valid membership proves who a sender is, not
	// that this cloudlet should run its VM.
	Senders []string
	// MinFreeBytes is the free space the file system of Dir keeps: a
	// handoff whose declared images (counted in full) would leave less is
	// refused at its hello, one in progress fails when less is free
	// (gdp_handoff_refused_total{reason="disk_full"}; its partial files are
	// removed). Default 1 GiB.
	MinFreeBytes int64
	// MaxBytesPerPeer bounds what one sender's handoffs in progress stage:
	// their declared image sizes, then the device state and spilled blocks
	// as they arrive ({reason="peer_bytes"}). Committed handoffs are not
	// counted (they are this node's to keep or remove). Default 512 GiB.
	MaxBytesPerPeer int64
	// freeBytes replaces statfs(2) (tests).
	freeBytes func(dir string) (uint64, error)
}

// Staging defaults (AgentConfig).
const (
	DefaultMinFreeBytes    = 1 << 30
	DefaultMaxBytesPerPeer = 512 << 30
)

// PeerLogBurst is how many "handoff receiving" and "handoff failed;
// nothing kept" lines one sender may cause per
// logging.DefaultLimitInterval (10 s).
const PeerLogBurst = 4

// Agent receives handoffs on a Listener and, for VMs, resumes them.
type Agent struct {
	Cache   *BaseCache
	Dir     string
	Config  AgentConfig
	Logger  *zap.Logger
	Metrics *Metrics
	// OnReceived runs after a handoff committed (resume the VM); its error
	// is logged.
	OnReceived func(ctx context.Context, r *Received) error
	// PrestartVM, when set, starts a VM handoff's destination QEMU at its
	// hello (ReceiveConfig.PrestartVM), so that ResumeVM in OnReceived
	// only loads the device state. A QEMU that OnReceived did not take
	// (ResumeVM) is killed.
	PrestartVM *QEMUConfig

	once    sync.Once
	initErr error
	logLim  *logging.Limiter // refused handoffs: one line per reason and peer an interval
	// peerLim: the receiving and failed lines of admitted handoffs, a few
	// per peer and interval (a sender that opens and drops handoffs in a
	// loop); gdp_handoff_received_total{result} counts each.
	peerLim *logging.Limiter
	mu      sync.Mutex
	active  int
	perPeer map[string]int
	staged  map[string]int64 // bytes staged by each peer's handoffs in progress
	wg      sync.WaitGroup
}

// Serve accepts handoffs until ctx ends, then waits for those in progress.
func (a *Agent) Serve(ctx context.Context, ln Listener) error {
	a.once.Do(func() { a.initErr = a.init() })
	if a.initErr != nil {
		return a.initErr
	}
	defer a.wg.Wait()
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		st, peer, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("handoff agent: accept: %w", err)
		}
		if reason, ok := a.admit(peer); !ok {
			a.logLim.Info(a.Logger, reason+" "+peer, "handoff refused", zap.String("peer", peer), logging.Reason(reason))
			if a.Metrics != nil {
				a.Metrics.Refused.WithLabelValues(reason).Inc()
			}
			go func() {
				// Read the hello so the sender hears why (bounded).
				refuse(st, reason)
			}()
			continue
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer a.release(peer)
			a.handle(ctx, st, peer)
		}()
	}
}

// init sets the defaults and clears what a crashed run left, once however
// many listeners Serve is called with.
func (a *Agent) init() error {
	if a.Logger == nil {
		a.Logger = zap.NewNop()
	}
	a.logLim = logging.NewLimiter(0, 0, nil)
	a.peerLim = logging.NewBurstLimiter(0, PeerLogBurst, 0, nil)
	// Under mu: a Reload (SIGHUP) may come while Serve starts.
	a.mu.Lock()
	if a.Config.MaxConcurrent <= 0 {
		a.Config.MaxConcurrent = 1
	}
	if a.Config.MaxPerPeer <= 0 {
		a.Config.MaxPerPeer = 1
	}
	a.Config.MinFreeBytes, a.Config.MaxBytesPerPeer = stagingDefaults(a.Config.MinFreeBytes, a.Config.MaxBytesPerPeer)
	a.perPeer = map[string]int{}
	a.staged = map[string]int64{}
	a.mu.Unlock()
	// A previous run that died mid-handoff left its partial directory:
	// never resumed from, removed before anything else.
	stale, _ := filepath.Glob(filepath.Join(a.Dir, ".partial-*"))
	var names []string
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("handoff agent: remove stale %s: %w", d, err)
		}
		// .partial-ID-RANDOM (receiver.setup): the handoff's name, for the
		// operator matching it with the sender's failed send.
		id := strings.TrimPrefix(filepath.Base(d), ".partial-")
		if i := strings.LastIndexByte(id, '-'); i > 0 {
			id = id[:i]
		}
		names = append(names, id)
	}
	if len(stale) > 0 {
		a.Logger.Warn("removed partial handoffs left by an earlier run", zap.Int("count", len(stale)), zap.Strings("names", names),
			zap.String("fix", "none needed here; their senders failed and send again (same --id)"))
	}
	return nil
}

// Reload puts new limits and senders in force (SIGHUP) for handoffs that
// arrive from now on; IdleTimeout keeps its value until a restart.
func (a *Agent) Reload(c AgentConfig) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Config.MaxConcurrent, a.Config.MaxPerPeer = max(c.MaxConcurrent, 1), max(c.MaxPerPeer, 1)
	a.Config.MinFreeBytes, a.Config.MaxBytesPerPeer = stagingDefaults(c.MinFreeBytes, c.MaxBytesPerPeer)
	a.Config.Senders = slices.Clone(c.Senders)
}

func stagingDefaults(minFree, perPeer int64) (int64, int64) {
	if minFree <= 0 {
		minFree = DefaultMinFreeBytes
	}
	if perPeer <= 0 {
		perPeer = DefaultMaxBytesPerPeer
	}
	return minFree, perPeer
}

// reserver is one handoff's ReceiveConfig.Reserve: it takes bytes of the
// peer's share, and release gives back what it took.
func (a *Agent) reserver(peer string) (reserve func(int64) error, release func()) {
	var held int64
	reserve = func(n int64) error {
		a.mu.Lock()
		defer a.mu.Unlock()
		limit := a.Config.MaxBytesPerPeer
		if have := a.staged[peer]; have+n > limit {
			return fmt.Errorf("%w: %d staged, %d more, max_bytes_per_peer %d", ErrPeerBytes, have, n, limit)
		}
		a.staged[peer] += n
		held += n
		return nil
	}
	release = func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.staged[peer] -= held; a.staged[peer] <= 0 {
			delete(a.staged, peer)
		}
		held = 0
	}
	return reserve, release
}

func (a *Agent) admit(peer string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.Config.Senders) > 0 && !slices.Contains(a.Config.Senders, peer) {
		return "not_allowed", false
	}
	if a.active >= a.Config.MaxConcurrent {
		return "busy", false
	}
	if a.perPeer[peer] >= a.Config.MaxPerPeer {
		return "peer_busy", false
	}
	a.active++
	a.perPeer[peer]++
	if a.Metrics != nil {
		a.Metrics.Active.Inc()
	}
	return "", true
}

func (a *Agent) release(peer string) {
	a.mu.Lock()
	a.active--
	a.perPeer[peer]--
	if a.perPeer[peer] == 0 {
		delete(a.perPeer, peer)
	}
	a.mu.Unlock()
	if a.Metrics != nil {
		a.Metrics.Active.Dec()
	}
}

// stagingRefusal names a refusal for space (reason "" for any other
// outcome) and what the operator can do.
func stagingRefusal(err error, dir string) (reason, fix string) {
	switch {
	case errors.Is(err, ErrDiskFull):
		return "disk_full", "free space in " + dir + " (remove received handoffs no longer needed, DIR/ID) or lower min_free_bytes; the sender sends again"
	case errors.Is(err, ErrPeerBytes):
		return "peer_bytes", "this sender's handoffs in progress would stage more than max_bytes_per_peer: raise it if its VMs are that large, or let it send one at a time"
	}
	return "", ""
}

func refuse(st Stream, reason string) {
	if d, ok := st.(deadliner); ok {
		d.SetReadDeadline(time.Now().Add(5 * time.Second))
	}
	writeJSON(st, frameReady, result{Error: "agent " + reason})
	st.Close()
}

func (a *Agent) handle(ctx context.Context, st Stream, peer string) {
	defer st.Close()
	log := a.Logger.With(zap.String("peer", peer))
	reserve, release := a.reserver(peer)
	defer release()
	a.mu.Lock()
	minFree := a.Config.MinFreeBytes
	a.mu.Unlock()
	rec, err := Receive(ctx, st, ReceiveConfig{Cache: a.Cache, Dir: a.Dir, IdleTimeout: a.Config.IdleTimeout, Logger: log, Metrics: a.Metrics,
		LogLimit: a.peerLim, LogKey: peer, MinFreeBytes: minFree, FreeBytes: a.Config.freeBytes, Reserve: reserve, PrestartVM: a.PrestartVM})
	if rec != nil && rec.QEMU != nil {
		defer func() {
			if rec.QEMU != nil { // not taken by ResumeVM: never resumed
				rec.QEMU.Kill()
			}
		}()
	}
	if reason, fix := stagingRefusal(err, a.Dir); reason != "" {
		// One line per reason and peer an interval, what to do in it.
		a.logLim.Warn(log, reason+" "+peer, "handoff refused", logging.Reason(reason), zap.Error(err), zap.String("fix", fix))
		if a.Metrics != nil {
			a.Metrics.Refused.WithLabelValues(reason).Inc()
		}
		return
	}
	if err != nil {
		fix := "none needed here (the partial result is removed); the sender sends again"
		if errors.Is(err, ErrNoBase) {
			fix = "add the base to this node's cache (gdp handoff base add), then the sender sends again"
		}
		a.peerLim.Warn(log, peer, "handoff failed; nothing kept", zap.Error(err), zap.String("fix", fix))
		return
	}
	if rec.VM && !rec.Go {
		log.Warn("vm handoff committed without the sender's go: not resumed", zap.String("name", rec.ID))
		return
	}
	if a.OnReceived != nil {
		if err := a.OnReceived(ctx, rec); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("handoff committed but the follow-up failed", zap.String("name", rec.ID), zap.Error(err))
		}
	}
}
