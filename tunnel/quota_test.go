package tunnel

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestBulkStreamsBounded: a peer opens bulk streams nobody accepts. It can
// have at most MaxStreams open at once (QUIC stream credit), each is reset
// after StreamTimeout and counted bulk_unaccepted, and afterwards a bulk
// stream that is accepted, and PDUs, work as before.
func TestBulkStreamsBounded(t *testing.T) {
	a := newTestNode(t, false, nil)
	b := newTestNode(t, false, func(c *Config) { c.MaxStreams = 3; c.StreamTimeout = 500 * time.Millisecond })
	la, lb := pair(t, a, b, KindQUIC)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var opened []Stream
	for range 3 {
		s, err := la.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("never accepted")); err != nil {
			t.Fatal(err)
		}
		opened = append(opened, s)
	}
	// A fourth has no stream credit until the others are reset.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := la.OpenStream(short)
	cancelShort()
	if err == nil {
		t.Fatal("a fourth bulk stream opened with MaxStreams 3")
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.ep.Stats().Dropped(DropBulkUnaccepted) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("unaccepted bulk streams reset: %d, want 3", b.ep.Stats().Dropped(DropBulkUnaccepted))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, s := range opened {
		s.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := s.Read(make([]byte, 1)); err == nil {
			t.Fatal("an unaccepted bulk stream was not reset")
		}
	}
	// Honest use carries on: an accepted stream, and PDUs.
	errc := make(chan error, 1)
	go func() {
		s, err := la.OpenStream(ctx)
		if err == nil {
			_, err = s.Write([]byte("hello"))
			s.Close()
		}
		errc <- err
	}()
	s, err := lb.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	s.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("accepted stream: %q, %v", buf, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := la.Send(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	b.sink.wait(t, 1, 3*time.Second)
}

// TestBulkStreamsRefused: a node that takes no bulk streams (MaxStreams
// negative, as routers run) gives a peer no credit to open one.
func TestBulkStreamsRefused(t *testing.T) {
	a := newTestNode(t, false, nil)
	b := newTestNode(t, false, func(c *Config) { c.MaxStreams = -1 })
	la, _ := pair(t, a, b, KindQUIC)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := la.OpenStream(ctx); err == nil {
		t.Fatal("a bulk stream opened to a node that takes none")
	}
	if err := la.Send(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	b.sink.wait(t, 1, 3*time.Second)
}

// TestPDUStreamsBounded: a peer opens PDU streams and never finishes them
// (each would pin a MaxPDU buffer). It has at most MaxPDUStreams open at
// once, each is reset after StreamTimeout and counted stream_timeout, and
// then a large PDU (sent on a stream) arrives as usual.
func TestPDUStreamsBounded(t *testing.T) {
	a := newTestNode(t, false, nil)
	b := newTestNode(t, false, func(c *Config) { c.MaxPDUStreams = 4; c.StreamTimeout = 500 * time.Millisecond })
	la, _ := pair(t, a, b, KindQUIC)
	ql := la.(*link)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 4 {
		s, err := ql.qc.OpenUniStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("a PDU that never ends")); err != nil {
			t.Fatal(err)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := ql.qc.OpenUniStreamSync(short)
	cancelShort()
	if err == nil {
		t.Fatal("a fifth PDU stream opened with MaxPDUStreams 4")
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.ep.Stats().Dropped(DropStreamTimeout) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("stalled PDU streams reset: %d, want 4", b.ep.Stats().Dropped(DropStreamTimeout))
		}
		time.Sleep(20 * time.Millisecond)
	}
	big := make([]byte, 20_000) // larger than a datagram: goes on a stream
	if err := la.Send(big); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	b.sink.wait(t, 1, 5*time.Second)
}
