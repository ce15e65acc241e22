package handoffd

import (
	"context"
	"sync"
	"time"
)

// Report is what one handoff did, for the operator and the benchmark.
type Report struct {
	ID          string    `json:"id"`
	Dest        string    `json:"dest,omitempty"` // the receiver's result directory
	Start       time.Time `json:"start"`
	TotalSec    float64   `json:"total_sec"`
	DowntimeSec float64   `json:"downtime_sec"` // VM stop to the destination's verdict (0: no VM)
	// Downtime splits DowntimeSec into its steps (nil: no VM).
	Downtime   *DowntimeReport `json:"downtime,omitempty"`
	StateBytes int64           `json:"state_bytes"`
	Images     []ImageReport
	Rounds     []RoundReport `json:"rounds"`
	// Bytes at each stage boundary.
	ScannedBytes int64 `json:"scanned_bytes"` // bytes of candidate blocks read
	ChangedBytes int64 `json:"changed_bytes"` // blocks that differ from what the destination holds
	UniqueBytes  int64 `json:"unique_bytes"`  // after dedup: data the destination cannot rebuild
	RawBytes     int64 `json:"raw_bytes"`     // blob payloads before compression (records + data)
	WireBytes    int64 `json:"wire_bytes"`    // bytes written to the stream
	// FreeSkippedBytes: blocks that differ from what the destination holds
	// but that the image's file system leaves unallocated (Image.FS): not
	// sent, not in ChangedBytes.
	FreeSkippedBytes int64 `json:"free_skipped_bytes,omitempty"`
	Blocks           struct {
		Zero, Base, Dup, Data int64
	} `json:"blocks"`
	Stages []StageReport `json:"stages"`
	Ratio  float64       `json:"ratio"` // wire / changed
	Modes  []ModeSwitch  `json:"modes"`
	// ModeSwitches counts the adapter's switches (the timeline less its
	// initial entry).
	ModeSwitches int      `json:"mode_switches"`
	Samples      []Sample `json:"samples"`
}

// ImageReport is one image's size.
type ImageReport struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// DowntimeReport is where a VM handoff's downtime goes, in order: the
// parts add up to Report.DowntimeSec.
type DowntimeReport struct {
	StopSec    float64 `json:"stop_sec"`    // VM.Stop: paused, its device state written out
	RefreshSec float64 `json:"refresh_sec"` // the images brought up to date (Image.Refresh: a qcow2 overlay's raw view)
	ScanSec    float64 `json:"scan_sec"`    // the final round's candidate ranges listed and read, to the last block scanned
	RoundSec   float64 `json:"round_sec"`   // from there to the round's last blob written (dedup, compress, send)
	StateSec   float64 `json:"state_sec"`   // the device state and the end frame written
	// VerdictSec is the end frame to the destination's verdict: its last
	// blobs applied, its verification finished, fsync, rename, the verdict
	// back (the destination logs its part: "handoff committed").
	VerdictSec float64          `json:"verdict_sec"`
	Scanned    map[string]int64 `json:"scanned_bytes"` // the final round's bytes read, per image
}

// RoundReport is one pre-copy (or the final) round.
type RoundReport struct {
	Round   int     `json:"round"`
	Final   bool    `json:"final"`
	Start   float64 `json:"start_sec"`
	End     float64 `json:"end_sec"`
	Changed int64   `json:"changed_bytes"`
	Blobs   int     `json:"blobs"`
	Records int64   `json:"records"`
	// Scanned is the bytes read per image (the candidate blocks).
	Scanned map[string]int64 `json:"scanned_bytes,omitempty"`
}

// StageReport is one stage's work: bytes in and out and busy time summed
// over its workers.
type StageReport struct {
	Name    string  `json:"name"`
	In      int64   `json:"in_bytes"`
	Out     int64   `json:"out_bytes"`
	Ratio   float64 `json:"ratio"`
	BusySec float64 `json:"busy_sec"`
	MBps    float64 `json:"mb_per_busy_sec"` // input per busy second of one worker
	// FirstSec and LastSec bound the stage's activity (seconds from the
	// start): overlapping spans are the pipelining at work.
	FirstSec float64 `json:"first_sec"`
	LastSec  float64 `json:"last_sec"`
}

// Sample is one point of the throughput timeline.
type Sample struct {
	AtSec    float64 `json:"at_sec"`
	WireBps  float64 `json:"wire_bytes_per_sec"`
	InputBps float64 `json:"changed_bytes_per_sec"`
	BwEst    float64 `json:"bandwidth_estimate"`
	Mode     string  `json:"mode"`
}

var stageNames = [4]string{"scan", "dedup", "compress", "send"}

func (s *sender) fillReport(r *Report) {
	for _, im := range s.imgs {
		r.Images = append(r.Images, ImageReport{Name: im.Name, Size: im.size})
	}
	r.ChangedBytes = s.changed.Load()
	r.UniqueBytes = s.unique.Load()
	r.WireBytes = s.wire.Load()
	r.FreeSkippedBytes = s.freeSkipped.Load()
	r.ScannedBytes = s.stageIn[0].Load()
	r.RawBytes = s.stageIn[2].Load()
	r.Blocks.Zero = s.kinds[recZero].Load()
	r.Blocks.Base = s.kinds[recBase].Load()
	r.Blocks.Dup = s.kinds[recDup].Load()
	r.Blocks.Data = s.kinds[recData].Load()
	for i, n := range stageNames {
		st := StageReport{Name: n, In: s.stageIn[i].Load(), Out: s.stageOut[i].Load(), BusySec: float64(s.stageBusy[i].Load()) / 1e9}
		if st.In > 0 {
			st.Ratio = float64(st.Out) / float64(st.In)
		}
		if f := s.stageFirst[i].Load(); f > 0 {
			st.FirstSec, st.LastSec = float64(f-1)/1e9, float64(s.stageLast[i].Load())/1e9
		}
		if st.BusySec > 0 {
			st.MBps = float64(st.In) / st.BusySec / 1e6
		}
		r.Stages = append(r.Stages, st)
	}
	if r.ChangedBytes > 0 {
		r.Ratio = float64(r.WireBytes) / float64(r.ChangedBytes)
	}
}

// sampler records the throughput timeline and drives the progress callback.
type sampler struct {
	s    *sender
	mu   sync.Mutex
	out  []Sample
	done chan struct{}
	once sync.Once
}

func newSampler(s *sender) *sampler { return &sampler{s: s, done: make(chan struct{})} }

func (p *sampler) stop() { p.once.Do(func() { close(p.done) }) }

func (p *sampler) samples() []Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Sample(nil), p.out...)
}

func (p *sampler) loop(ctx context.Context) {
	const every = 250 * time.Millisecond
	t := time.NewTicker(every)
	defer t.Stop()
	lastT := time.Now()
	var lastW, lastC int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.done:
			return
		case now := <-t.C:
			w, c := p.s.wire.Load(), p.s.changed.Load()
			dt := now.Sub(lastT).Seconds()
			p.mu.Lock()
			p.out = append(p.out, Sample{AtSec: now.Sub(p.s.start).Seconds(), WireBps: float64(w-lastW) / dt,
				InputBps: float64(c-lastC) / dt, BwEst: p.s.ad.bandwidth(), Mode: p.s.ad.current().String()})
			p.mu.Unlock()
			lastT, lastW, lastC = now, w, c
			if p.s.cfg.Progress != nil {
				p.s.cfg.Progress(p.s.progress())
			}
		}
	}
}
