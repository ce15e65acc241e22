package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/internal/logging"
)

// defaultKeystoreDir is where the daemons and the client commands look for
// keys when neither a flag nor a config file says: $GDP_KEYSTORE, else
// /var/lib/gdp/keys. (gdp cert's own default is ./keys, also overridden by
// $GDP_KEYSTORE.)
func defaultKeystoreDir() string {
	if d := os.Getenv("GDP_KEYSTORE"); d != "" {
		return d
	}
	return "/var/lib/gdp/keys"
}

// daemonLogger builds a daemon's logger from its log: block, named after
// the component ("router", "resolver", "capsuled"), with the libraries'
// own logging routed into it. The returned stop logs the final "stopped"
// line (with the error the daemon exits with, if any) and flushes.
func daemonLogger(c logging.Config, component string) (*zap.Logger, func(err *error), error) {
	base, err := logging.New(c)
	if err != nil {
		return nil, nil, err
	}
	log := base.Named(component)
	logging.RouteLibraries(base.Named("libp2p"))
	// the fault suite's clock skew (a test knob, logged as a WARN line)
	if err := clock.FromEnv(log); err != nil {
		return nil, nil, err
	}
	stop := func(errp *error) {
		if errp != nil && *errp != nil {
			fields := []zap.Field{zap.Error(*errp)}
			if fix := stopFix(*errp, component); fix != "" {
				fields = append(fields, zap.String("fix", fix))
			}
			log.Error("stopped", fields...)
		} else {
			log.Info("stopped")
		}
		logging.Sync(log)
	}
	return log, stop, nil
}

// stopFix is the fix of the "stopped" line for the failures an operator
// meets at a start whose error alone does not say what to do (Session 18):
// an address another process holds, a full disk, a permission refused.
// The errors of libraries that flatten the cause (libp2p's "failed to
// listen on any addresses") are matched by their text.
func stopFix(err error, component string) string {
	doctor := "; gdp doctor --config FILE --role " + component + " checks every address before a start"
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.EADDRINUSE) || strings.Contains(msg, "address already in use"):
		return "another process holds that address: this daemon already running (systemctl status gdp-" + component +
			") or another program (ss -lunp, ss -ltnp show which). Stop it, or give this daemon another address in its config" + doctor
	case errors.Is(err, syscall.ENOSPC) || strings.Contains(msg, "no space left on device"):
		return "the file system is full: free space where the error says (df -h), then start the daemon again"
	case strings.Contains(msg, "untrusted domain"):
		return "the peer's membership is issued by a domain this daemon does not trust (named in the error): add that domain's metadata file to trusted_domains, or use a peer of this daemon's own domain"
	case errors.Is(err, fs.ErrPermission):
		return "run the daemon as the user that owns its files (the gdp user of deploy/gdp.sysusers.conf under systemd), or fix the named file's owner or mode; an address below port 1024 needs CAP_NET_BIND_SERVICE"
	}
	return ""
}

// inConfig names the config file in a reload's error, unless the error
// already does (config.Load's errors name the file and the line): the
// one ERROR line a refused SIGHUP logs says which file to fix.
func inConfig(path string, err error) error {
	if err == nil || path == "" || strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("config %s: %w", path, err)
}

// reloadFix is the fix field of the ERROR line a refused reload logs: what
// to do next, beside the error saying what is wrong (Session 18: an
// operator's first deployment by hand found the line said only the
// latter). role is the daemon's unit name suffix (router, resolver,
// capsuled, gateway, handoffd).
func reloadFix(role, cfgPath string) zap.Field {
	check := ""
	if cfgPath != "" {
		check = fmt.Sprintf(" (gdp doctor --config %s --role %s --running shows every problem the daemon would refuse)", cfgPath, role)
	}
	return zap.String("fix", "correct the file the error names"+check+
		", then reload again (systemctl reload gdp-"+role+", or kill -HUP the process); a replaced certificate file is picked up on its own. Until then the daemon runs unchanged")
}
