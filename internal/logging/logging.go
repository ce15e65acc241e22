// Package logging builds the zap loggers every daemon is handed and fixes the
// field names they use, so that "peer" or "capsule" means the same thing in
// every log line (docs/OPERATIONS.md lists them).
package logging

import (
	"fmt"
	"time"

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

// New builds a logger from c.
func New(c Config) (*zap.Logger, error) {
	lvl := zapcore.InfoLevel
	if c.Level != "" {
		if err := lvl.Set(c.Level); err != nil {
			return nil, fmt.Errorf("log level %q: %w", c.Level, err)
		}
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.EncoderConfig.TimeKey = "ts"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	switch c.Format {
	case "", "json":
	case "console":
		zc.Encoding = "console"
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	default:
		return nil, fmt.Errorf("log format %q: want json or console", c.Format)
	}
	zc.Sampling = nil
	return zc.Build()
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
