package sim

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Write puts the results in dir: results.json (everything), samples.csv
// (every ping and stream sample), links.csv (per link direction),
// events.csv and summary.txt.
func (r *Results) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	var rows [][]string
	rows = append(rows, []string{"workload", "kind", "from", "to", "t_s", "value", "ok", "unit"})
	for _, w := range r.Workloads {
		for _, s := range w.Samples {
			rows = append(rows, []string{strconv.Itoa(w.Index), w.Kind, w.From, w.To, f(s.T), f(s.Value), strconv.FormatBool(s.OK), sampleUnit(w.Kind)})
		}
	}
	if err := writeCSV(filepath.Join(dir, "samples.csv"), rows); err != nil {
		return err
	}
	verdicts := []string{"delivered", "lost", "queue_full", "too_big", "down"}
	head := []string{"link", "from", "to"}
	for _, v := range verdicts {
		head = append(head, v+"_packets", v+"_bytes")
	}
	rows = [][]string{head}
	for _, l := range r.LinkStats {
		row := []string{l.Link, l.From, l.To}
		for _, v := range verdicts {
			row = append(row, strconv.FormatUint(l.Packets[v], 10), strconv.FormatUint(l.Bytes[v], 10))
		}
		rows = append(rows, row)
	}
	if err := writeCSV(filepath.Join(dir, "links.csv"), rows); err != nil {
		return err
	}
	rows = [][]string{{"at_s", "kind", "target", "error"}}
	for _, e := range r.Events {
		rows = append(rows, []string{f(e.At), e.Kind, e.Target, e.Err})
	}
	if err := writeCSV(filepath.Join(dir, "events.csv"), rows); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(r.Text()), 0o644)
}

func writeCSV(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(rows); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Text is a human-readable report: a line per workload, then the summary.
func (r *Results) Text() string {
	out := fmt.Sprintf("%s: %d nodes (%d routers), %d links; built in %.2fs, ran %.2fs\n", r.Name, r.Nodes, r.Routers, r.Links, r.BuildS, r.DurationS)
	for _, w := range r.Workloads {
		out += "  " + w.Line() + "\n"
	}
	for _, e := range r.Events {
		if e.Err != "" {
			out += fmt.Sprintf("  event %s %s at %.3fs failed: %s\n", e.Kind, e.Target, e.At, e.Err)
		}
	}
	return out + r.Summary + "\n"
}

// Line is one workload's result on one line.
func (w WorkloadResult) Line() string {
	s := fmt.Sprintf("[%d] %s %s", w.Index, w.Kind, w.From)
	if w.To != "" {
		s += " → " + w.To
	}
	switch w.Kind {
	case WorkPing:
		s += fmt.Sprintf(": %.0f%% dropped (%d/%d received)", w.LossPct, w.Received, w.Sent)
		if w.RTT != nil {
			s += fmt.Sprintf(", rtt min/p50/p90/max %.2f/%.2f/%.2f/%.2f ms, first %.2f ms", w.RTT.Min, w.RTT.P50, w.RTT.P90, w.RTT.Max, w.FirstRTTms)
		}
		for _, o := range w.Outages {
			if o.End > 0 {
				s += fmt.Sprintf("; outage %.2f–%.2fs (%.0f ms, %d lost)", o.Start, o.End, (o.End-o.Start)*1000, o.Lost)
			} else {
				s += fmt.Sprintf("; outage from %.2fs to the end (%d lost)", o.Start, o.Lost)
			}
		}
	case WorkStream, WorkUDP:
		s += fmt.Sprintf(": %.1f%% dropped (%d/%d received), %.3f Mbit/s", w.LossPct, w.Received, w.Sent, w.Throughput/1e6)
		if w.OneWay != nil {
			s += fmt.Sprintf(", one-way p50/p99 %.2f/%.2f ms", w.OneWay.P50, w.OneWay.P99)
		}
	case WorkCapsule:
		if c := w.Capsule; c != nil {
			s += fmt.Sprintf(": placed at %.2fs, %d records in %.3fs (%.0f/s), %d acks (W=%d)", c.CreatedS, c.Records, c.WriteS, c.RecordsPerSec, c.Acks, c.W)
			for _, k := range sortedKeys(c.ReplicationLagMS) {
				s += fmt.Sprintf("; %s lag %.1f ms", k, c.ReplicationLagMS[k])
			}
			for _, k := range sortedKeys(c.Reads) {
				rd := c.Reads[k]
				s += fmt.Sprintf("; %s read %d in %.1f ms", k, rd.Records, rd.MS)
				if rd.Err != "" {
					s += " (" + rd.Err + ")"
				}
			}
		}
	}
	if w.Note != "" {
		s += "; " + w.Note
	}
	if w.Err != "" {
		s += " — error: " + w.Err
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
