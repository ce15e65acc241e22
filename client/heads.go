package client

import (
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/pdu"
)

// rememberedHeads bounds the capsules whose newest verified heartbeat a
// CapsuleClient keeps beyond the life of their readers.
const rememberedHeads = 16384

// heads is what a CapsuleClient remembers of the capsules its readers
// verified: each one's newest heartbeat (of its writer's current epoch).
// A reader opened later for the capsule starts from the head the replica
// it asks shows; a lagging or rolled-back replica shows an older one, and
// without this memory the new reader took it as the newest — a program
// (the gateway, past its max_readers) that drops and reopens readers
// would see "newest" go back. NewReader adopts the remembered head
// instead, so later answers must be consistent with it.
type heads struct {
	once sync.Once
	c    *lru.Cache[pdu.Name, *capsule.Heartbeat]
}

func (h *heads) cache() *lru.Cache[pdu.Name, *capsule.Heartbeat] {
	h.once.Do(func() { h.c, _ = lru.New[pdu.Name, *capsule.Heartbeat](rememberedHeads) }) // size > 0 never fails
	return h.c
}

// get returns the remembered head of c, or nil.
func (h *heads) get(c pdu.Name) *capsule.Heartbeat {
	hb, _ := h.cache().Get(c)
	return hb
}

// put remembers hb (verified by the caller's follower) as c's head when it
// is newer than the one remembered: a later epoch (the writer restarted),
// or a longer log, or the same length signed later.
func (h *heads) put(c pdu.Name, hb *capsule.Heartbeat) {
	if hb == nil {
		return
	}
	cache := h.cache()
	if old, ok := cache.Peek(c); ok && !newerHead(hb, old) {
		return
	}
	cache.Add(c, hb)
}

func newerHead(hb, old *capsule.Heartbeat) bool {
	switch {
	case hb.Epoch != old.Epoch:
		return hb.Epoch > old.Epoch
	case hb.Seqno != old.Seqno:
		return hb.Seqno > old.Seqno
	}
	return hb.Time > old.Time
}
