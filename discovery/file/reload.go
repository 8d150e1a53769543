package file

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"time"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
)

// fileSig is what stat says about a file: when it is unchanged and was not written recently,
// the contents are taken to be unchanged without reading them. dev, ino and ctime are filled
// in where the platform has them (stat_linux.go): a new inode catches a rename or a symlink
// swap, a new ctime catches a rewrite whose mtime was put back (cp -p, rsync -t, tar).
type fileSig struct {
	size  int64
	mtime int64
	ctime int64
	dev   uint64
	ino   uint64
}

func sigOf(fi fs.FileInfo) fileSig {
	s := fileSig{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	sysSig(fi, &s)
	return s
}

// changedAt is the later of the file's modification and change times.
func (s fileSig) changedAt() time.Time {
	return time.Unix(0, max(s.mtime, s.ctime))
}

// watcher is the state of one Watch call. It is used by that call's goroutine only.
type watcher struct {
	src      *Source
	services []string
	update   discovery.UpdateFunc

	// sig is the stat of the file as last read; the zero value after a failed stat or read,
	// so that the next successful stat reads the file again.
	sig fileSig
	// racy is set when sig was taken less than racyWindow after the file last changed, so an
	// equal stat does not prove equal contents.
	racy bool
	// sum is the hash of the contents last read, and sumErr is Parse's verdict on them.
	sum    [sha256.Size]byte
	sumErr error
	// pendingSum is the hash of new contents first read at pendingAt, which a poll at least
	// settleTime later must confirm.
	pendingSum [sha256.Size]byte
	pendingAt  time.Time
	pending    bool
	// revision counts the good reads that changed the contents; it is the snapshots' Revision.
	revision uint64
	// failing is the problem in force (nil when the snapshots match the file), so that a
	// problem is logged when it appears, not on every poll.
	failing error
}

// start reads the file for the first time and delivers every service; a missing or invalid
// file is an error.
func (w *watcher) start() error {
	fi, err := w.src.stat(w.src.path)
	if err != nil {
		return err
	}
	readAt := time.Now()
	data, err := readFile(w.src.path)
	if err != nil {
		return err
	}
	services, err := Parse(w.src.path, data)
	if err != nil {
		return err
	}
	w.sig = sigOf(fi)
	w.racy = readAt.Sub(w.sig.changedAt()) < w.src.racyWindow
	w.sum = sha256.Sum256(data)
	w.publish(services, readAt)
	w.settle(nil, true, readAt)
	return nil
}

// poll checks the file once, delivers what changed, and reports to the log and the Observer.
func (w *watcher) poll() {
	path := w.src.path
	fi, err := w.src.stat(path)
	if err != nil {
		w.sig = fileSig{}
		w.settle(err, false, time.Now())
		return
	}
	sig := sigOf(fi)
	if sig == w.sig && !w.racy {
		w.settle(w.sumErr, false, time.Now())
		return
	}
	readAt := time.Now()
	data, err := readFile(path)
	if err != nil {
		w.sig = fileSig{}
		w.settle(err, false, readAt)
		return
	}
	if after, err := w.src.stat(path); err != nil || sigOf(after) != sig {
		// The file changed while it was read: it may be half-written. The stat will differ from
		// w.sig at the next poll, which reads it again.
		return
	}
	w.sig = sig
	w.racy = readAt.Sub(sig.changedAt()) < w.src.racyWindow
	sum := sha256.Sum256(data)
	if sum == w.sum {
		w.pending = false
		w.settle(w.sumErr, false, readAt)
		return
	}
	if !w.pending || sum != w.pendingSum {
		// New contents may be a file caught half-written by a writer that truncates and then
		// writes: act on them only when a later poll, which reads the file again whatever stat
		// says, finds the same at least settleTime later.
		w.pending, w.pendingSum, w.pendingAt, w.racy = true, sum, readAt, true
		return
	}
	if readAt.Sub(w.pendingAt) < w.src.settleTime {
		w.racy = true
		return
	}
	w.pending = false
	services, err := Parse(path, data)
	w.sum, w.sumErr = sum, err
	if err == nil {
		w.publish(services, readAt)
	}
	w.settle(err, true, readAt)
}

// publish delivers a snapshot of every watched service from a good read that changed the
// contents; Dedup drops those whose endpoints did not change.
func (w *watcher) publish(services map[string][]discovery.Endpoint, at time.Time) {
	w.revision++
	var absent []string
	for _, name := range w.services {
		eps, ok := services[name]
		if !ok {
			absent = append(absent, name)
		}
		w.update(discovery.NewSnapshot(name, w.revision, eps, at))
	}
	w.src.logger.Info("services file loaded",
		zap.Uint64("revision", w.revision), zap.Int("services", len(services)))
	if len(absent) > 0 {
		w.src.logger.Warn("watched services absent from services file; their snapshots are empty",
			zap.Strings("services", absent))
	}
}

// settle records the outcome of a check: err is the problem with the file (nil when the
// snapshots now match it), and fresh says the contents just changed. A problem is logged and
// reported when it appears, or when the contents change; while it lasts, polls that find
// nothing new stay silent. A good check reports every service Synced.
func (w *watcher) settle(err error, fresh bool, at time.Time) {
	if err == nil {
		if w.failing != nil && !fresh {
			w.src.logger.Info("services file usable again")
		}
		w.failing = nil
		for _, name := range w.services {
			w.src.obs.Synced(name, at)
		}
		return
	}
	if !fresh && w.failing != nil && w.failing.Error() == err.Error() {
		return
	}
	w.failing = err
	fields := []zap.Field{zap.Error(err)}
	var pe *ParseError
	if errors.As(err, &pe) {
		fields = append(fields, zap.Int("line", pe.Line))
		w.src.logger.Error("services file rejected; keeping the last good snapshots", fields...)
	} else {
		w.src.logger.Warn("services file unreadable; keeping the last good snapshots", fields...)
	}
	for _, name := range w.services {
		w.src.obs.Failed(name, err)
	}
}
