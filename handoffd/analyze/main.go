// Command analyze says where the bytes of a handoff dataset are
// (docs/HANDOFF.md §8, "Where the bytes are"). It replays the sender's dedup
// (zero blocks, blocks of either base, blocks already sent: one table across
// disk and memory) over DIR/{disk,mem}-{base,mod}.img in image order, then
// classifies the unique blocks (disk: free in the modified file system or
// the file that owns them, by debugfs; memory: what the page looks like),
// writes the unique stream to OUT/unique.bin (for xz -9 / zstd -19 as one
// stream) and measures what more dedup and other compression choices could
// find: 512-byte sub-block matches, content-defined chunks, XOR against the
// base block only where it shrinks the block, blob size and order.
//
//	nice -n 10 go run ./handoffd/analyze -data /var/tmp/gdpnet-handoff-data -out /tmp/hand
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

const bs = 4096

type blk struct {
	img int // 0 disk, 1 memory
	n   int64
}

func main() {
	data := flag.String("data", "/var/tmp/gdpnet-handoff-data", "dataset directory")
	out := flag.String("out", "/tmp/hand", "output directory (unique.bin)")
	flag.Parse()
	if err := run(*data, *out); err != nil {
		fmt.Fprintln(os.Stderr, "analyze:", err)
		os.Exit(1)
	}
}

var seed = maphash.MakeSeed()

func h64(b []byte) uint64 { return maphash.Bytes(seed, b) }

func run(dir, out string) error {
	read := func(n string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, n)) }
	var imgs [2][2][]byte // [disk,mem][base,mod]
	for i, n := range []string{"disk", "mem"} {
		for j, k := range []string{"base", "mod"} {
			b, err := read(n + "-" + k + ".img")
			if err != nil {
				return err
			}
			imgs[i][j] = b
		}
	}
	zero := sha256.Sum256(make([]byte, bs))
	index := map[[32]byte]bool{}
	for i := range 2 {
		b := imgs[i][0]
		for o := 0; o+bs <= len(b); o += bs {
			index[sha256.Sum256(b[o:o+bs])] = true
		}
	}
	sent := map[[32]byte]bool{}
	var changed, nzero, nbase, ndup [2]int64
	var uniq []blk
	for i := range 2 {
		base, mod := imgs[i][0], imgs[i][1]
		for o := 0; o+bs <= len(mod); o += bs {
			if o+bs <= len(base) && bytes.Equal(base[o:o+bs], mod[o:o+bs]) {
				continue
			}
			changed[i]++
			h := sha256.Sum256(mod[o : o+bs])
			switch {
			case h == zero:
				nzero[i]++
			case index[h]:
				nbase[i]++
			case sent[h]:
				ndup[i]++
			default:
				sent[h] = true
				uniq = append(uniq, blk{i, int64(o / bs)})
			}
		}
	}
	mb := func(blocks int64) float64 { return float64(blocks*bs) / 1e6 }
	var nu [2]int64
	for _, u := range uniq {
		nu[u.img]++
	}
	fmt.Printf("== dedup (image order)\n")
	for i, n := range []string{"disk", "memory"} {
		fmt.Printf("%-6s changed %6d blocks %7.1f MB: zero %d, base %d (%.1f MB), dup %d (%.1f MB), unique %d (%.1f MB)\n",
			n, changed[i], mb(changed[i]), nzero[i], nbase[i], mb(nbase[i]), ndup[i], mb(ndup[i]), nu[i], mb(nu[i]))
	}
	get := func(u blk) []byte { return imgs[u.img][1][u.n*bs : (u.n+1)*bs] }
	baseOf := func(u blk) []byte {
		b := imgs[u.img][0]
		if (u.n+1)*bs > int64(len(b)) {
			return nil
		}
		return b[u.n*bs : (u.n+1)*bs]
	}
	// The unique stream, image order.
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Join(out, "unique.bin")); err != nil || fi.Size() != int64(len(uniq))*bs {
		f, err := os.Create(filepath.Join(out, "unique.bin"))
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		for _, u := range uniq {
			w.Write(get(u))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		f.Close()
	}
	fmt.Printf("wrote %s: %d blocks, %.1f MB\n", filepath.Join(out, "unique.bin"), len(uniq), mb(int64(len(uniq))))

	enc := func(level zstd.EncoderLevel, window int) *zstd.Encoder {
		opts := []zstd.EOption{zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false)}
		if window > 0 {
			opts = append(opts, zstd.WithWindowSize(window))
		}
		e, err := zstd.NewWriter(nil, opts...)
		if err != nil {
			panic(err)
		}
		return e
	}
	z3 := enc(zstd.SpeedDefault, 0)
	zb := enc(zstd.SpeedBestCompression, 0)
	// size of blocks concatenated in groups of `blob` bytes, each compressed alone
	blobbed := func(e *zstd.Encoder, bl []blk, blob int, xor map[blk]bool) int64 {
		var total int64
		buf := make([]byte, 0, blob)
		var dst []byte
		flush := func() {
			if len(buf) > 0 {
				dst = e.EncodeAll(buf, dst[:0])
				total += int64(min(len(dst), len(buf)))
				buf = buf[:0]
			}
		}
		x := make([]byte, bs)
		for _, u := range bl {
			d := get(u)
			if xor[u] {
				b := baseOf(u)
				for j := range x {
					x[j] = d[j] ^ b[j]
				}
				d = x
			}
			buf = append(buf, d...)
			if len(buf) >= blob {
				flush()
			}
		}
		flush()
		return total
	}

	// ---- disk: free or owned by which file
	free, err := freeBlocks(filepath.Join(dir, "disk-mod.img"))
	if err != nil {
		return err
	}
	var diskU []blk
	var freeList []int64
	for _, u := range uniq {
		if u.img == 0 {
			diskU = append(diskU, u)
			if free[u.n] {
				freeList = append(freeList, u.n)
			}
		}
	}
	owner, err := owners(filepath.Join(dir, "disk-mod.img"), diskU, free)
	if err != nil {
		return err
	}
	cats := map[string][]blk{}
	for _, u := range diskU {
		c := "free (unallocated in disk-mod)"
		if !free[u.n] {
			c = category(owner[u.n])
		}
		cats[c] = append(cats[c], u)
	}
	fmt.Printf("\n== disk unique blocks by owner (zstd-3 and zstd-best in 1 MiB blobs, image order)\n")
	printCats(cats, func(b []blk) (int64, int64) { return blobbed(z3, b, 1<<20, nil), blobbed(zb, b, 1<<20, nil) })

	// ---- memory: what the unique pages look like, and 512-byte matches against the disks
	sec := map[uint64]bool{} // 512-byte sectors of both disks (4 KiB-aligned blocks cut in 8)
	zsec := h64(make([]byte, 512))
	for _, d := range [][]byte{imgs[0][0], imgs[0][1]} {
		for o := 0; o+512 <= len(d); o += 512 {
			sec[h64(d[o:o+512])] = true
		}
	}
	mcats := map[string][]blk{}
	var memSecMatch, memSecZero int64
	for _, u := range uniq {
		if u.img != 1 {
			continue
		}
		p := get(u)
		m, z := 0, 0
		tar := false
		for s := 0; s < bs; s += 512 {
			hs := h64(p[s : s+512])
			switch {
			case hs == zsec:
				z++
			case sec[hs]:
				m++
			}
			if bytes.Equal(p[s+257:s+262], []byte("ustar")) {
				tar = true
			}
		}
		memSecMatch += int64(m)
		memSecZero += int64(z)
		var c string
		switch {
		case m >= 4 || (tar && m >= 1):
			c = "file content at a 512-byte shift (tar in RAM): >= half its sectors on a disk"
		case m > 0:
			c = "some sectors on a disk"
		case zeros(p) >= bs/2:
			c = "mostly zero bytes"
		case printable(p) >= bs*9/10:
			c = "text"
		default:
			c = "other binary (heap, page tables, kernel)"
		}
		mcats[c] = append(mcats[c], u)
	}
	fmt.Printf("\n== memory unique pages\n")
	printCats(mcats, func(b []blk) (int64, int64) { return blobbed(z3, b, 1<<20, nil), blobbed(zb, b, 1<<20, nil) })
	fmt.Printf("memory unique pages: %d non-zero 512-byte sectors (%.1f MB) equal a 512-byte sector of a disk image; %d zero sectors\n",
		memSecMatch, float64(memSecMatch*512)/1e6, memSecZero)

	// ---- (a) sub-block dedup over the whole unique stream
	// sectors of the bases (both) and of earlier unique blocks, at 512-byte alignment
	secB := map[uint64]bool{}
	for i := range 2 {
		d := imgs[i][0]
		for o := 0; o+512 <= len(d); o += 512 {
			secB[h64(d[o:o+512])] = true
		}
	}
	var inBase, earlier [2]int64
	seen := map[uint64]bool{}
	for _, u := range uniq {
		p := get(u)
		for s := 0; s < bs; s += 512 {
			hs := h64(p[s : s+512])
			if hs == zsec {
				continue
			}
			if secB[hs] {
				inBase[u.img]++
			} else if seen[hs] {
				earlier[u.img]++
			}
			seen[hs] = true
		}
	}
	// the disks' sectors too (mod), for memory pages holding disk-mod file content
	var memInDiskMod int64
	secM := map[uint64]bool{}
	d := imgs[0][1]
	for o := 0; o+512 <= len(d); o += 512 {
		secM[h64(d[o:o+512])] = true
	}
	for _, u := range uniq {
		if u.img != 1 {
			continue
		}
		p := get(u)
		for s := 0; s < bs; s += 512 {
			hs := h64(p[s : s+512])
			if hs != zsec && !secB[hs] && secM[hs] {
				memInDiskMod++
			}
		}
	}
	fmt.Printf("\n== (a) 512-byte sub-block dedup of the unique stream (non-zero sectors)\n")
	for i, n := range []string{"disk", "memory"} {
		fmt.Printf("%-6s: %7.1f MB equal a sector of a base, %7.1f MB an earlier unique sector\n", n, float64(inBase[i]*512)/1e6, float64(earlier[i]*512)/1e6)
	}
	fmt.Printf("memory: %.1f MB equal a sector of disk-mod (not of a base; sent earlier in the stream when disk goes first)\n", float64(memInDiskMod*512)/1e6)

	// content-defined chunks (gear hash, avg ~2 KiB, 256 B..16 KiB) of the unique stream against the bases' chunks
	cdcB := map[[32]byte]bool{}
	for i := range 2 {
		cdc(imgs[i][0], func(c []byte) { cdcB[sha256.Sum256(c)] = true })
	}
	cdcSeen := map[[32]byte]bool{}
	var cdcBase, cdcEarlier, cdcAll int64
	ustream, err := os.ReadFile(filepath.Join(out, "unique.bin"))
	if err != nil {
		return err
	}
	cdc(ustream, func(c []byte) {
		h := sha256.Sum256(c)
		cdcAll += int64(len(c))
		if allZero(c) {
			return
		}
		if cdcB[h] {
			cdcBase += int64(len(c))
		} else if cdcSeen[h] {
			cdcEarlier += int64(len(c))
		}
		cdcSeen[h] = true
	})
	fmt.Printf("CDC (gear, ~2 KiB chunks): %.1f MB of %.1f MB in a base's chunks, %.1f MB in earlier chunks of the stream\n",
		float64(cdcBase)/1e6, float64(cdcAll)/1e6, float64(cdcEarlier)/1e6)

	// ---- (b) XOR against the same-offset base block only where it shrinks the block
	zf := enc(zstd.SpeedFastest, 0)
	xorSel := map[blk]bool{}
	var xorTried, xorChosen, saveOracle int64
	x := make([]byte, bs)
	var dst []byte
	for _, u := range uniq {
		b := baseOf(u)
		if b == nil {
			continue
		}
		p := get(u)
		xorTried++
		for j := range x {
			x[j] = p[j] ^ b[j]
		}
		dst = zf.EncodeAll(p, dst[:0])
		a := len(dst)
		dst = zf.EncodeAll(x, dst[:0])
		if len(dst) < a*9/10 {
			xorSel[u] = true
			xorChosen++
			saveOracle += int64(a - len(dst))
		}
	}
	fmt.Printf("\n== (b) XOR where it shrinks the block (zstd-1 of the block alone vs of its XOR; chosen when 10%% smaller)\n")
	fmt.Printf("tried %d blocks, XOR chosen for %d; per-block zstd-1 saving %.1f MB\n", xorTried, xorChosen, float64(saveOracle)/1e6)
	plain := blobbed(z3, uniq, 1<<20, nil)
	withX := blobbed(z3, uniq, 1<<20, xorSel)
	fmt.Printf("unique stream, zstd-3 in 1 MiB blobs: plain %.2f MB, with the chosen XORs %.2f MB\n", float64(plain)/1e6, float64(withX)/1e6)

	// ---- (c) blob size, order, window
	shuf := append([]blk(nil), uniq...)
	r := rand.New(rand.NewPCG(1, 2))
	// the sender's order: 1 MiB chunks shuffled, blocks shuffled within a chunk
	type chunk struct{ a, b int }
	var chunks []chunk
	for i := 0; i < len(shuf); {
		j := i + 1
		for j < len(shuf) && shuf[j].img == shuf[i].img && shuf[j].n/256 == shuf[i].n/256 {
			j++
		}
		chunks = append(chunks, chunk{i, j})
		i = j
	}
	r.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
	var order []blk
	for _, c := range chunks {
		part := append([]blk(nil), uniq[c.a:c.b]...)
		r.Shuffle(len(part), func(i, j int) { part[i], part[j] = part[j], part[i] })
		order = append(order, part...)
	}
	fmt.Printf("\n== (c) zstd of the unique stream by blob size and order\n")
	for _, bl := range []int{1 << 20, 8 << 20, 32 << 20} {
		fmt.Printf("blob %2d MiB: zstd-3 image order %.2f MB, sender order %.2f MB\n", bl>>20,
			float64(blobbed(z3, uniq, bl, nil))/1e6, float64(blobbed(z3, order, bl, nil))/1e6)
	}
	for _, bl := range []int{1 << 20, 8 << 20} {
		fmt.Printf("blob %2d MiB: zstd-best image order %.2f MB, sender order %.2f MB\n", bl>>20,
			float64(blobbed(zb, uniq, bl, nil))/1e6, float64(blobbed(zb, order, bl, nil))/1e6)
	}
	// one stream per lane (2 lanes, blobs dealt alternately), window 64 MiB, flushed per 1 MiB blob
	for _, lv := range []zstd.EncoderLevel{zstd.SpeedDefault, zstd.SpeedBestCompression} {
		for _, ord := range []struct {
			name string
			b    []blk
		}{{"image order", uniq}, {"sender order", order}} {
			var lanes [2]*bytes.Buffer
			var ws [2]*zstd.Encoder
			for l := range 2 {
				lanes[l] = &bytes.Buffer{}
				ws[l], _ = zstd.NewWriter(lanes[l], zstd.WithEncoderLevel(lv), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(64<<20), zstd.WithEncoderCRC(false))
			}
			n := 0
			for i, u := range ord.b {
				l := (i / 256) % 2
				ws[l].Write(get(u))
				n++
				if (i+1)%256 == 0 {
					ws[l].Flush()
				}
			}
			tot := 0
			for l := range 2 {
				ws[l].Close()
				tot += lanes[l].Len()
			}
			fmt.Printf("2 lanes, one zstd stream each (level %s, window 64 MiB, flushed per 1 MiB blob), %s: %.2f MB\n", lv, ord.name, float64(tot)/1e6)
		}
	}
	return nil
}

func printCats(cats map[string][]blk, size func([]blk) (int64, int64)) {
	type row struct {
		name string
		n    int
		z3   int64
		zb   int64
	}
	var rows []row
	var tn int
	var t3, tb int64
	for k, v := range cats {
		a, b := size(v)
		rows = append(rows, row{k, len(v), a, b})
		tn += len(v)
		t3 += a
		tb += b
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].zb > rows[j].zb })
	for i, r := range rows {
		if i >= 30 {
			break
		}
		fmt.Printf("  %7.1f MB raw  %7.2f MB zstd-3  %7.2f MB zstd-best  %s\n", float64(r.n*bs)/1e6, float64(r.z3)/1e6, float64(r.zb)/1e6, r.name)
	}
	fmt.Printf("  %7.1f MB raw  %7.2f MB zstd-3  %7.2f MB zstd-best  total\n", float64(tn*bs)/1e6, float64(t3)/1e6, float64(tb)/1e6)
}

func zeros(p []byte) int {
	n := 0
	for _, c := range p {
		if c == 0 {
			n++
		}
	}
	return n
}

func printable(p []byte) int {
	n := 0
	for _, c := range p {
		if c == '\n' || c == '\t' || (c >= 32 && c < 127) {
			n++
		}
	}
	return n
}

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

var gear = func() (g [256]uint64) {
	r := rand.New(rand.NewPCG(7, 7))
	for i := range g {
		g[i] = r.Uint64()
	}
	return
}()

// cdc cuts p into content-defined chunks (gear hash; a cut where the top 11
// bits are zero: ~2 KiB average, 256 B minimum, 16 KiB maximum).
func cdc(p []byte, emit func([]byte)) {
	const mask = uint64(0x7ff) << 53
	start := 0
	var h uint64
	for i := 0; i < len(p); i++ {
		h = h<<1 + gear[p[i]]
		n := i + 1 - start
		if (n >= 256 && h&mask == 0) || n >= 16<<10 {
			emit(p[start : i+1])
			start, h = i+1, 0
		}
	}
	if start < len(p) {
		emit(p[start:])
	}
}

// freeBlocks reads the block bitmap of an ext4 image (dumpe2fs).
func freeBlocks(img string) (map[int64]bool, error) {
	out, err := exec.Command("dumpe2fs", img).Output()
	if err != nil {
		return nil, fmt.Errorf("dumpe2fs: %w", err)
	}
	free := map[int64]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "Free blocks: ")
		if !ok {
			continue
		}
		for _, part := range strings.Split(rest, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			a, b, hasRange := strings.Cut(part, "-")
			x, err1 := strconv.ParseInt(a, 10, 64)
			y := x
			var err2 error
			if hasRange {
				y, err2 = strconv.ParseInt(b, 10, 64)
			}
			if err1 != nil || err2 != nil {
				continue
			}
			for k := x; k <= y; k++ {
				free[k] = true
			}
		}
	}
	return free, nil
}

// owners maps each allocated block of bl to the path of the inode owning it
// ("" for file-system metadata), by debugfs icheck and ncheck.
func owners(img string, bl []blk, free map[int64]bool) (map[int64]string, error) {
	var want []int64
	for _, u := range bl {
		if !free[u.n] {
			want = append(want, u.n)
		}
	}
	ino := map[int64]int64{}
	var sb strings.Builder
	for i := 0; i < len(want); i += 500 {
		sb.WriteString("icheck")
		for _, b := range want[i:min(i+500, len(want))] {
			sb.WriteString(" " + strconv.FormatInt(b, 10))
		}
		sb.WriteString("\n")
	}
	{
		o, err := debugfs(img, sb.String())
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(o, "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			b, err1 := strconv.ParseInt(f[0], 10, 64)
			in, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 == nil && err2 == nil {
				ino[b] = in
			}
		}
	}
	inos := map[int64]bool{}
	for _, in := range ino {
		inos[in] = true
	}
	sb.Reset()
	n := 0
	for in := range inos {
		if n%500 == 0 {
			sb.WriteString("\nncheck")
		}
		n++
		sb.WriteString(" " + strconv.FormatInt(in, 10))
	}
	sb.WriteString("\n")
	o, err := debugfs(img, sb.String())
	if err != nil {
		return nil, err
	}
	path := map[int64]string{8: "<journal>", 7: "<resize inode>"}
	for _, line := range strings.Split(o, "\n") {
		in, p, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(in), 10, 64)
		if err == nil {
			if _, had := path[n]; !had {
				path[n] = "/" + strings.TrimLeft(p, "/")
			}
		}
	}
	res := map[int64]string{}
	for _, b := range want {
		in, ok := ino[b]
		if !ok {
			res[b] = "<metadata: inode tables, bitmaps, directories' index>"
			continue
		}
		if p, ok := path[in]; ok {
			res[b] = p
		} else {
			res[b] = fmt.Sprintf("<inode %d>", in)
		}
	}
	return res, nil
}

func debugfs(img, cmds string) (string, error) {
	f, err := os.CreateTemp("", "analyze-debugfs-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	f.WriteString(cmds)
	f.Close()
	out, err := exec.Command("debugfs", "-f", f.Name(), img).Output()
	if err != nil {
		return "", fmt.Errorf("debugfs: %w", err)
	}
	return string(out), nil
}

// category groups a path for the report.
func category(p string) string {
	prefixes := []string{
		"/var/lib/apt/lists/", "/var/cache/apt/", "/var/lib/dpkg/", "/var/log/", "/home/dev/src/.git/", "/home/dev/src/",
		"/usr/lib/python3", "/usr/lib/git-core/", "/usr/share/perl", "/usr/lib/x86_64-linux-gnu/perl",
		"/usr/lib/x86_64-linux-gnu/", "/usr/share/doc/", "/usr/share/locale/", "/usr/share/", "/usr/bin/", "/usr/lib/", "/etc/",
	}
	if strings.HasPrefix(p, "<") {
		return p
	}
	for _, pre := range prefixes {
		if strings.HasPrefix(p, pre) {
			return pre
		}
	}
	return "other: " + filepath.Dir(p)
}
