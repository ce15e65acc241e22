package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	capfs "github.com/gdpnet/gdpnet/caapi/fs"
	"github.com/gdpnet/gdpnet/caapi/fs/mount"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// fsCmd is `gdp fs`: files in a capsule (caapi/fs). It reaches the
// overlay as `gdp capsule` does (the same connection flags and --config).
type fsCmd struct {
	capsuleCmd
	server    string
	at        uint64
	parallel  int
	readAhead int
	bulk      int
}

func init() {
	fc := &fsCmd{}
	cmd := &cobra.Command{
		Use:   "fs",
		Short: "Files in a capsule: put, get, cat, ls, log, mkdir, rm, and a read-only FUSE mount",
		Long: `fs keeps files in a capsule (docs/FILES.md): each file version is a manifest
record naming its chunk records and their hashes; directories follow from
the paths (mkdir records an empty one); every version stays readable.
Reads verify every chunk against the writer-signed heartbeats and the
manifest before a byte is returned, and move to another replica when one
serves a record that fails.

Create the capsule first with ` + "`gdp capsule create`" + `; put with its writer key.
The connection flags and --config are those of ` + "`gdp capsule`" + `.`,
		Example: `  gdp capsule create --owner alice --writer alice-writer --servers $S1,$S2 --w 2   # prints $CAPSULE
  gdp fs put $CAPSULE model.bin models/model.bin --writer alice-writer
  gdp fs ls $CAPSULE models
  gdp fs mount $CAPSULE /mnt/models`,
	}
	cmd.PersistentFlags().StringVarP(&fc.cfgPath, "config", "c", "", "connection settings (YAML)")
	cmd.PersistentFlags().BoolVar(&fc.json, "json", false, "print JSON")
	cmd.PersistentFlags().DurationVar(&fc.timeout, "timeout", 30*time.Minute, "give up after this long")
	fc.attach.flags(cmd)
	for _, f := range []string{"router", "router-name", "admin", "keystore", "identity", "member", "domain"} {
		cmd.PersistentFlags().AddFlag(cmd.Flags().Lookup(f))
	}
	cmd.AddCommand(fc.putCmd(), fc.getCmd(), fc.catCmd(), fc.lsCmd(), fc.logCmd(), fc.mkdirCmd(), fc.rmCmd(), fc.mountCmd())
	addCommand(cmd)
}

// readFlags are the flags of the commands that read.
func (fc *fsCmd) readFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&fc.server, "server", "", "read from this replica first (default: the nearest)")
	cmd.Flags().Uint64Var(&fc.at, "at", 0, "show the tree as of this capsule seqno (default: the newest)")
	cmd.Flags().IntVar(&fc.parallel, "parallel", 8, "chunk reads in flight")
	cmd.Flags().IntVar(&fc.readAhead, "read-ahead", 16, "chunks fetched ahead of a sequential reader")
	cmd.Flags().IntVar(&fc.bulk, "bulk", 0, "read runs of up to this many chunks over one bulk stream to the replica (QUIC over names; 0: one READ per chunk; see docs/FILES.md §5)")
}

// openFS connects and reads the tree of capsule arg.
// openFS connects and opens the capsule's tree. With untilDone (the mount)
// the connection ignores Ctrl-C and lasts until done: the caller handles
// the signals.
func (fc *fsCmd) openFS(cmd *cobra.Command, arg string, untilDone bool) (context.Context, *capfs.FS, func(), error) {
	name, err := pdu.ParseName(arg)
	if err != nil {
		return nil, nil, nil, err
	}
	opts := capfs.Options{At: fc.at, Parallel: fc.parallel, ReadAhead: fc.readAhead, Bulk: fc.bulk}
	if fc.server != "" {
		if opts.Server, err = pdu.ParseName(fc.server); err != nil {
			return nil, nil, nil, fmt.Errorf("--server: %w", err)
		}
	}
	var (
		ctx  context.Context
		caps *client.CapsuleClient
		done func()
	)
	if untilDone {
		ctx, caps, _, done, err = fc.sessionUntilDone(cmd)
	} else {
		ctx, caps, _, done, err = fc.session(cmd, false)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	f, err := capfs.Open(ctx, caps, name, opts)
	if err != nil {
		done()
		return nil, nil, nil, err
	}
	if n := f.Stats.Skipped.Load(); n > 0 {
		// Session 20: another program's records after the files (an SDK
		// writer with the capsule's writer key) are skipped, not fatal.
		fmt.Fprintf(cmd.ErrOrStderr(), "note: skipped the %d newest records of %s: they are not files records "+
			"(written with the writer key by another program); every file and version before them reads as usual\n", n, name)
	}
	return ctx, f, done, nil
}

// openWriter connects, takes the writer lock and opens the files writer.
func (fc *fsCmd) openWriter(cmd *cobra.Command, arg, writer string) (context.Context, *capfs.Writer, func(), error) {
	name, err := pdu.ParseName(arg)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, caps, at, done, err := fc.session(cmd, false)
	if err != nil {
		return nil, nil, nil, err
	}
	wid, err := at.ks.Load(writer)
	if err != nil {
		done()
		return nil, nil, nil, fmt.Errorf("writer %q: %w", writer, err)
	}
	unlock, err := lockWriter(at.ks.Dir(), name)
	if err != nil {
		done()
		return nil, nil, nil, err
	}
	if in, err := caps.Info(ctx, name, name); err == nil {
		warnExpiry(cmd, in)
	}
	w, err := capfs.NewWriter(ctx, caps, name, wid.Key, capfs.WriterOptions{})
	if err != nil {
		unlock()
		done()
		return nil, nil, nil, err
	}
	return ctx, w, func() { _ = w.Close(ctx); unlock(); done() }, nil
}

// versionJSON is a file version as the commands print it.
type versionJSON struct {
	Path    string `json:"path"`
	Version uint64 `json:"version"`
	Type    string `json:"type"`
	Size    uint64 `json:"size"`
	Mode    string `json:"mode,omitempty"`
	MTime   string `json:"mtime,omitempty"`
	Written string `json:"written,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
}

func typeName(t uint8) string {
	switch t {
	case capfs.TypeFile:
		return "file"
	case capfs.TypeDir:
		return "dir"
	case capfs.TypeRemoved:
		return "removed"
	}
	return "?"
}

func toVersionJSON(v *capfs.Version) versionJSON {
	out := versionJSON{Path: v.Path, Version: v.Seqno, Type: typeName(v.Type), Size: v.Size}
	if v.Type == capfs.TypeFile {
		out.Mode = fmt.Sprintf("%04o", v.Mode)
		out.SHA256 = hex.EncodeToString(v.SHA256)
	}
	if v.MTime != 0 {
		out.MTime = time.Unix(0, v.MTime).UTC().Format(time.RFC3339Nano)
	}
	if !v.Time.IsZero() {
		out.Written = v.Time.UTC().Format(time.RFC3339Nano)
	}
	return out
}

func (fc *fsCmd) putCmd() *cobra.Command {
	var writer string
	var pf *progressFlags
	cmd := &cobra.Command{
		Use:   "put CAPSULE SRC [DST] --writer ALIAS",
		Short: "Store a file (or a directory's files) as a new version",
		Long: `put writes the local file SRC under path DST (default: SRC's base name) as a
new version, in chunks of ` + fmt.Sprint(capfs.ChunkSize) + ` bytes, and returns once the capsule's
W replicas hold it. SRC - reads stdin (DST is then required). A directory
SRC puts every regular file below it under DST/. It holds the capsule's
writer lock beside the keystore while it runs.`,
		Example: `  gdp fs put $CAPSULE model.bin models/model.bin --writer alice-writer
  gdp fs put $CAPSULE ./dataset data --writer alice-writer
  curl -s https://example.org/x.csv | gdp fs put $CAPSULE - x.csv --writer alice-writer`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			src := args[1]
			dst := ""
			if len(args) == 3 {
				dst = args[2]
			}
			type job struct {
				local, remote string
				size          int64
				mode          os.FileMode
				mtime         time.Time
			}
			var jobs []job
			var total int64
			switch st, err := os.Stat(src); {
			case src == "-":
				if dst == "" {
					return fmt.Errorf("put from stdin: give DST")
				}
				jobs = append(jobs, job{local: "-", remote: dst})
			case err != nil:
				return err
			case st.IsDir():
				if dst == "" {
					dst = filepath.Base(filepath.Clean(src))
				}
				err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
					if err != nil || !d.Type().IsRegular() {
						return err
					}
					rel, err := filepath.Rel(src, p)
					if err != nil {
						return err
					}
					info, err := d.Info()
					if err != nil {
						return err
					}
					jobs = append(jobs, job{p, path.Join(dst, filepath.ToSlash(rel)), info.Size(), info.Mode(), info.ModTime()})
					total += info.Size()
					return nil
				})
				if err != nil {
					return err
				}
			default:
				if dst == "" {
					dst = filepath.Base(src)
				}
				jobs = append(jobs, job{src, dst, st.Size(), st.Mode(), st.ModTime()})
				total = st.Size()
			}
			for i := range jobs {
				p, err := capfs.CleanPath(jobs[i].remote)
				if err != nil || p == "" {
					return fmt.Errorf("destination %q: %w", jobs[i].remote, capfs.ErrBadPath)
				}
				jobs[i].remote = p
			}
			ctx, w, done, err := fc.openWriter(cmd, args[0], writer)
			if err != nil {
				return err
			}
			defer done()
			bar, err := pf.startBytes(cmd, fc.json, false, "put", total)
			if err != nil {
				return err
			}
			var out []versionJSON
			var before int64
			err = func() error {
				for _, j := range jobs {
					var r io.Reader = cmd.InOrStdin()
					var fh *os.File
					if j.local != "-" {
						if fh, err = os.Open(j.local); err != nil {
							return err
						}
						r = fh
					}
					base := before
					v, err := w.Put(ctx, j.remote, r, capfs.PutOptions{Mode: j.mode, MTime: j.mtime,
						Progress: func(n int64) { bar.set(base + n) }})
					if fh != nil {
						_ = fh.Close()
					}
					if err != nil {
						return err
					}
					before += int64(v.Size)
					out = append(out, toVersionJSON(v))
				}
				return nil
			}()
			bar.finish(err)
			if err != nil {
				return err
			}
			return fc.print(cmd.OutOrStdout(), out, func() {
				for _, v := range out {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\tversion %d\t%d bytes\tsha256 %s\n", v.Path, v.Version, v.Size, v.SHA256)
				}
			})
		},
	}
	cmd.Flags().StringVar(&writer, "writer", "", "keystore alias of the capsule's writer key")
	_ = cmd.MarkFlagRequired("writer")
	pf = addProgressFlags(cmd)
	return cmd
}

// openFile opens path p (version v, or the newest).
func openFile(ctx context.Context, f *capfs.FS, p string, v uint64) (*capfs.File, error) {
	if v != 0 {
		return f.OpenAt(ctx, p, v)
	}
	return f.Open(ctx, p)
}

func (fc *fsCmd) getCmd() *cobra.Command {
	var version uint64
	var pf *progressFlags
	cmd := &cobra.Command{
		Use:   "get CAPSULE PATH [OUT]",
		Short: "Copy a file (any version) out of the capsule, verified",
		Long: `get copies the newest version of PATH (or --version N, a version from
` + "`gdp fs log`" + `) to OUT (default: PATH's base name; - for stdout). Chunks are
fetched in parallel ahead of the writer; each is verified before it is
written, and the whole content is checked against the manifest's SHA-256.
OUT is written under a temporary name and renamed when complete.`,
		Example: `  gdp fs get $CAPSULE models/model.bin
  gdp fs get $CAPSULE models/model.bin old.bin --version 1234`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := path.Base(args[1])
			if len(args) == 3 {
				out = args[2]
			}
			ctx, f, done, err := fc.openFS(cmd, args[0], false)
			if err != nil {
				return err
			}
			defer done()
			fl, err := openFile(ctx, f, args[1], version)
			if err != nil {
				return err
			}
			defer fl.Close()
			var w io.Writer = cmd.OutOrStdout()
			var tmp *os.File
			if out != "-" {
				if tmp, err = os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".part*"); err != nil {
					return err
				}
				defer func() {
					if tmp != nil {
						_ = tmp.Close()
						_ = os.Remove(tmp.Name())
					}
				}()
				w = tmp
			}
			bar, err := pf.startBytes(cmd, fc.json, out == "-", "get", fl.Size())
			if err != nil {
				return err
			}
			start := time.Now()
			n, err := fl.WriteToContext(ctx, &countWriter{w: w, bar: bar})
			bar.finish(err)
			if err != nil {
				return err
			}
			if tmp != nil {
				if err := tmp.Sync(); err != nil {
					return err
				}
				if err := tmp.Close(); err != nil {
					return err
				}
				if err := os.Rename(tmp.Name(), out); err != nil {
					return err
				}
				tmp = nil
			}
			el := time.Since(start)
			v := fl.Version()
			res := struct {
				versionJSON
				Out     string  `json:"out"`
				Seconds float64 `json:"seconds"`
				MBps    float64 `json:"mb_per_s"`
			}{toVersionJSON(v), out, el.Seconds(), float64(n) / 1e6 / el.Seconds()}
			if out == "-" {
				return nil
			}
			return fc.print(cmd.OutOrStdout(), res, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s version %d: %d bytes to %s in %s (%.1f MB/s), verified\n",
					v.Path, v.Seqno, n, out, el.Round(time.Millisecond), res.MBps)
			})
		},
	}
	cmd.Flags().Uint64Var(&version, "version", 0, "the version to get (default: the newest)")
	fc.readFlags(cmd)
	pf = addProgressFlags(cmd)
	return cmd
}

// countWriter moves a progress bar as bytes are written.
type countWriter struct {
	w   io.Writer
	n   int64
	bar *progress
}

func (c *countWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n += int64(k)
	c.bar.set(c.n)
	return k, err
}

func (fc *fsCmd) catCmd() *cobra.Command {
	var version uint64
	cmd := &cobra.Command{
		Use:     "cat CAPSULE PATH",
		Short:   "Print a file (any version) to stdout, verified",
		Example: `  gdp fs cat $CAPSULE notes/todo.txt --version 42`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, f, done, err := fc.openFS(cmd, args[0], false)
			if err != nil {
				return err
			}
			defer done()
			fl, err := openFile(ctx, f, args[1], version)
			if err != nil {
				return err
			}
			defer fl.Close()
			_, err = fl.WriteToContext(ctx, cmd.OutOrStdout())
			return err
		},
	}
	cmd.Flags().Uint64Var(&version, "version", 0, "the version to print (default: the newest)")
	fc.readFlags(cmd)
	return cmd
}

func (fc *fsCmd) lsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls CAPSULE [DIR]",
		Short: "List a directory (as of --at SEQNO for an older tree)",
		Long: `ls lists DIR (default: the root): one line per entry, type, size, version,
modification time and name; directories end in /.`,
		Example: `  gdp fs ls $CAPSULE models
  gdp fs ls $CAPSULE --at 1200 --json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := ""
			if len(args) == 2 {
				dir = args[1]
			}
			_, f, done, err := fc.openFS(cmd, args[0], false)
			if err != nil {
				return err
			}
			defer done()
			es, err := f.ReadDir(dir)
			if err != nil {
				return err
			}
			out := make([]versionJSON, 0, len(es))
			for _, e := range es {
				if e.Version != nil {
					out = append(out, toVersionJSON(e.Version))
				} else {
					out = append(out, versionJSON{Path: e.Path, Type: "dir"})
				}
			}
			return fc.print(cmd.OutOrStdout(), out, func() {
				for i, e := range es {
					name, v := e.Name, out[i]
					if e.Type == capfs.TypeDir {
						fmt.Fprintf(cmd.OutOrStdout(), "d\t-\t-\t-\t%s/\n", name)
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), "-\t%d\t%d\t%s\t%s\n", v.Size, v.Version, v.MTime, name)
				}
			})
		},
	}
	fc.readFlags(cmd)
	return cmd
}

func (fc *fsCmd) logCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "log CAPSULE PATH",
		Short:   "List every version of a path, newest first",
		Example: `  gdp fs log $CAPSULE models/model.bin`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, f, done, err := fc.openFS(cmd, args[0], false)
			if err != nil {
				return err
			}
			defer done()
			vs, err := f.Log(args[1])
			if err != nil {
				return err
			}
			out := make([]versionJSON, 0, len(vs))
			for _, v := range vs {
				out = append(out, toVersionJSON(v))
			}
			return fc.print(cmd.OutOrStdout(), out, func() {
				for _, v := range out {
					fmt.Fprintf(cmd.OutOrStdout(), "%d\t%s\t%s\t%d\t%s\n", v.Version, v.Written, v.Type, v.Size, v.SHA256)
				}
			})
		},
	}
	fc.readFlags(cmd)
	return cmd
}

func (fc *fsCmd) mkdirCmd() *cobra.Command {
	var writer string
	cmd := &cobra.Command{
		Use:     "mkdir CAPSULE PATH --writer ALIAS",
		Short:   "Record an (empty) directory",
		Example: `  gdp fs mkdir $CAPSULE results --writer alice-writer`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, w, done, err := fc.openWriter(cmd, args[0], writer)
			if err != nil {
				return err
			}
			defer done()
			v, err := w.Mkdir(ctx, args[1])
			if err != nil {
				return err
			}
			return fc.print(cmd.OutOrStdout(), toVersionJSON(v), func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s/\tversion %d\n", v.Path, v.Seqno)
			})
		},
	}
	cmd.Flags().StringVar(&writer, "writer", "", "keystore alias of the capsule's writer key")
	_ = cmd.MarkFlagRequired("writer")
	return cmd
}

func (fc *fsCmd) rmCmd() *cobra.Command {
	var writer string
	cmd := &cobra.Command{
		Use:   "rm CAPSULE PATH --writer ALIAS",
		Short: "Record that a path is gone (its versions stay readable)",
		Example: `  gdp fs rm $CAPSULE models/old.bin --writer alice-writer
  gdp fs get $CAPSULE models/old.bin --version 1234   # still there`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, w, done, err := fc.openWriter(cmd, args[0], writer)
			if err != nil {
				return err
			}
			defer done()
			v, err := w.Remove(ctx, args[1])
			if err != nil {
				return err
			}
			return fc.print(cmd.OutOrStdout(), toVersionJSON(v), func() {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\tversion %d\n", v.Path, v.Seqno)
			})
		},
	}
	cmd.Flags().StringVar(&writer, "writer", "", "keystore alias of the capsule's writer key")
	_ = cmd.MarkFlagRequired("writer")
	return cmd
}

func (fc *fsCmd) mountCmd() *cobra.Command {
	var allowOther bool
	var kernelRA int
	cmd := &cobra.Command{
		Use:   "mount CAPSULE DIR",
		Short: "Mount the capsule's files read-only (FUSE) until Ctrl-C",
		Long: `mount serves the capsule's tree (the newest, or --at SEQNO) at DIR as a
read-only FUSE file system, so unmodified programs read the files by path.
Every byte a read returns was verified; a chunk that fails verification at
every replica is EIO, an unknown path ENOENT, and any write EROFS. It runs
in the foreground until Ctrl-C or SIGTERM, then unmounts. A mount that is
busy then (a program has a file or its working directory in it) is
detached instead: gone from DIR at once, its open files served until they
are closed, then the command exits (Ctrl-C again: at once). Needs
/dev/fuse, and root or fusermount3 (Debian: apt-get install fuse3).`,
		Example: `  gdp fs mount $CAPSULE /mnt/models &
  sha256sum /mnt/models/model.bin
  kill %1   # unmounts`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, f, done, err := fc.openFS(cmd, args[0], true)
			if err != nil {
				return err
			}
			defer done()
			log, err := logging.New(logging.Config{}) // WARNs (a read refused, the readahead not set) to stderr
			if err != nil {
				return err
			}
			m, err := mount.New(args[1], f, mount.Options{AllowOther: allowOther, ReadAheadKB: kernelRA, Logger: log.Named("mount")})
			if err != nil {
				return err
			}
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			stderr := cmd.ErrOrStderr()
			fmt.Fprintf(stderr, "mounted %s at %s (read-only, tree as of seqno %d); Ctrl-C unmounts\n", f.Name(), args[1], f.Head())
			unmounted := make(chan struct{})
			go func() { m.Wait(); close(unmounted) }()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-unmounted: // fusermount -u from outside
			case <-sigs:
				if err := m.Close(); err != nil {
					// Busy: a program has a file or its working directory
					// in the mount. Exiting now would leave a dead mount
					// ("Transport endpoint is not connected") until
					// someone unmounts it by hand: detach it instead and
					// serve what is open until it is closed.
					if derr := m.Detach(); derr != nil {
						return fmt.Errorf("unmount %s: %w; and %v: stop the programs using it (fuser -vm %s), then umount %s", args[1], err, derr, args[1], args[1])
					}
					fmt.Fprintf(stderr, "%s is busy (a program has a file or directory open in it: fuser -vm %s shows which); detached: it is gone from %s, and the files open in it are served until they are closed. Ctrl-C again stops at once (their reads then fail)\n", args[1], args[1], args[1])
					select {
					case <-unmounted:
					case <-sigs:
						return fmt.Errorf("stopped with files of %s still open: their reads fail from now on", args[1])
					}
				} else {
					<-unmounted
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "unmounted %s (%d chunks, %d bytes read; %d failed reads, %d failovers)\n", args[1],
				f.Stats.Chunks.Load(), f.Stats.Bytes.Load(), f.Stats.BadReads.Load(), f.Stats.Failovers.Load())
			return nil
		},
	}
	cmd.Flags().BoolVar(&allowOther, "allow-other", false, "let other users read the mount")
	cmd.Flags().IntVar(&kernelRA, "kernel-read-ahead", 1024, "the kernel's readahead on the mount in KiB (its READ request size, up to 1 MiB; needs root); -1: the kernel's 128")
	fc.readFlags(cmd)
	return cmd
}

// refuseFilesCapsule refuses to write what (a record, a KV record) to a
// capsule whose first record is a files-capsule record: appended after
// the files, it would make every read of their tree fail (fs.ErrNotFS),
// for good. A capsule that cannot be read now is not refused here (the
// write then fails or not on its own).
func refuseFilesCapsule(ctx context.Context, caps *client.CapsuleClient, name pdu.Name, what string) error {
	rd, err := caps.NewReader(ctx, name, client.ReaderOptions{})
	if err != nil {
		return nil
	}
	recs, err := rd.Read(ctx, 1, 1)
	if err != nil || len(recs) == 0 || !capfs.IsRecord(recs[0].Data) {
		return nil
	}
	return fmt.Errorf("capsule %s holds files (its first record is a file record): %s in it would make its files unreadable; use gdp fs put for files, another capsule for other data", name, what)
}
