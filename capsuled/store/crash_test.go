package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
)

// The crash test re-executes the test binary as a child that appends to a
// store as fast as it can and records every acknowledged append in a side
// file; the parent SIGKILLs it at a random moment, reopens the store and
// checks that every acknowledged record is there and verifies, and that
// nothing half-written is.

const (
	crashEnvDir    = "GDPNET_STORE_CRASH_DIR"
	crashEnvEngine = "GDPNET_STORE_CRASH_ENGINE"
	crashCapsules  = 4
	crashDataSize  = 256
)

func crashCapsule(i int) testCapsule { return newTestCapsule(nopTB{}, byte(40+i)) }

// crashChild runs the child's side when the environment asks for it.
func crashChild() bool {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		return false
	}
	if err := runCrashChild(dir, os.Getenv(crashEnvEngine)); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	os.Exit(0)
	return true
}

func runCrashChild(dir, eng string) error {
	s, err := Open(filepath.Join(dir, "store"), Options{Engine: eng})
	if err != nil {
		return err
	}
	acks, err := os.OpenFile(filepath.Join(dir, "acks"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, crashCapsules)
	for i := 0; i < crashCapsules; i++ {
		tc := crashCapsule(i)
		if err := s.Create(ctx, tc.name, tc.meta); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := s.Head(tc.name)
			if err != nil {
				errs <- err
				return
			}
			w := capsule.NewWriter(tc.name, tc.key)
			if h.Seqno > 0 {
				w = capsule.RestartWriter(tc.name, tc.key, h)
			}
			for {
				n := 1 + rand.IntN(48)
				for j := 0; j < n; j++ {
					w.Append(payload(w.Seqno()+1, crashDataSize))
				}
				recs, hb := w.Flush()
				if err := s.Append(ctx, tc.name, recs, hb); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				fmt.Fprintf(acks, "%d %d\n", i, hb.Seqno)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func TestCrashRecovery(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			dir := t.TempDir()
			total := 0
			for round := 0; round < 5; round++ {
				ackSize := fileSize(filepath.Join(dir, "acks"))
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvEngine+"="+eng)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				// Kill at a random moment once the child is appending: after
				// its first acknowledgement of this round (however long a
				// loaded machine takes to start it and open the store),
				// then 0-400 ms on.
				waitForAck(t, filepath.Join(dir, "acks"), ackSize, 60*time.Second)
				time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
				cmd.Process.Signal(syscall.SIGKILL)
				err := cmd.Wait()
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
					t.Fatalf("child ended before the kill: %v\n%s", err, stderr.Bytes())
				}
				acked := readAcks(t, filepath.Join(dir, "acks"))
				s := openTest(t, filepath.Join(dir, "store"), eng)
				for i := 0; i < crashCapsules; i++ {
					tc := crashCapsule(i)
					if _, err := s.Head(tc.name); errors.Is(err, ErrUnknownCapsule) && acked[i] == 0 {
						continue // killed before its creation was acknowledged
					}
					h := verifyAll(t, s, tc)
					if acked[i] > h.Seqno {
						t.Fatalf("round %d capsule %d: acknowledged %d, store has %d", round, i, acked[i], h.Seqno)
					}
					if acked[i] > 0 {
						r, err := s.Read(tc.name, acked[i], acked[i])
						if err != nil || !bytes.Equal(r[0].Data, payload(acked[i], crashDataSize)) {
							t.Fatalf("round %d capsule %d: acknowledged record %d: %v", round, i, acked[i], err)
						}
					}
					total += int(acked[i])
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if total == 0 {
				t.Fatal("the child never acknowledged an append")
			}
			t.Logf("%s: 5 kills, every acknowledged record present and verified (ack high-water marks summed over rounds: %d)", eng, total)
		})
	}
}

// fileSize is path's size, 0 when it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// waitForAck waits until the acks file at path grows beyond size.
func waitForAck(t *testing.T, path string, size int64, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for fileSize(path) <= size {
		if time.Now().After(deadline) {
			t.Fatalf("the child acknowledged no append within %v", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readAcks(t *testing.T, path string) map[int]uint64 {
	out := map[int]uint64{}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var i int
		var seq uint64
		if _, err := fmt.Sscanf(sc.Text(), "%d %d", &i, &seq); err != nil {
			continue // a line cut by the kill
		}
		out[i] = max(out[i], seq)
	}
	return out
}

// nopTB lets the child build fixtures without a *testing.T.
type nopTB struct{ testing.TB }

func (nopTB) Helper()           {}
func (nopTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }
