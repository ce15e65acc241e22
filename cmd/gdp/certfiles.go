package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// certFileDebounce is how long the certificate files must be quiet after a
// change before the daemon reloads: an installer that writes a file in
// several steps, or replaces several files, causes one reload.
const certFileDebounce = time.Second

// certFileWatch keeps a watchCertFiles on the files the daemon's running
// configuration names (Session 18): set, at start and after every reload
// that succeeded, moves the watch to the files the reloaded configuration
// names. Before, gdp capsuled, router and resolver watched the files they
// started with: a trusted_domains file a reload added was not watched (a
// replaced one was taken at the next SIGHUP only), and one it removed
// still raised reloads.
type certFileWatch struct {
	ctx    context.Context
	log    *zap.Logger
	reload chan<- os.Signal

	mu    sync.Mutex
	files []string
	stop  context.CancelFunc
}

func newCertFileWatch(ctx context.Context, log *zap.Logger, reload chan<- os.Signal) *certFileWatch {
	return &certFileWatch{ctx: ctx, log: log, reload: reload}
}

// set watches files (empty names skipped) instead of the ones before; the
// same set keeps the running watch.
func (w *certFileWatch) set(files ...string) {
	files = slices.DeleteFunc(slices.Clone(files), func(f string) bool { return f == "" })
	slices.Sort(files)
	files = slices.Compact(files)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stop != nil && slices.Equal(files, w.files) {
		return
	}
	if w.stop != nil {
		w.stop()
	}
	ctx, stop := context.WithCancel(w.ctx)
	w.files, w.stop = files, stop
	go watchCertFiles(ctx, w.log, files, w.reload)
}

// watchCertFiles watches the certificate files a daemon was started with
// (its membership, domain metadata, trusted domains, …) and, once they have
// been quiet for certFileDebounce after a change, puts a SIGHUP on reload:
// the daemon then takes the same reload path as `systemctl reload`. A bad
// new file is refused by that path (one ERROR line saying what to fix) and
// the running credentials stay in force.
//
// It watches the files' directories, not the files: an atomic install
// (write a temporary file, rename it over the old one) replaces the inode a
// file watch would follow. Empty names are skipped. It returns when ctx
// ends; if the watch cannot be set up it logs a WARN and returns (SIGHUP
// still works).
func watchCertFiles(ctx context.Context, log *zap.Logger, files []string, reload chan<- os.Signal) {
	want := map[string]bool{}
	dirs := map[string]bool{}
	for _, f := range files {
		if f == "" {
			continue
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			continue
		}
		want[abs] = true
		dirs[filepath.Dir(abs)] = true
	}
	if len(want) == 0 {
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("cannot watch the certificate files; reload with SIGHUP after replacing them", zap.Error(err))
		return
	}
	defer w.Close()
	for d := range dirs {
		if err := w.Add(d); err != nil {
			log.Warn("cannot watch a certificate directory; reload with SIGHUP after replacing its files",
				zap.String("dir", d), zap.Error(err))
		}
	}
	var (
		timer   *time.Timer
		fire    <-chan time.Time
		changed string
	)
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if !want[filepath.Clean(ev.Name)] || !ev.Has(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) {
				continue
			}
			changed = ev.Name
			if timer == nil {
				timer = time.NewTimer(certFileDebounce)
			} else {
				timer.Reset(certFileDebounce)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn("watching the certificate files", zap.Error(err))
		case <-fire:
			fire = nil
			log.Info("a certificate file changed; reloading", zap.String("file", changed))
			select {
			case reload <- syscall.SIGHUP:
			case <-ctx.Done():
				return
			}
		}
	}
}
