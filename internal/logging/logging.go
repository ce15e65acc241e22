// Package logging builds the zap loggers every daemon is handed and fixes the
// field names they use, so that "peer" or "capsule" means the same thing in
// every log line (docs/OPERATIONS.md lists them).
package logging

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gdpnet/gdpnet/pdu"
)

// Config selects the log level and encoding. The zero value logs info and
// above as JSON to stderr.
type Config struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json or console. Default json.
	Format string `yaml:"format"`
}

// Validate checks c as New would, without building anything: the daemons'
// config loaders (and so gdp doctor) call it.
func (c Config) Validate() error {
	_, err := c.level()
	if err != nil {
		return err
	}
	switch c.Format {
	case "", "json", "console":
		return nil
	}
	return fmt.Errorf("log format %q: want json or console", c.Format)
}

func (c Config) level() (zapcore.Level, error) {
	lvl := zapcore.InfoLevel
	if c.Level != "" {
		if err := lvl.Set(c.Level); err != nil || lvl > zapcore.ErrorLevel {
			return lvl, fmt.Errorf("log level %q: want debug, info, warn or error", c.Level)
		}
	}
	return lvl, nil
}

// New builds a logger from c. Lines carry no stack trace (an expected
// error, however loud, is reported by its message and fields; only a
// DPanic or worse, a bug, gets one) and durations are strings with units
// ("1.5s").
func New(c Config) (*zap.Logger, error) { return newLogger(c, os.Stderr) }

// newLogger is New writing to w.
func newLogger(c Config, w zapcore.WriteSyncer) (*zap.Logger, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	lvl, _ := c.level()
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "ts"
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	ec.EncodeDuration = zapcore.StringDurationEncoder
	enc := zapcore.NewJSONEncoder(ec)
	if c.Format == "console" {
		ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(w), zap.NewAtomicLevelAt(lvl))
	return zap.New(core, zap.AddCaller(), zap.AddStacktrace(zapcore.DPanicLevel), zap.ErrorOutput(zapcore.Lock(os.Stderr))), nil
}

// Sync flushes l at a daemon's exit and reports a failure on stderr (the
// log itself may be what failed). The errors syncing a terminal or a pipe
// gives on Linux (EINVAL, ENOTTY) mean there was nothing to flush.
func Sync(l *zap.Logger) {
	err := l.Sync()
	if err == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTTY) {
		return
	}
	fmt.Fprintf(os.Stderr, "gdp: flushing the log: %v\n", err)
}

// Fixed field names. Use these helpers rather than ad-hoc keys.

// Name is the principal a line is about (router, server, client).
func Name(n pdu.Name) zap.Field { return zap.Stringer("name", n) }

// Peer is the remote node of a tunnel or connection.
func Peer(n pdu.Name) zap.Field { return zap.Stringer("peer", n) }

// Capsule is a DataCapsule name.
func Capsule(n pdu.Name) zap.Field { return zap.Stringer("capsule", n) }

// Dst and Src are a PDU's destination and source names.
func Dst(n pdu.Name) zap.Field { return zap.Stringer("dst", n) }
func Src(n pdu.Name) zap.Field { return zap.Stringer("src", n) }

// Face is a router's local face identifier.
func Face(id uint64) zap.Field { return zap.Uint64("face", id) }

// Seqno is a capsule record sequence number.
func Seqno(s uint64) zap.Field { return zap.Uint64("seqno", s) }

// Addr is an underlay address (host:port).
func Addr(a string) zap.Field { return zap.String("addr", a) }

// Reason is why something was refused or dropped (a metric label too).
func Reason(r string) zap.Field { return zap.String("reason", r) }

// Expiry is when a certificate or route stops being valid.
func Expiry(t time.Time) zap.Field { return zap.Time("expiry", t) }

// RouteLibraries sends what the libraries log through their own loggers
// (go-libp2p and kad-dht through go-log and slog, fx through go-log) into
// l's core, so a daemon writes one stream in one format. go-log keeps its
// per-subsystem levels (GOLOG_LOG_LEVEL, default error), so only the
// libraries' errors appear unless an operator asks for more. Call it once,
// before the libraries start.
func RouteLibraries(l *zap.Logger) {
	golog.SetPrimaryCore(l.Core())
	h := golog.SlogHandler()
	gologshim.SetDefaultHandler(h)
	slog.SetDefault(slog.New(h))
}
