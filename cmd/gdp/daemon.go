package main

import (
	"fmt"
	"os"
	"strings"

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
			log.Error("stopped", zap.Error(*errp))
		} else {
			log.Info("stopped")
		}
		logging.Sync(log)
	}
	return log, stop, nil
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
