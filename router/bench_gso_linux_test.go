//go:build linux

package router_test

import (
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/gdpnet/gdpnet/internal/udpoffload"
	"golang.org/x/sys/unix"
)

// The GSO/GRO bare relay: the best a Go program on this machine moves
// datagrams from one UDP socket to another, the baseline the router's raw
// path is measured against (x_bare). The sender hands the kernel 64-frame
// UDP_SEGMENT super-buffers in sendmmsg batches; the relay receives with
// UDP_GRO in recvmmsg batches and sends each coalesced buffer on as one
// UDP_SEGMENT super-buffer (no copy, no crypto); the sink receives with
// UDP_GRO and counts the frames.

const (
	gsoBatch    = 16 // messages per sendmmsg/recvmmsg
	gsoSegments = 64 // frames per super-buffer at most
	gsoMaxBytes = 65000
)

func setGRO(b *testing.B, c *net.UDPConn) {
	if _, gro := udpoffload.Enable(c); !gro {
		b.Skip("no UDP_GRO on this kernel")
	}
}

func segmentCmsg(size int) []byte {
	return udpoffload.PutSegmentCmsg(make([]byte, udpoffload.SegmentCmsgLen), size)
}

func groMsgs() []ipv4.Message {
	ms := make([]ipv4.Message, gsoBatch)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 1<<16)}
		ms[i].OOB = make([]byte, udpoffload.GROCmsgLen)
	}
	return ms
}

// frames is how many datagrams of m (received with GRO) there were.
func frames(m *ipv4.Message) int {
	seg := udpoffload.GROSegmentSize(m.OOB[:m.NN])
	if seg <= 0 || m.N <= seg {
		return 1
	}
	return (m.N + seg - 1) / seg
}

// gsoRelay moves b.N datagrams of size bytes sender → relay → sink (the
// sender keeps a window of benchWindow in flight, like the router's). It
// returns the delivered rate (datagrams/s) and the datagrams lost.
func gsoRelay(b *testing.B, size int) (float64, int64) {
	sink, relay, sender := udp(b), udp(b), udp(b)
	setGRO(b, sink)
	setGRO(b, relay)
	m := newMeter(int64(b.N), true)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		pc := ipv4.NewPacketConn(sink)
		ms := groMsgs()
		for {
			n, err := pc.ReadBatch(ms, 0)
			if err != nil {
				return
			}
			k := 0
			for i := range ms[:n] {
				k += frames(&ms[i])
			}
			m.add(int64(k))
		}
	}()
	go func() {
		defer wg.Done()
		pc := ipv4.NewPacketConn(relay)
		ms := groMsgs()
		out := make([]ipv4.Message, gsoBatch)
		oobs := make([][]byte, gsoBatch)
		to := sink.LocalAddr()
		for {
			n, err := pc.ReadBatch(ms, 0)
			if err != nil {
				return
			}
			for i := range ms[:n] {
				r := &ms[i]
				out[i].Buffers = [][]byte{r.Buffers[0][:r.N]}
				out[i].Addr = to
				out[i].OOB = nil
				if seg := udpoffload.GROSegmentSize(r.OOB[:r.NN]); seg > 0 && r.N > seg {
					if oobs[i] == nil || binary.NativeEndian.Uint16(oobs[i][unix.CmsgLen(0):]) != uint16(seg) {
						oobs[i] = segmentCmsg(seg)
					}
					out[i].OOB = oobs[i]
				}
			}
			for s := out[:n]; len(s) > 0; {
				k, err := pc.WriteBatch(s, 0)
				if err != nil {
					break
				}
				s = s[k:]
			}
		}
	}()
	per := min(gsoSegments, gsoMaxBytes/size)
	super := make([]byte, per*size)
	ms := make([]ipv4.Message, gsoBatch)
	oob := segmentCmsg(size)
	to := relay.LocalAddr()
	pc := ipv4.NewPacketConn(sender)
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		m.wait(int64(sent + per*gsoBatch))
		nm := 0
		for nm < gsoBatch && sent < b.N {
			k := min(per, b.N-sent)
			ms[nm].Buffers = [][]byte{super[:k*size]}
			ms[nm].Addr = to
			ms[nm].OOB = nil
			if k > 1 {
				ms[nm].OOB = oob
			}
			sent += k
			nm++
		}
		for s := ms[:nm]; len(s) > 0; {
			k, err := pc.WriteBatch(s, 0)
			if err != nil {
				b.Fatal(err)
			}
			s = s[k:]
		}
	}
	m.settle(int64(b.N), 50*time.Millisecond)
	b.StopTimer()
	rate := m.rate(start)
	_ = sink.Close()
	_ = relay.Close()
	_ = sender.Close()
	wg.Wait()
	return rate, int64(b.N) - m.n.Load()
}
