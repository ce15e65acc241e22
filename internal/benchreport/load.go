package main

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LoadSample is one line of the load log `make bench` keeps while the
// benchmarks run: "<unix seconds> <the contents of /proc/loadavg>".
type LoadSample struct {
	T              time.Time
	L1, L5, L15    float64
	Running, Total int // runnable and total scheduling entities
}

// ParseLoadLog reads a load log; lines that do not parse are skipped and
// counted.
func ParseLoadLog(in io.Reader) ([]LoadSample, int, error) {
	var out []LoadSample
	bad := 0
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		s, ok := parseLoad(f)
		if !ok {
			bad++
			continue
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, bad, fmt.Errorf("read load log: %w", err)
	}
	slices.SortStableFunc(out, func(a, b LoadSample) int { return a.T.Compare(b.T) })
	return out, bad, nil
}

func parseLoad(f []string) (LoadSample, bool) {
	if len(f) < 4 {
		return LoadSample{}, false
	}
	sec, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return LoadSample{}, false
	}
	s := LoadSample{T: time.Unix(sec, 0)}
	for i, p := range []*float64{&s.L1, &s.L5, &s.L15} {
		v, err := strconv.ParseFloat(f[1+i], 64)
		if err != nil || v < 0 {
			return LoadSample{}, false
		}
		*p = v
	}
	if len(f) >= 5 {
		if a, b, ok := strings.Cut(f[4], "/"); ok {
			s.Running, _ = strconv.Atoi(a)
			s.Total, _ = strconv.Atoi(b)
		}
	}
	return s, true
}

// LoadAt is the 1-minute load average of the last sample at or before t
// (the first sample if t is earlier than all of them).
func (r *Run) LoadAt(t time.Time) (float64, bool) {
	if len(r.Load) == 0 || t.IsZero() {
		return 0, false
	}
	i, _ := slices.BinarySearchFunc(r.Load, t, func(s LoadSample, t time.Time) int {
		if s.T.After(t) {
			return 1
		}
		return -1
	})
	if i > 0 {
		i--
	}
	return r.Load[i].L1, true
}
