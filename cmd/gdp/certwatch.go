package main

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/internal/logging"
)

// certCheckEvery is how often the daemons look at their certificates'
// remaining lifetime.
const certCheckEvery = 10 * time.Second

// certWarnFraction: a certificate with less than this share of its
// lifetime left is logged at WARN (once, and again after each reload).
const certWarnFraction = 0.2

// certWatch keeps an eye on the certificates a daemon runs with (its
// membership): it exports gdp_cert_expiry_seconds{kind,name} (seconds
// left; negative once expired), logs a WARN when 20 % of a certificate's
// life is left and an ERROR when it has expired, each saying what to do.
// A reload (set) starts the watch of that certificate afresh.
type certWatch struct {
	log *zap.Logger
	now func() time.Time

	mu    sync.Mutex
	certs map[string]*watchedCert // by kind
}

type watchedCert struct {
	kind  string // "member", …
	cert  *certs.Cert
	file  string // where it was read from: the renewal goes there
	state int    // 0 fine, 1 warned, 2 expired (logged)
}

var descCertExpiry = prometheus.NewDesc("gdp_cert_expiry_seconds",
	"Seconds until a certificate this daemon runs with expires (negative: expired), by kind (member; rtcert: the RtCert a capsule server issues itself for its router) and subject name.",
	[]string{"kind", "name"}, nil)

func newCertWatch(log *zap.Logger, reg prometheus.Registerer) *certWatch {
	w := &certWatch{log: log, now: clock.Now, certs: map[string]*watchedCert{}}
	if reg != nil {
		reg.MustRegister(w)
	}
	return w
}

// set starts watching c (read from file) as the daemon's certificate of
// this kind, replacing the one before, and checks it at once.
func (w *certWatch) set(kind string, c *certs.Cert, file string) {
	w.mu.Lock()
	w.certs[kind] = &watchedCert{kind: kind, cert: c, file: file}
	w.mu.Unlock()
	w.check()
}

// check logs the certificates that crossed a threshold since the last check.
func (w *certWatch) check() {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.certs {
		life := c.cert.NotAfter.Sub(c.cert.NotBefore)
		left := c.cert.NotAfter.Sub(now)
		fields := []zap.Field{zap.String("kind", c.kind), logging.Name(c.cert.Subject), logging.Expiry(c.cert.NotAfter)}
		switch {
		case left <= 0 && c.state < 2:
			c.state = 2
			msg := "my " + c.kind + " certificate expired"
			if c.kind == "member" {
				msg = "my membership expired: peers and routers refuse this node until it is renewed"
			}
			w.log.Error(msg, append(fields, zap.Duration("ago", (-left).Round(time.Second)),
				zap.String("fix", certFix(c, true)))...)
		case left > 0 && float64(left) <= certWarnFraction*float64(life) && c.state < 1:
			c.state = 1
			w.log.Warn("certificate expires soon: less than 20% of its lifetime left",
				append(fields, zap.Duration("left", left.Round(time.Second)),
					zap.String("fix", certFix(c, false)))...)
		}
	}
}

// certFix says what to do about a certificate running out (expired: it
// has already). A membership comes from the domain operator as a file the
// daemon reloads on its own when it is replaced; an RtCert the daemon
// issues itself, so one running out means its re-advertisements fail.
func certFix(c *watchedCert, expired bool) string {
	if c.kind == "rtcert" {
		return "the daemon re-issues its RtCert and advertises again before it expires: look for 'advertisement failed' lines and check the router (gdp doctor --remote)"
	}
	if expired {
		return "have the domain operator issue a new one (gdp cert issue member) and install it at " + c.file +
			": the daemon reloads it on its own within seconds (send SIGHUP only where the file system has no inotify)"
	}
	return "renew it (gdp cert issue member, or gdp cert renew where the domain key is) and install it at " + c.file +
		": the daemon reloads it on its own within seconds (send SIGHUP only where the file system has no inotify)"
}

// run checks every interval until ctx ends.
func (w *certWatch) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.check()
		}
	}
}

func (w *certWatch) Describe(ch chan<- *prometheus.Desc) { ch <- descCertExpiry }

func (w *certWatch) Collect(ch chan<- prometheus.Metric) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.certs {
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue,
			c.cert.NotAfter.Sub(now).Seconds(), c.kind, c.cert.Subject.String())
	}
}
