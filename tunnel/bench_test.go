package tunnel

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/gdpnet/gdpnet/pdu"
)

// rateMeter counts deliveries and remembers when the last one came.
type rateMeter struct {
	n    atomic.Int64
	last atomic.Int64 // unix nanos
}

func (m *rateMeter) hit() {
	m.n.Add(1)
	m.last.Store(time.Now().UnixNano())
}

// settle waits until want deliveries or until nothing arrived for idle.
func (m *rateMeter) settle(want int64, idle time.Duration) {
	for {
		before := m.n.Load()
		if before >= want {
			return
		}
		time.Sleep(idle)
		if m.n.Load() == before {
			return
		}
	}
}

// report sets pdus/s (delivered, start to last delivery) and loss%, always
// both: a run that delivered nothing reports 100% loss and fails, rather
// than a 0 pdus/s that reads like a slow run with no loss.
func (m *rateMeter) report(b *testing.B, start time.Time, sent int) {
	got := m.n.Load()
	loss := 0.0
	if sent > 0 {
		loss = 100 * float64(int64(sent)-got) / float64(sent)
	}
	b.ReportMetric(loss, "loss%")
	el := time.Unix(0, m.last.Load()).Sub(start)
	if got == 0 || el <= 0 {
		b.ReportMetric(0, "pdus/s")
		b.Errorf("no PDU delivered of %d sent", sent)
		return
	}
	b.ReportMetric(float64(got)/el.Seconds(), "pdus/s")
}

// BenchmarkRawVsBareUDP: the raw tunnel against plain Go UDP between two
// loopback sockets (one Write per datagram, one ReadFromUDP per datagram, no
// crypto, no batching), in one run. The name gives the PDU payload; each
// PDU is a 76-byte header plus that payload, and the bare datagram has the
// same length. pdus/s counts deliveries.
func BenchmarkRawVsBareUDP(b *testing.B) {
	for _, payload := range []int{200, 1300} {
		size := pdu.HeaderLen + payload
		b.Run(fmt.Sprintf("bare-%d", payload), func(b *testing.B) { benchBareUDP(b, size) })
		b.Run(fmt.Sprintf("raw-%d", payload), func(b *testing.B) { benchLink(b, KindRaw, size) })
	}
}

func benchBareUDP(b *testing.B, size int) {
	rx := loopbackUDP(b)
	defer rx.Close()
	rx.SetReadBuffer(8 << 20)
	tx, err := net.DialUDP("udp", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	tx.SetWriteBuffer(8 << 20)
	var m rateMeter
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := rx.ReadFromUDP(buf); err != nil {
				return
			}
			m.hit()
		}
	}()
	p := make([]byte, size)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		tx.Write(p)
	}
	m.settle(int64(b.N), 50*time.Millisecond)
	b.StopTimer()
	m.report(b, start, b.N)
	rx.Close()
	<-done
}

func benchLink(b *testing.B, kind Kind, size int) {
	var m rateMeter
	h := func(Link, []byte) { m.hit() }
	mod := func(c *Config) { c.Handler = h }
	a := newTestNode(b, kind == KindRaw, nil)
	r := newTestNode(b, kind == KindRaw, mod)
	la, _ := pair(b, a, r, kind)
	p := make([]byte, size)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := la.Send(p); err != nil {
			b.Fatal(err)
		}
	}
	m.settle(int64(b.N), 50*time.Millisecond)
	b.StopTimer()
	m.report(b, start, b.N)
}

// BenchmarkQUICDatagramVsBare: tunnel PDUs in QUIC datagrams against bare
// quic-go datagrams between the same kind of endpoints, in one run. The
// name gives the whole PDU (= datagram payload) size.
func BenchmarkQUICDatagramVsBare(b *testing.B) {
	for _, size := range []int{200, 1100} {
		b.Run(fmt.Sprintf("bare-%d", size), func(b *testing.B) { benchBareQUICDatagram(b, size) })
		b.Run(fmt.Sprintf("tunnel-%d", size), func(b *testing.B) { benchLink(b, KindQUIC, size) })
	}
}

// bareQUIC is a plain quic-go connection pair on loopback.
func bareQUIC(b *testing.B) (cli, srv *quic.Conn, cleanup func()) {
	id := testIdentity(b)
	der, err := selfSignedCert(id, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.Key}
	qc := &quic.Config{EnableDatagrams: true}
	st := &quic.Transport{Conn: loopbackUDP(b)}
	ct := &quic.Transport{Conn: loopbackUDP(b)}
	ln, err := st.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench"}}, qc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cli, err = ct.Dial(ctx, ln.Addr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}}, qc)
	if err != nil {
		b.Fatal(err)
	}
	srv, err = ln.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return cli, srv, func() {
		cli.CloseWithError(0, "")
		srv.CloseWithError(0, "")
		ln.Close()
		st.Close()
		ct.Close()
		st.Conn.Close()
		ct.Conn.Close()
	}
}

func benchBareQUICDatagram(b *testing.B, size int) {
	cli, srv, cleanup := bareQUIC(b)
	defer cleanup()
	var m rateMeter
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := srv.ReceiveDatagram(context.Background()); err != nil {
				return
			}
			m.hit()
		}
	}()
	p := make([]byte, size)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := cli.SendDatagram(p); err != nil {
			b.Fatal(err)
		}
	}
	m.settle(int64(b.N), 50*time.Millisecond)
	b.StopTimer()
	m.report(b, start, b.N)
	srv.CloseWithError(0, "")
	<-done
}

// BenchmarkBulkStreamVsBare: a tunnel bulk stream against a bare quic-go
// stream, 64 KiB writes, in one run. One op = 64 KiB.
func BenchmarkBulkStreamVsBare(b *testing.B) {
	const chunk = 64 << 10
	run := func(b *testing.B, open func() (io.WriteCloser, io.Reader)) {
		w, r := open()
		done := make(chan int64)
		go func() {
			n, _ := io.Copy(io.Discard, r)
			done <- n
		}()
		buf := make([]byte, chunk)
		b.ReportAllocs()
		b.SetBytes(chunk)
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if _, err := w.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		w.Close()
		n := <-done
		el := time.Since(start)
		b.StopTimer()
		if n != int64(b.N)*chunk {
			b.Fatalf("read %d bytes, want %d", n, int64(b.N)*chunk)
		}
		b.ReportMetric(float64(n)*8/el.Seconds()/1e9, "Gbit/s")
	}
	b.Run("bare", func(b *testing.B) {
		cli, srv, cleanup := bareQUIC(b)
		defer cleanup()
		run(b, func() (io.WriteCloser, io.Reader) {
			s, err := cli.OpenStreamSync(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			s.Write([]byte{0}) // announce the stream
			rs, err := srv.AcceptStream(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			rs.Read(make([]byte, 1))
			return s, rs
		})
	})
	b.Run("tunnel", func(b *testing.B) {
		a, r := newTestNode(b, false, nil), newTestNode(b, false, nil)
		la, lr := pair(b, a, r, KindQUIC)
		run(b, func() (io.WriteCloser, io.Reader) {
			s, err := la.OpenStream(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			rs, err := lr.AcceptStream(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			return s, rs
		})
	})
}
