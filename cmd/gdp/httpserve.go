package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
)

// httpService is an HTTP server a daemon runs beside its main work: the
// router's admin API, the resolver's API, capsuled's metrics. Its serving
// goroutine ends in Shutdown.
type httpService struct {
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

// serveHTTP listens on addr and serves h until Shutdown. what names the
// service in errors and logs ("admin API", "metrics").
func serveHTTP(addr, what string, h http.Handler, log *zap.Logger) (*httpService, error) {
	ln, err := listenHTTP(addr, what)
	if err != nil {
		return nil, err
	}
	return serveHTTPOn(ln, what, h, log), nil
}

// listenHTTP binds addr for serveHTTPOn: a daemon binds its HTTP address
// before it says it is up, so an address in use stops the start before
// anything is announced (Session 18: a router whose admin address was
// taken logged "router up" and published its location record, then
// stopped).
func listenHTTP(addr, what string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen %s: %w", what, addr, err)
	}
	return ln, nil
}

// serveHTTPOn serves h on ln (from listenHTTP, or a listener made
// elsewhere: the gateway's checked TCP address) until Shutdown.
func serveHTTPOn(ln net.Listener, what string, h http.Handler, log *zap.Logger) *httpService {
	return serveHTTPAt(ln, ln.Addr().String(), what, h, log)
}

// serveHTTPAt is serveHTTPOn logging addr as where it serves: the
// gateway's unix socket is bound under a temporary name and renamed into
// place, and its "up" line names the path applications use (Session 18).
func serveHTTPAt(ln net.Listener, addr, what string, h http.Handler, log *zap.Logger) *httpService {
	s := &httpService{srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" server", zap.Error(err))
		}
	}()
	log.Info(what+" up", logging.Addr(addr))
	return s
}

// Shutdown stops s gracefully, within ctx, and waits for its goroutine. A
// nil s (the service is off) is a no-op.
func (s *httpService) Shutdown(ctx context.Context) {
	if s == nil {
		return
	}
	_ = s.srv.Shutdown(ctx)
	<-s.done
}

// mountPprof serves Go's profiles under /debug/pprof/ on mux (a daemon's
// pprof: true; the caller has checked the listener is loopback).
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
