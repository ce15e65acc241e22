// Command loader loads a tensor file the way a model loader does: it
// parses the header and every tensor into a []float32 in memory, then
// prints the number of floats, a checksum and the time it took.
//
// Format (little-endian): "GDPT" u32 tensors, then per tensor: u16 name
// length, name, u32 dims, u32 × dims shape, float32 × prod(shape).
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: loader FILE")
		os.Exit(2)
	}
	start := time.Now()
	tensors, err := load(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loader:", err)
		os.Exit(1)
	}
	el := time.Since(start)
	var n int
	var sum float64
	for _, t := range tensors {
		n += len(t)
		for i := 0; i < len(t); i += 4096 {
			sum += float64(t[i])
		}
	}
	fmt.Printf("%d tensors %d floats sum %.6g seconds %.6f\n", len(tensors), n, sum, el.Seconds())
}

func load(path string) ([][]float32, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	r := bufio.NewReaderSize(fh, 1<<20)
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil || string(hdr[:4]) != "GDPT" {
		return nil, fmt.Errorf("%s: not a tensor file", path)
	}
	count := binary.LittleEndian.Uint32(hdr[4:])
	if count > 1<<16 {
		return nil, fmt.Errorf("%s: %d tensors", path, count)
	}
	out := make([][]float32, 0, count)
	buf := make([]byte, 1<<20)
	for range count {
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, err
		}
		name := make([]byte, binary.LittleEndian.Uint16(l[:]))
		var d [4]byte
		if _, err := io.ReadFull(r, name); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(r, d[:]); err != nil {
			return nil, err
		}
		dims := binary.LittleEndian.Uint32(d[:])
		if dims > 8 {
			return nil, fmt.Errorf("tensor %s: %d dims", name, dims)
		}
		n := uint64(1)
		for range dims {
			if _, err := io.ReadFull(r, d[:]); err != nil {
				return nil, err
			}
			n *= uint64(binary.LittleEndian.Uint32(d[:]))
		}
		if n > 1<<30 {
			return nil, fmt.Errorf("tensor %s: %d floats", name, n)
		}
		t := make([]float32, n)
		for i := uint64(0); i < n; {
			k := min(uint64(len(buf)/4), n-i)
			if _, err := io.ReadFull(r, buf[:4*k]); err != nil {
				return nil, fmt.Errorf("tensor %s: %w", name, err)
			}
			for j := uint64(0); j < k; j++ {
				t[i+j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
			}
			i += k
		}
		out = append(out, t)
	}
	return out, nil
}
