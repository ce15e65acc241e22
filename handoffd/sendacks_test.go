package handoffd

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
)

// TestSendAckReaderEndsWithSend: an agent that answers ready and then sends
// more results than a handoff has (each OK, none naming a directory): Send
// fails — an OK without the committed directory is not a verdict — and
// leaves no ack reader blocked on a channel after it returns (before, the
// first such result read as a committed handoff and the third blocked the
// reader for good: a goroutine and its stream reader kept per handoff).
func TestSendAckReaderEndsWithSend(t *testing.T) {
	e := newPairEnv(t, 50, 5)
	before := goleak.IgnoreCurrent()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, _, err := readFrame(br, nil); err != nil { // the hello
			return
		}
		if writeJSON(c, frameReady, result{OK: true}) != nil {
			return
		}
		for range 6 {
			if writeJSON(c, frameResult, result{OK: true}) != nil {
				return
			}
		}
		var buf []byte
		for { // take whatever the sender sends until it closes
			if _, buf, err = readFrame(br, buf); err != nil {
				return
			}
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = Send(ctx, conn, &Handoff{Images: []Image{{Name: "disk", Base: e.baseID, Path: e.curPath}}},
		SendConfig{Cache: e.src, Logger: zap.NewNop(), ResultTimeout: 2 * time.Second})
	cancel()
	if err == nil || !strings.Contains(err.Error(), "no committed directory") {
		t.Errorf("send to an agent whose results name no directory: %v, want the error saying so", err)
	}
	conn.Close()
	ln.Close()
	<-agentDone
	goleak.VerifyNone(t, before)
}
