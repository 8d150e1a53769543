package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
)

// DefaultInterval is how often a Source checks its file when Config.Interval is 0.
const DefaultInterval = time.Second

// MaxFileSize is the largest file a Source reads; a larger one is an error, like a bad edit.
const MaxFileSize = 16 << 20

// racyWindow is how long after its last modification a file is re-read on every poll: stat
// times are only as fine as the kernel's clock tick (milliseconds, or seconds on some network
// and FAT filesystems), so a second write of the same size in the same tick leaves them equal.
const racyWindow = 2 * time.Second

// settleTime is how long new contents must stay the same before they are acted on, so that a
// file caught between a writer's truncate and its write is not taken for an edit.
const settleTime = 100 * time.Millisecond

var (
	// ErrBadConfig is wrapped by the errors NewSource and Watch return for bad arguments.
	ErrBadConfig = errors.New("bad file source configuration")
	// ErrTooLarge is wrapped by the error for a file larger than MaxFileSize.
	ErrTooLarge = errors.New("file too large")
)

// Config tunes a Source. The zero value is ready to use.
type Config struct {
	// Interval is how often the file is checked for changes; 0 means DefaultInterval. A check
	// is a stat, unless the file changed or changed recently; then it is a read and a hash.
	Interval time.Duration
}

// Source delivers the services listed in a file; see the package documentation for the
// format and how changes are noticed. A Source holds only its configuration: it is safe for
// concurrent use, and each Watch call reads and polls the file on its own.
type Source struct {
	path     string
	interval time.Duration
	logger   *zap.Logger
	obs      discovery.Observer

	// stat, racyWindow and settleTime are replaced by tests.
	stat       func(string) (fs.FileInfo, error)
	racyWindow time.Duration
	settleTime time.Duration
}

var _ discovery.Source = (*Source)(nil)

// NewSource returns a source for the file at path; it does not read the file (Watch does).
// A nil logger logs nothing; a nil obs observes nothing.
func NewSource(path string, cfg Config, logger *zap.Logger, obs discovery.Observer) (*Source, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrBadConfig)
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("%w: negative interval %v", ErrBadConfig, cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	if obs == nil {
		obs = discovery.NopObserver{}
	}
	return &Source{
		path:       path,
		interval:   cfg.Interval,
		logger:     logger.With(zap.String("file", path)),
		obs:        obs,
		stat:       os.Stat,
		racyWindow: racyWindow,
		settleTime: settleTime,
	}, nil
}

// Watch implements discovery.Source. It reads the file before it returns or delivers anything:
// a file that is missing, unreadable or invalid at that point is a configuration error, which
// Watch returns at once (a *ParseError for an invalid file), having delivered nothing. Then it
// delivers one snapshot for each service in services, an empty one for a service absent from
// the file, and polls the file until ctx ends, delivering the services whose endpoints changed.
// Later problems with the file keep the last snapshots in force; see the package
// documentation.
//
// update is called from the goroutine that called Watch, one call at a time. Watch starts no
// goroutines; it returns ctx.Err() when ctx ends.
func (s *Source) Watch(ctx context.Context, services []string, update discovery.UpdateFunc) error {
	names, err := serviceNames(services)
	if err != nil {
		return err
	}
	if update == nil {
		return fmt.Errorf("%w: nil update func", ErrBadConfig)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &watcher{src: s, services: names, update: discovery.Dedup(update)}
	if err := w.start(); err != nil {
		return fmt.Errorf("file source: %w", err)
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			w.poll()
		}
	}
}

// serviceNames returns services sorted, without duplicates, and checks that there is at least
// one and none is empty.
func serviceNames(services []string) ([]string, error) {
	if len(services) == 0 {
		return nil, fmt.Errorf("%w: no services to watch", ErrBadConfig)
	}
	names := slices.Clone(services)
	slices.Sort(names)
	names = slices.Compact(names)
	if names[0] == "" {
		return nil, fmt.Errorf("%w: empty service name", ErrBadConfig)
	}
	return names, nil
}

// readFile reads at most MaxFileSize bytes of the file at path.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", path, ErrTooLarge, MaxFileSize)
	}
	return data, nil
}
