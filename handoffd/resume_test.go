package handoffd

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// countingVM is a VM whose Stop returns a fixed device state (and runs
// onStop) and whose Resume is counted.
type countingVM struct {
	onStop  func()
	resumed atomic.Int32
}

func (v *countingVM) Stop(context.Context) ([]byte, error) {
	if v.onStop != nil {
		v.onStop()
	}
	return []byte("device state"), nil
}

func (v *countingVM) Resume(context.Context) error { v.resumed.Add(1); return nil }

// goCutConn is a link that breaks as the sender writes the go (the frame
// that lets the destination run its copy): it closes and fails the write.
type goCutConn struct{ net.Conn }

func (c goCutConn) Write(p []byte) (int, error) {
	if len(p) == 5 && p[0] == frameGo {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

// TestSourceVMResumedOnlyBeforeGo: a VM handoff that ends after the source
// VM was stopped resumes it exactly when the destination was never told to
// run its copy. Interrupted (the context ends) right after the stop: the
// VM is resumed once and the error wraps ErrSourceResumed; the destination
// commits nothing. The link breaks as the go is written, after the
// destination committed: the go may have arrived, so the VM is never
// resumed (two running copies are worse than two paused ones) and the
// error says the operator decides.
func TestSourceVMResumedOnlyBeforeGo(t *testing.T) {
	e := newPairEnv(t, 64, 16)
	log := zaptest.NewLogger(t)
	send := func(vm *countingVM, ctx context.Context, wrap func(net.Conn) net.Conn, id string) (error, *Received, error) {
		a, b := tcpPair(t)
		if wrap != nil {
			a = wrap(a)
		}
		ch := make(chan error, 1)
		go func() {
			h := &Handoff{ID: id, VM: vm, Images: []Image{{Name: "disk", Base: e.baseID, Path: e.curPath}}}
			_, err := Send(ctx, a, h, SendConfig{Cache: e.src, Logger: log, PreCopyRounds: -1})
			a.Close()
			ch <- err
		}()
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rec, rerr := Receive(rctx, b, ReceiveConfig{Cache: e.dst, Dir: filepath.Join(e.dir, "out"), Logger: log})
		return <-ch, rec, rerr
	}

	ctx, cancel := context.WithCancel(context.Background())
	vm := &countingVM{onStop: cancel}
	err, rec, _ := send(vm, ctx, nil, "interrupted")
	if !errors.Is(err, ErrSourceResumed) || vm.resumed.Load() != 1 {
		t.Fatalf("interrupted after the stop: %v, %d resumes; want ErrSourceResumed and 1", err, vm.resumed.Load())
	}
	if rec != nil {
		t.Fatalf("the destination committed an interrupted handoff: %+v", rec)
	}

	vm = &countingVM{}
	err, rec, _ = send(vm, context.Background(), func(c net.Conn) net.Conn { return goCutConn{c} }, "go-lost")
	if err == nil || errors.Is(err, ErrSourceResumed) || !strings.Contains(err.Error(), "may not have arrived") {
		t.Fatalf("link broken at the go: %v; want the go-may-not-have-arrived error", err)
	}
	if n := vm.resumed.Load(); n != 0 {
		t.Fatalf("the source VM was resumed %d times after the destination committed", n)
	}
	if rec == nil || rec.Go {
		t.Fatalf("link broken at the go: the destination's result %+v; want committed without the go", rec)
	}
}

// TestPrestartFailureFallsBack: a destination QEMU that cannot start at the
// hello (ReceiveConfig.PrestartVM: here a RAM image that is not the
// machine's size, and no such binary) costs one WARN line
// and nothing else — the handoff commits, with no QEMU for ResumeVM to
// take (it starts one after the commit, as without PrestartVM).
func TestPrestartFailureFallsBack(t *testing.T) {
	e := newPairEnv(t, 64, 16)
	core, logs := observer.New(zap.DebugLevel)
	a, b := tcpPair(t)
	ch := make(chan error, 1)
	go func() {
		h := &Handoff{ID: "prestart", VM: &countingVM{}, Meta: VMMeta{MemoryMiB: 1},
			Images: []Image{{Name: "memory", Base: e.baseID, Path: e.curPath}}}
		_, err := Send(context.Background(), a, h, SendConfig{Cache: e.src, Logger: zaptest.NewLogger(t), PreCopyRounds: -1})
		a.Close()
		ch <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec, err := Receive(ctx, b, ReceiveConfig{Cache: e.dst, Dir: filepath.Join(e.dir, "out"), Logger: zap.New(core),
		PrestartVM: &QEMUConfig{Binary: filepath.Join(e.dir, "no-such-qemu")}})
	if serr := <-ch; err != nil || serr != nil {
		t.Fatalf("handoff with a QEMU that cannot start ahead: receive %v, send %v; want it committed", err, serr)
	}
	if rec.QEMU != nil || !rec.Go {
		t.Fatalf("committed with QEMU %v, go %v; want no QEMU started ahead and the go", rec.QEMU, rec.Go)
	}
	warned := logs.FilterMessage("destination VM not started ahead: it starts after the commit, a longer pause").Len()
	if warned != 1 {
		t.Fatalf("%d WARN lines saying the VM was not started ahead; want 1", warned)
	}
}
