// Package mount serves a files capsule (caapi/fs) as a read-only FUSE
// file system, so unmodified programs read capsule files by path. Every
// byte a read returns was verified by caapi/fs (the writer-signed log and
// the file's manifest); a read that cannot be verified at any replica
// fails with EIO, an unknown path is ENOENT, and every write is EROFS.
package mount

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	capfs "github.com/gdpnet/gdpnet/caapi/fs"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// Options tunes a mount.
type Options struct {
	// Logger gets one WARN per read that failed verification (with the
	// path and the error); default: none.
	Logger *zap.Logger
	// AllowOther lets other users read the mount (needs user_allow_other
	// in /etc/fuse.conf for non-root).
	AllowOther bool
	// Debug logs every FUSE request to stderr.
	Debug bool
	// ReadAheadKB is the kernel's readahead on the mount, in KiB (the
	// read_ahead_kb of the mount's backing device in sysfs): how far
	// ahead of a sequential reader the kernel asks, and so the size of
	// its READ requests (at most 1 MiB each). Default 1024; -1 leaves the
	// kernel's own (128 KiB: eight times the requests). Setting it needs
	// root; without, a WARN and the kernel's value. caapi/fs fetches
	// fs.Options.ReadAhead chunks ahead of each request on its side.
	ReadAheadKB int
}

// defaultReadAheadKB is Options.ReadAheadKB's default: one request of the
// largest size the mount asks for (MaxWrite).
const defaultReadAheadKB = 1024

// Stats count what a mount refused.
type Stats struct {
	EIO     atomic.Uint64 // reads answered EIO (verification failed everywhere)
	Refused atomic.Uint64 // write attempts answered EROFS
	// Reads and ReadBytes count the kernel's READ requests and the bytes
	// they returned: ReadBytes/Reads is the request size the kernel uses
	// (its readahead and max_read, see New).
	Reads     atomic.Uint64
	ReadBytes atomic.Uint64
}

// Mount is a mounted files capsule.
type Mount struct {
	srv   *fuse.Server
	dir   string
	Stats *Stats
}

// cacheFor is how long the kernel may cache names and attributes: a mount
// shows one fixed state of the capsule, so they never change under it.
const cacheFor = time.Hour

// Mount mounts f read-only at dir. Unmount (or Close) undoes it.
func New(dir string, f *capfs.FS, opts Options) (*Mount, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	st := &Stats{}
	root := &node{f: f, st: st, log: opts.Logger, path: "", dir: true}
	ttl := cacheFor
	srv, err := gofs.Mount(dir, root, &gofs.Options{
		EntryTimeout: &ttl,
		AttrTimeout:  &ttl,
		MountOptions: fuse.MountOptions{
			FsName:      "gdp:" + f.Name().String(),
			Name:        "gdpfs",
			Options:     []string{"ro"},
			AllowOther:  opts.AllowOther,
			DirectMount: true,
			// Reads of up to 1 MiB per request (Linux 4.20+).
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			// Answers are bytes in memory: one writev to /dev/fuse.
			// Splicing them would copy them into a pipe first (and a
			// 1 MiB answer does not fit the default pipe-max-size).
			DisableSplice: true,
			Debug:         opts.Debug,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("mount %s at %s: %w", f.Name(), dir, err)
	}
	m := &Mount{srv: srv, dir: dir, Stats: st}
	if opts.ReadAheadKB == 0 {
		opts.ReadAheadKB = defaultReadAheadKB
	}
	applyReadAhead(dir, f.Name(), opts.ReadAheadKB, opts.Logger, setReadAhead)
	return m, nil
}

// applyReadAhead sets the kernel's readahead on the mount of capsule c at
// dir to kb KiB with set (kb ≤ 0: the kernel's is left alone), or says in
// one WARN what went wrong and what to do.
func applyReadAhead(dir string, c pdu.Name, kb int, log *zap.Logger, set func(string, int) error) {
	if kb <= 0 {
		return
	}
	if err := set(dir, kb); err != nil {
		log.Warn("kernel readahead on the mount not set: the kernel reads the files in 128 KiB requests, slower for large ones; run as root to set it, or pass --kernel-read-ahead -1 to keep the kernel's",
			logging.Capsule(c), zap.String("dir", dir), zap.Int("read_ahead_kb", kb), logging.Reason("read_ahead_not_set"), zap.Error(err))
	}
}

// ReadAheadPath is the sysfs file of the readahead of the file system
// mounted at dir (its backing device, a FUSE connection's "0:N").
func ReadAheadPath(dir string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "", fmt.Errorf("readahead of %s: %w", dir, err)
	}
	return fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)), nil
}

// setReadAhead sets the kernel's readahead on the mount at dir to kb KiB.
func setReadAhead(dir string, kb int) error {
	p, err := ReadAheadPath(dir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, []byte(strconv.Itoa(kb)+"\n"), 0); err != nil {
		return fmt.Errorf("set readahead: %w", err)
	}
	return nil
}

// Wait blocks until the file system is unmounted.
func (m *Mount) Wait() { m.srv.Wait() }

// Close unmounts. It fails (EBUSY) while a program has a file or
// directory of the mount open: then Detach.
func (m *Mount) Close() error { return m.srv.Unmount() }

// Detach unmounts lazily (umount -l): the mount leaves the directory tree
// at once, so no new program can open anything in it, and the kernel ends
// it when the last file open in it is closed; until then this process
// goes on serving those files, and Wait returns after. A process that
// exits instead leaves their reads failing (ENOTCONN), but no dead mount
// in the tree. Root detaches with umount2(MNT_DETACH), others with
// fusermount3 (or fusermount) -u -z.
func (m *Mount) Detach() error {
	if os.Geteuid() == 0 {
		if err := unix.Unmount(m.dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("detach %s: %w", m.dir, err)
		}
		return nil
	}
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		if bin, err = exec.LookPath("fusermount"); err != nil {
			return fmt.Errorf("detach %s: no fusermount3 or fusermount: %w", m.dir, err)
		}
	}
	if out, err := exec.Command(bin, "-u", "-z", m.dir).CombinedOutput(); err != nil {
		return fmt.Errorf("detach %s: %s -u -z: %w: %s", m.dir, bin, err, bytes.TrimSpace(out))
	}
	return nil
}

// node is a file or directory of the tree.
type node struct {
	gofs.Inode
	f    *capfs.FS
	st   *Stats
	log  *zap.Logger
	path string
	dir  bool
}

var (
	_ gofs.NodeLookuper  = (*node)(nil)
	_ gofs.NodeReaddirer = (*node)(nil)
	_ gofs.NodeGetattrer = (*node)(nil)
	_ gofs.NodeOpener    = (*node)(nil)
	_ gofs.NodeSetattrer = (*node)(nil)
	_ gofs.NodeCreater   = (*node)(nil)
	_ gofs.NodeMkdirer   = (*node)(nil)
	_ gofs.NodeUnlinker  = (*node)(nil)
	_ gofs.NodeRmdirer   = (*node)(nil)
	_ gofs.NodeRenamer   = (*node)(nil)
	_ gofs.NodeSymlinker = (*node)(nil)
	_ gofs.NodeLinker    = (*node)(nil)
	_ gofs.NodeMknoder   = (*node)(nil)
)

func (n *node) child(name string) string {
	if n.path == "" {
		return name
	}
	return n.path + "/" + name
}

// fill sets the attributes of entry e.
func fill(e capfs.Entry, a *fuse.Attr) {
	if e.Type == capfs.TypeDir {
		a.Mode = syscall.S_IFDIR | 0o555
		a.Nlink = 2
	} else {
		a.Mode = syscall.S_IFREG | 0o444
		a.Nlink = 1
		a.Size = uint64(e.Size())
		a.Blocks = (a.Size + 511) / 512
	}
	if e.Version != nil {
		if e.Type == capfs.TypeFile && e.Version.Mode&0o111 != 0 {
			a.Mode |= 0o111
		}
		t := time.Unix(0, e.Version.MTime)
		if e.Version.MTime == 0 {
			t = e.Version.Time
		}
		a.SetTimes(&t, &t, &t)
	}
	a.Blksize = capfs.ChunkSize
}

// Lookup implements NodeLookuper: ENOENT for a path the tree has not.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	e, err := n.f.Stat(n.child(name))
	if err != nil {
		return nil, syscall.ENOENT
	}
	fill(e, &out.Attr)
	mode := uint32(syscall.S_IFREG)
	if e.Type == capfs.TypeDir {
		mode = syscall.S_IFDIR
	}
	ch := &node{f: n.f, st: n.st, log: n.log, path: e.Path, dir: e.Type == capfs.TypeDir}
	return n.NewInode(ctx, ch, gofs.StableAttr{Mode: mode}), 0
}

// Readdir implements NodeReaddirer.
func (n *node) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	es, err := n.f.ReadDir(n.path)
	if err != nil {
		return nil, syscall.ENOENT
	}
	out := make([]fuse.DirEntry, 0, len(es))
	for _, e := range es {
		mode := uint32(syscall.S_IFREG)
		if e.Type == capfs.TypeDir {
			mode = syscall.S_IFDIR
		}
		out = append(out, fuse.DirEntry{Name: e.Name, Mode: mode})
	}
	return gofs.NewListDirStream(out), 0
}

// Getattr implements NodeGetattrer.
func (n *node) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	e, err := n.f.Stat(n.path)
	if err != nil {
		return syscall.ENOENT
	}
	fill(e, &out.Attr)
	return 0
}

// writeFlags are the open flags that would change a file.
const writeFlags = syscall.O_WRONLY | syscall.O_RDWR | syscall.O_TRUNC | syscall.O_APPEND | syscall.O_CREAT

// Open implements NodeOpener: read-only opens of files.
func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&writeFlags != 0 {
		return nil, 0, n.refuse()
	}
	if n.dir {
		return nil, 0, syscall.EISDIR
	}
	fl, err := n.f.Open(ctx, n.path)
	if err != nil {
		return nil, 0, n.errno(err)
	}
	// The content of a version never changes: the kernel may keep its
	// pages across opens.
	return &handle{n: n, fl: fl}, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *node) refuse() syscall.Errno {
	n.st.Refused.Add(1)
	return syscall.EROFS
}

// errno maps a read error: unknown paths ENOENT, everything else
// (verification failed at every replica, no replica answered) EIO.
func (n *node) errno(err error) syscall.Errno {
	if errors.Is(err, capfs.ErrNotExist) {
		return syscall.ENOENT
	}
	n.st.EIO.Add(1)
	n.log.Warn("read refused", zap.String("name", n.path), zap.String("capsule", n.f.Name().String()), zap.Error(err))
	return syscall.EIO
}

// The write operations: all EROFS.

func (n *node) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return n.refuse()
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, n.refuse()
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, n.refuse()
}

func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, n.refuse()
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno { return n.refuse() }

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno { return n.refuse() }

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return n.refuse()
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, n.refuse()
}

func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, n.refuse()
}

// handle is an open file.
type handle struct {
	n  *node
	fl *capfs.File
}

var (
	_ gofs.FileReader   = (*handle)(nil)
	_ gofs.FileReleaser = (*handle)(nil)
	_ gofs.FileWriter   = (*handle)(nil)
)

// Read implements FileReader: verified bytes, or EIO.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k, err := h.fl.ReadAtContext(ctx, dest, off)
	h.n.st.Reads.Add(1)
	h.n.st.ReadBytes.Add(uint64(k))
	if err != nil && ctx.Err() != nil {
		return nil, syscall.EINTR // the reader was interrupted
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, h.n.errno(err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

// Write implements FileWriter: EROFS.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return 0, h.n.refuse()
}

// Release implements FileReleaser.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	_ = h.fl.Close()
	return 0
}
