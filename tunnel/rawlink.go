package tunnel

import (
	"crypto/cipher"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/internal/logging"
	"go.uber.org/zap"
)

// rawLink is the raw-frame half of a KindRaw link: the current send key and
// the receive sessions of the current and the previous epoch.
type rawLink struct {
	l      *link
	re     *rawEndpoint
	dialer bool
	frame  int // frame size both sides use: min of the two MTUs
	out    atomic.Pointer[sendSession]
	addr   atomic.Pointer[net.UDPAddr]

	mu      sync.Mutex // rekey state below
	epoch   uint32
	recv    [2]uint32 // session indexes: current, previous epoch
	pending *rekeyState
	stopped bool
}

type sendSession struct {
	remote  uint32 // peer's receive index
	aead    cipher.AEAD
	counter atomic.Uint64
	packet  atomic.Uint32
	epoch   uint32
}

// rekeyState is an epoch one side has started and the other not finished.
type rekeyState struct {
	epoch    uint32
	localIdx uint32
	send     *sendSession // listener: the session to switch to on END
}

// startSession derives epoch keys, installs the local receive session and
// the send session, and returns the raw half of l.
func (r *rawEndpoint) startSession(l *link, dialer bool, dialerIdx, listenerIdx, epoch uint32, peerMTU int, addr *net.UDPAddr) (*rawLink, error) {
	frame := min(r.mtu, peerMTU)
	if frame < minRawMTU {
		return nil, fmt.Errorf("%w: peer raw mtu %d below %d", ErrProtocol, peerMTU, minRawMTU)
	}
	rl := &rawLink{l: l, re: r, dialer: dialer, frame: frame, epoch: epoch}
	rl.addr.Store(addr)
	// l.raw is set before the receive session is installed: from then on
	// the read loop can deliver a frame to l, whose RemoteAddr reads
	// l.raw (installing publishes it to the read loop).
	l.raw = rl
	if err := rl.install(dialerIdx, listenerIdx, epoch, true); err != nil {
		l.raw = nil // nothing was installed: no reader saw it
		return nil, err
	}
	return rl, nil
}

// install derives the keys of (dialerIdx, listenerIdx, epoch), installs the
// receive session, and either switches sending now or, on the listener
// during a rekey, parks the send session until the dialer's END.
func (rl *rawLink) install(dialerIdx, listenerIdx, epoch uint32, switchNow bool) error {
	cs := rl.l.qc.ConnectionState().TLS
	d2l, l2d, err := rawKeys(&cs, dialerIdx, listenerIdx, epoch)
	if err != nil {
		return err
	}
	local, remote, in, out := listenerIdx, dialerIdx, d2l, l2d
	if rl.dialer {
		local, remote, in, out = dialerIdx, listenerIdx, l2d, d2l
	}
	cfg := &rl.re.e.cfg
	rl.re.installSession(&recvSession{
		idx: local, aead: in, rl: rl,
		reasm: newReassembler(rl.frame-frameOverhead, cfg.ReassemblySlots, cfg.ReassemblyTimeout, &rl.re.e.stats),
	})
	ss := &sendSession{remote: remote, aead: out, epoch: epoch}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.stopped {
		rl.re.removeSession(local)
		return ErrClosed
	}
	if switchNow {
		rl.rotate(local, epoch)
		rl.out.Store(ss)
	} else {
		rl.pending = &rekeyState{epoch: epoch, localIdx: local, send: ss}
	}
	return nil
}

// rotate makes local the current receive session and forgets the one two
// epochs back (frames still in flight under the previous key stay valid).
func (rl *rawLink) rotate(local, epoch uint32) {
	if rl.recv[1] != 0 {
		rl.re.removeSession(rl.recv[1])
	}
	if rl.recv[0] != local {
		rl.recv[1] = rl.recv[0]
	}
	rl.recv[0], rl.epoch = local, epoch
}

// stop removes every session of the link.
func (rl *rawLink) stop() {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.stopped = true
	for _, idx := range rl.recv {
		if idx != 0 {
			rl.re.removeSession(idx)
		}
	}
	if rl.pending != nil {
		rl.re.removeSession(rl.pending.localIdx)
	}
}

// roam follows the peer to a new underlay address, as the frame that came
// from it was authentic.
func (rl *rawLink) roam(from net.Addr) {
	ua, ok := from.(*net.UDPAddr)
	if !ok {
		return
	}
	cur := rl.addr.Load()
	if cur.Port == ua.Port && cur.IP.Equal(ua.IP) {
		return
	}
	rl.addr.Store(ua)
	rl.re.e.logLim.Info(rl.re.e.log, rl.l.peer.String(), "raw peer moved", logging.Peer(rl.l.peer), logging.Addr(ua.String()))
}

// send fragments p to the frame size, seals each fragment and queues it,
// waiting for free buffers.
func (rl *rawLink) send(p []byte) error { return rl.sendOr(p, true) }

// sendOr is send; without wait it returns ErrBusy instead of waiting when
// the queue has no buffer for the whole PDU (fragments already sealed are
// given back, nothing is queued).
func (rl *rawLink) sendOr(p []byte, wait bool) error {
	s := rl.out.Load()
	addr := rl.addr.Load()
	chunk := rl.frame - frameOverhead
	n := (len(p) + chunk - 1) / chunk
	if n > maxFragments {
		return ErrTooBig
	}
	id := uint16(s.packet.Add(1))
	q := &rl.re.q
	if n == 1 {
		// The common case: seal p straight into the frame buffer.
		fb := q.getOr(len(p)+frameOverhead, wait)
		if fb == nil {
			if !wait && !q.isClosed() {
				return ErrBusy
			}
			return ErrClosed
		}
		h := frameHeader{PacketID: id, Index: s.remote, Counter: s.counter.Add(1) - 1}
		fb.n = sealFrame(fb.b, h, s.aead, &fb.nonce, p)
		fb.addr = addr
		q.put(fb)
		rl.re.e.stats.pdusSent.Add(1)
		return nil
	}
	if !wait {
		// Fragments: all or nothing, so take the buffers first.
		var fbs [maxFragments]*frameBuf
		for i := 0; i < n; i++ {
			if fbs[i] = q.tryGet(rl.frame); fbs[i] == nil {
				for _, fb := range fbs[:i] {
					q.unget(fb)
				}
				if q.isClosed() {
					return ErrClosed
				}
				return ErrBusy
			}
		}
		for i := 0; i < n; i++ {
			part := p[i*chunk : min((i+1)*chunk, len(p))]
			frag := byte(i)
			if i < n-1 {
				frag |= fragMore
			}
			fb := fbs[i]
			h := frameHeader{Frag: frag, PacketID: id, Index: s.remote, Counter: s.counter.Add(1) - 1}
			fb.n = sealFrame(fb.b, h, s.aead, &fb.nonce, part)
			fb.addr = addr
			q.put(fb)
		}
		rl.re.e.stats.pdusSent.Add(1)
		return nil
	}
	for i := 0; i < n; i++ {
		part := p[i*chunk : min((i+1)*chunk, len(p))]
		var frag byte
		if n > 1 {
			frag = byte(i)
			if i < n-1 {
				frag |= fragMore
			}
		}
		fb := q.get(len(part) + frameOverhead)
		if fb == nil {
			return ErrClosed
		}
		h := frameHeader{Frag: frag, PacketID: id, Index: s.remote, Counter: s.counter.Add(1) - 1}
		fb.n = sealFrame(fb.b, h, s.aead, &fb.nonce, part)
		fb.addr = addr
		q.put(fb)
	}
	rl.re.e.stats.pdusSent.Add(1)
	return nil
}

// beginRekey (dialer) starts the next epoch.
func (rl *rawLink) beginRekey() error {
	rl.mu.Lock()
	if rl.pending != nil || rl.stopped {
		rl.mu.Unlock()
		return nil
	}
	idx := rl.re.reserveIndex()
	rl.pending = &rekeyState{epoch: rl.epoch + 1, localIdx: idx}
	m := ctrlMsg{Type: msgRekey, Index: idx, Epoch: rl.epoch + 1}
	rl.mu.Unlock()
	return rl.l.writeControl(m)
}

// handleControl runs the rekey exchange:
//
//	dialer REKEY(new dialer idx, e) → listener installs receive keys of e,
//	REKEY_ACK(new listener idx) → dialer installs both and sends with e,
//	REKEY_END → listener sends with e.
func (rl *rawLink) handleControl(m ctrlMsg) error {
	rl.mu.Lock()
	epoch, pending := rl.epoch, rl.pending
	rl.mu.Unlock()
	switch {
	case !rl.dialer && m.Type == msgRekey && pending == nil && m.Epoch == epoch+1:
		idx := rl.re.reserveIndex()
		if err := rl.install(m.Index, idx, m.Epoch, false); err != nil {
			rl.re.removeSession(idx)
			return err
		}
		return rl.l.writeControl(ctrlMsg{Type: msgRekeyAck, Index: idx, Epoch: m.Epoch})
	case rl.dialer && m.Type == msgRekeyAck && pending != nil && m.Epoch == pending.epoch:
		// The epoch stays pending until END is on the control stream:
		// the next REKEY (rekeyLoop) must name the epoch after this one
		// and reach the listener after this END. Clearing it first let a
		// tick in between send REKEY for this epoch again, or the next
		// REKEY before END, and the listener closed the link as a
		// protocol error.
		if err := rl.install(pending.localIdx, m.Index, m.Epoch, true); err != nil {
			return err
		}
		rl.re.e.stats.rekeys.Add(1)
		rl.re.e.log.Debug("raw rekeyed", logging.Peer(rl.l.peer), zap.Uint32("epoch", m.Epoch))
		err := rl.l.writeControl(ctrlMsg{Type: msgRekeyEnd, Epoch: m.Epoch})
		rl.mu.Lock()
		rl.pending = nil
		rl.mu.Unlock()
		return err
	case !rl.dialer && m.Type == msgRekeyEnd && pending != nil && m.Epoch == pending.epoch:
		rl.mu.Lock()
		rl.pending = nil
		rl.rotate(pending.localIdx, pending.epoch)
		rl.out.Store(pending.send)
		rl.mu.Unlock()
		rl.re.e.stats.rekeys.Add(1)
		return nil
	}
	return fmt.Errorf("%w: unexpected control message %d (epoch %d)", ErrProtocol, m.Type, m.Epoch)
}

// rekeyLoop (dialer) moves to a new epoch every RekeyInterval.
func (l *link) rekeyLoop() {
	defer l.wg.Done()
	t := time.NewTicker(l.ep.cfg.RekeyInterval)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
			if err := l.raw.beginRekey(); err != nil {
				l.closeWith(fmt.Errorf("rekey: %w", err))
				return
			}
		}
	}
}
