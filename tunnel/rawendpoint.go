package tunnel

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/internal/udpoffload"
)

// batchSize is how many datagrams one recvmmsg/sendmmsg moves at most.
const batchSize = 64

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// rawEndpoint is the raw GDP-in-UDP socket of an Endpoint: its receive loop,
// its send queue and writer, and the receive sessions of all raw links.
type rawEndpoint struct {
	e   *Endpoint
	pc  net.PacketConn
	bc  batchConn // nil unless pc is a *net.UDPConn
	mtu int
	gso bool // UDP_SEGMENT sends
	gro bool // UDP_GRO receives

	mu       sync.RWMutex
	sessions map[uint32]*recvSession // nil value: index reserved
	// gen counts installs and removals of sessions: the receive loop's
	// cached session (last) holds while it is unchanged.
	gen  atomic.Uint64
	last sessionCache // the receive loop's own

	// handleFrame is handle; tests replace it.
	handleFrame func(b []byte, from net.Addr, nonce *[12]byte)

	q sendQueue
	// wmu makes one flush at a time (the writer goroutine's or the
	// receive loop's at the end of a batch): frames leave in queue order.
	wmu     sync.Mutex
	w       *batchWriter
	wbatch  []*frameBuf
	closing chan struct{}
	wg      sync.WaitGroup
}

// sessionCache is the receive loop's last session found. Frames come in
// runs from one peer (a GRO batch is one sender's), and the lookup — a read
// lock and a map probe per frame — was about 1 % of a forwarded PDU's CPU.
type sessionCache struct {
	idx uint32
	gen uint64
	s   *recvSession
}

// recvSession is one receive direction of one key epoch of a raw link. Its
// replay window and reassembler belong to the receive loop.
type recvSession struct {
	idx    uint32
	aead   cipher.AEAD
	rl     *rawLink
	replay replayWindow
	reasm  *reassembler
}

func newRawEndpoint(e *Endpoint, pc net.PacketConn) (*rawEndpoint, error) {
	r := &rawEndpoint{
		e:        e,
		pc:       pc,
		mtu:      discoverMTU(e.cfg.RawMTU, pc),
		sessions: map[uint32]*recvSession{},
		closing:  make(chan struct{}),
	}
	if uc, ok := pc.(*net.UDPConn); ok {
		// an IPv6 socket, wildcard "::" included (dual stack: IPv4 peers
		// become v4-mapped addresses), needs the ipv6 batch conn
		if ua, _ := uc.LocalAddr().(*net.UDPAddr); ua != nil && ua.IP.To4() == nil {
			r.bc = ipv6.NewPacketConn(uc)
		} else {
			r.bc = ipv4.NewPacketConn(uc)
		}
		if !e.cfg.DisableOffload {
			r.gso, r.gro = udpoffload.Enable(uc)
		}
		setDontFragment(uc)
		want := e.cfg.SocketBuffer
		rcv, snd, err := socketBuffers(uc, want)
		switch {
		case err != nil:
			e.log.Warn("raw socket buffers: cannot read back", zap.Error(err))
		case rcv < want || snd < want:
			e.log.Warn("raw socket buffers smaller than asked; under load frames will be dropped in the kernel — raise net.core.rmem_max and net.core.wmem_max (see docs/OPERATIONS.md §2)",
				zap.Int("want", want), zap.Int("rcvbuf", rcv), zap.Int("sndbuf", snd))
		}
	}
	r.q.init(max(e.cfg.SendQueue, maxFragments))
	r.w = newBatchWriter(r)
	r.handleFrame = r.handle
	r.wg.Add(2)
	go r.readLoop()
	go r.writeLoop()
	e.log.Info("raw transport up", logging.Addr(pc.LocalAddr().String()), zap.Int("mtu", r.mtu), zap.Bool("batching", r.bc != nil), zap.Bool("gso", r.gso), zap.Bool("gro", r.gro))
	return r, nil
}

func (r *rawEndpoint) port() uint16 {
	if ua, ok := r.pc.LocalAddr().(*net.UDPAddr); ok {
		return uint16(ua.Port)
	}
	return 0
}

// reserveIndex picks a fresh non-zero session index.
func (r *rawEndpoint) reserveIndex() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var b [4]byte
		rand.Read(b[:])
		idx := binary.BigEndian.Uint32(b[:])
		if _, used := r.sessions[idx]; idx != 0 && !used {
			r.sessions[idx] = nil
			return idx
		}
	}
}

func (r *rawEndpoint) installSession(s *recvSession) {
	r.mu.Lock()
	r.sessions[s.idx] = s
	r.gen.Add(1)
	r.mu.Unlock()
}

func (r *rawEndpoint) removeSession(idx uint32) {
	r.mu.Lock()
	delete(r.sessions, idx)
	r.gen.Add(1)
	r.mu.Unlock()
}

// recvSession is session for the receive loop: the last session it found,
// while no session was installed or removed since, else a lookup. A frame
// of a session removed meanwhile is refused as before (the generation is
// read before the lookup, so a removal between them leaves the cache
// stale and the next frame looks up again).
func (r *rawEndpoint) recvSession(idx uint32) *recvSession {
	g := r.gen.Load()
	if c := &r.last; c.s != nil && c.idx == idx && c.gen == g {
		return c.s
	}
	s := r.session(idx)
	r.last = sessionCache{idx: idx, gen: g, s: s}
	return s
}

func (r *rawEndpoint) session(idx uint32) *recvSession {
	r.mu.RLock()
	s := r.sessions[idx]
	r.mu.RUnlock()
	return s
}

func (r *rawEndpoint) close() {
	close(r.closing)
	r.q.close()
	r.pc.Close()
	r.wg.Wait()
}

// readLoop receives datagrams, in batches when it can.
func (r *rawEndpoint) readLoop() {
	defer r.wg.Done()
	var nonce [12]byte
	if r.bc == nil {
		buf := make([]byte, r.mtu+1)
		for {
			n, from, err := r.pc.ReadFrom(buf)
			r.e.stats.recvCalls.Add(1)
			if err != nil {
				if r.isClosing() || errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			r.handleFrame(buf[:n], from, &nonce)
		}
	}
	// With GRO one message holds up to 64 KiB of coalesced frames.
	size, n := r.mtu+1, batchSize
	if r.gro {
		size, n = 1<<16, batchSize/4
	}
	msgs := make([]ipv4.Message, n)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, size)}
		if r.gro {
			msgs[i].OOB = make([]byte, udpoffload.GROCmsgLen)
		}
	}
	for {
		n, err := r.bc.ReadBatch(msgs, 0)
		r.e.stats.recvCalls.Add(1)
		if err != nil {
			if r.isClosing() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		// What the handler sends back out of this socket while the batch
		// is delivered (a router forwarding) goes out in one sendmmsg
		// made by this loop every flushEvery frames and at the batch's
		// end: the next hop starts on a batch's first frames while this
		// loop works through the rest (a whole batch, up to 1,024 frames
		// with GRO, is milliseconds of work).
		r.q.hold()
		frames := 0
		for i := range msgs[:n] {
			m := &msgs[i]
			b := m.Buffers[0][:m.N]
			seg := len(b)
			if r.gro {
				if s := udpoffload.GROSegmentSize(m.OOB[:m.NN]); s > 0 {
					seg = s
				}
			}
			for { // once at least: an empty datagram is counted as truncated
				k := min(seg, len(b))
				r.handleFrame(b[:k], m.Addr, &nonce)
				b = b[k:]
				if frames++; frames == flushEvery {
					r.endBatch()
					r.q.hold()
					frames = 0
				}
				if len(b) == 0 {
					break
				}
			}
		}
		r.endBatch()
	}
}

// flushEvery is how many received frames the receive loop handles before
// it sends what they queued: a full GSO super-buffer.
const flushEvery = gsoMaxSegments

// endBatch ends a received batch: what the handler queued meanwhile is
// sent now, by the receive loop itself.
func (r *rawEndpoint) endBatch() {
	if r.q.release() {
		r.flush(false)
	}
}

func (r *rawEndpoint) isClosing() bool {
	select {
	case <-r.closing:
		return true
	default:
		return false
	}
}

// handle authenticates one datagram and delivers its PDU, or counts why not.
// It runs on the receive loop only (r.last is that loop's).
func (r *rawEndpoint) handle(b []byte, from net.Addr, nonce *[12]byte) {
	st := &r.e.stats
	if len(b) > r.mtu {
		st.drop(DropOversize)
		return
	}
	h, why, ok := parseFrameHeader(b)
	if !ok {
		st.drop(why)
		return
	}
	s := r.recvSession(h.Index)
	if s == nil {
		st.drop(DropUnknownSession)
		return
	}
	if !s.replay.check(h.Counter) {
		st.drop(DropReplay)
		return
	}
	p, ok := openFrame(b, s.aead, nonce, h.Counter)
	if !ok {
		st.drop(DropAuth)
		return
	}
	s.replay.commit(h.Counter)
	st.framesReceived.Add(1)
	s.rl.roam(from)
	if h.Frag == 0 {
		s.rl.l.deliver(p)
		return
	}
	whole, slot := s.reasm.add(h.PacketID, h.Frag, p, r.e.cfg.Now())
	if whole != nil {
		s.rl.l.deliver(whole)
		slot.release()
	}
}

// writeLoop drains the send queue whenever a sender wakes it.
func (r *rawEndpoint) writeLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.q.wake:
		case <-r.closing:
			return
		}
		r.flush(true)
	}
}

// flush sends what is queued: everything queued at once, grouped into GSO
// super-buffers when it can, in one sendmmsg. With drain it goes on until
// the queue is empty (the writer); without, it sends what was queued when
// it started and wakes the writer for anything queued since (the receive
// loop, which must get back to receiving).
func (r *rawEndpoint) flush(drain bool) {
	r.wmu.Lock()
	for {
		r.wbatch = r.q.take(r.wbatch[:0])
		if len(r.wbatch) == 0 {
			break
		}
		r.w.write(r.wbatch)
		r.q.recycle(r.wbatch)
		if !drain {
			if r.q.pendingCount() > 0 {
				r.q.signal()
			}
			break
		}
	}
	clear(r.wbatch) // no stale pointers to recycled buffers
	r.wmu.Unlock()
}
