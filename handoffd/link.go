package handoffd

import (
	"net"
	"sync"
	"time"
)

// Link emulates a bottleneck link for tests and benchmarks: a token bucket
// on the bytes written through a wrapped connection. The rate can change
// while a transfer runs (a bandwidth drop).
type Link struct {
	mu     sync.Mutex
	rate   float64 // bytes/s; 0 = unlimited
	tokens float64
	last   time.Time
	burst  float64
}

// NewLink returns a link of bitsPerSec (0: unlimited).
func NewLink(bitsPerSec float64) *Link {
	l := &Link{last: time.Now()}
	l.SetRate(bitsPerSec)
	return l
}

// SetRate changes the link's rate.
func (l *Link) SetRate(bitsPerSec float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(time.Now())
	l.rate = bitsPerSec / 8
	// 20 ms worth of burst, at least one 16 KiB write.
	l.burst = max(l.rate/50, 16<<10)
	l.tokens = min(l.tokens, l.burst)
}

// Rate returns the current rate in bits/s.
func (l *Link) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate * 8
}

func (l *Link) refill(now time.Time) {
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
}

// wait blocks until n bytes may pass.
func (l *Link) wait(n int) {
	for n > 0 {
		l.mu.Lock()
		if l.rate == 0 {
			l.mu.Unlock()
			return
		}
		l.refill(time.Now())
		take := min(float64(n), l.burst)
		if l.tokens >= take {
			l.tokens -= take
			n -= int(take)
			l.mu.Unlock()
			continue
		}
		need := (take - l.tokens) / l.rate
		l.mu.Unlock()
		time.Sleep(time.Duration(need * float64(time.Second)))
	}
}

// Conn wraps c so that every Write passes the link first.
func (l *Link) Conn(c net.Conn) net.Conn { return &linkConn{Conn: c, l: l} }

type linkConn struct {
	net.Conn
	l *Link
}

func (c *linkConn) Write(p []byte) (int, error) { return c.writeTo(c.Conn, p) }

// Stream wraps a handoff stream so that every Write passes the link first.
func (l *Link) Stream(s Stream) Stream { return &linkStream{Stream: s, l: l} }

type linkStream struct {
	Stream
	l *Link
}

func (c *linkStream) Write(p []byte) (int, error) {
	return (&linkConn{Conn: nil, l: c.l}).writeTo(c.Stream, p)
}

// SetDeadline passes to the stream's (the sender's watchdog unblocks it);
// a stream without deadlines is closed instead.
func (c *linkStream) SetDeadline(t time.Time) error {
	if d, ok := c.Stream.(interface{ SetDeadline(time.Time) error }); ok {
		return d.SetDeadline(t)
	}
	return c.Stream.Close()
}

func (c *linkConn) writeTo(w interface{ Write([]byte) (int, error) }, p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), 16<<10)
		c.l.wait(n)
		m, err := w.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}
