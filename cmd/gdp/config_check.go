package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// The checks below are the part of a daemon's configuration that used to
// fail only once the daemon ran (a log level zap refuses, a port out of
// range, a bootstrap address without its peer id). Each daemon's loader
// runs them, so a daemon refuses such a file at start with the key named,
// and gdp doctor, which loads through the same loaders, refuses it too.

// checkHostPort checks a "host:port" listen or dial address: the port is a
// number 0-65535 (0 only where allowZero).
func checkHostPort(key, addr string, allowZero bool) error {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", key, addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return fmt.Errorf("%s %q: port %q: want a number 0-65535", key, addr, p)
	}
	if n == 0 && !allowZero {
		return fmt.Errorf("%s %q: port 0", key, addr)
	}
	return nil
}

// checkListenMultiaddr checks a libp2p listen multiaddr.
func checkListenMultiaddr(key, s string) error {
	if _, err := ma.NewMultiaddr(s); err != nil {
		return fmt.Errorf("%s %q: %w", key, s, err)
	}
	return nil
}

// checkPeerMultiaddr checks a multiaddr a node dials: it must end in
// /p2p/<peer id>, which is how the node knows whom it reached.
func checkPeerMultiaddr(key, s string) error {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return fmt.Errorf("%s %q: %w", key, s, err)
	}
	if _, err := peer.AddrInfoFromP2pAddr(m); err != nil {
		return fmt.Errorf("%s %q: want a multiaddr ending in /p2p/<peer id> (gdp resolver --print-addrs prints them): %w", key, s, err)
	}
	return nil
}

// checkResolverBlock checks a resolver: block's addresses. prefix is where
// the block sits in the file ("resolver." in both daemons' files).
func checkResolverBlock(prefix string, c resolver.Config) error {
	var errs []error
	for _, a := range c.Listen {
		errs = append(errs, checkListenMultiaddr(prefix+"listen", a))
	}
	for _, a := range c.Bootstrap {
		errs = append(errs, checkPeerMultiaddr(prefix+"bootstrap", a))
	}
	for _, a := range c.Borders {
		errs = append(errs, checkPeerMultiaddr(prefix+"borders", a))
	}
	if g := c.Global; g != nil {
		for _, a := range g.Listen {
			errs = append(errs, checkListenMultiaddr(prefix+"global.listen", a))
		}
		for _, a := range g.Bootstrap {
			errs = append(errs, checkPeerMultiaddr(prefix+"global.bootstrap", a))
		}
		for _, a := range g.BorderAddrs {
			errs = append(errs, checkHostPort(prefix+"global.border_addrs", a, false))
		}
	}
	return errors.Join(errs...)
}

// checkAPIAddr checks an HTTP listen address that may be "off".
func checkAPIAddr(key, addr string) error {
	if addr == "" || addr == "off" {
		return nil
	}
	return checkHostPort(key, addr, true)
}

// validateRouterConfig is what loadRouterConfig adds to router.Config's own
// Validate.
func validateRouterConfig(c router.Config) error {
	errs := []error{c.Log.Validate(), checkHostPort("listen", c.Listen, true), checkAPIAddr("admin", c.Admin)}
	if c.RawListen != "" {
		errs = append(errs, checkHostPort("raw_listen", c.RawListen, true))
	}
	for _, a := range c.Addrs {
		errs = append(errs, checkHostPort("addrs", a, false))
	}
	for _, p := range c.Peers {
		errs = append(errs, checkHostPort("peers.addr", p.Addr, false))
	}
	errs = append(errs, checkResolverBlock("resolver.", c.Resolver.Config))
	return errors.Join(errs...)
}

// validateResolverFile is what loadResolverConfig adds to resolver.Config's
// own Validate.
func validateResolverFile(c resolverFileConfig) error {
	return errors.Join(c.Log.Validate(), checkAPIAddr("api", c.API), checkResolverBlock("resolver.", c.Resolver))
}

// validateCapsuledConfig is loadCapsuledConfig's check.
// minRtCertLifetime: a shorter RtCert could lapse before its renewal's
// advertisement is answered.
const minRtCertLifetime = 5 * time.Second

func validateCapsuledConfig(c capsuledConfig) error {
	errs := []error{c.Log.Validate(), checkHostPort("router", c.Router, false), checkHostPort("listen", c.Listen, true),
		checkAPIAddr("metrics", c.Metrics), c.attachConfig.validate()}
	for _, r := range c.Routers {
		errs = append(errs, checkHostPort("routers.addr", r.Addr, false))
	}
	if c.Admin != "" && c.RouterName == "" {
		errs = append(errs, checkHostPort("admin", c.Admin, false))
	}
	switch c.Engine {
	case "", "pebble", "bbolt":
	default:
		errs = append(errs, fmt.Errorf("engine %q: want pebble or bbolt", c.Engine))
	}
	if c.MaxData < 0 || c.Workers < 0 {
		errs = append(errs, errors.New("max_data and workers must not be negative"))
	}
	if c.RtCertLifetime != 0 && c.RtCertLifetime.Std() < minRtCertLifetime {
		errs = append(errs, fmt.Errorf("rtcert_lifetime %s: at least %s (the server renews at half of it)", c.RtCertLifetime.Std(), minRtCertLifetime))
	}
	if c.Pprof {
		errs = append(errs, checkPprofAddr("metrics", c.Metrics))
	}
	return errors.Join(errs...)
}

// checkDHTListen binds each address the resolver's DHT (and its global
// tier) will listen on once and lets it go, so that one in use stops the
// daemon with one line naming the key and the address — libp2p's own
// failure names neither and comes with three lines of its own (Session
// 18: found starting a second router on a DHT port in use).
func checkDHTListen(rc resolver.Config) error {
	rc = rc.WithDefaults()
	if rc.Mode != "dht" {
		return nil
	}
	addrs := multiaddrPorts("resolver.listen", rc.Listen)
	if rc.Global != nil {
		addrs = append(addrs, multiaddrPorts("resolver.global.listen", rc.Global.Listen)...)
	}
	for _, a := range addrs {
		var err error
		if a.network == "udp" {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", a.addr); err == nil {
				_ = c.Close()
			}
		} else {
			var ln net.Listener
			if ln, err = net.Listen("tcp", a.addr); err == nil {
				_ = ln.Close()
			}
		}
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", a.key, a.network, a.addr, err)
		}
	}
	return nil
}

// checkPprofAddr refuses pprof: true unless the listener it is served on
// (key) is on a loopback address: profiles show memory contents' shapes,
// command lines and stacks, and a CPU profile costs the daemon while it
// runs, so they are never offered to the network.
func checkPprofAddr(key, addr string) error {
	if addr == "off" {
		return fmt.Errorf("pprof: true needs %s: it is served there, and %s is off", key, key)
	}
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil // checkAPIAddr says what is wrong with it
	}
	if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("pprof: true needs %s on a loopback address (127.0.0.1 or [::1]), not %q: profiles are never served to the network", key, addr)
}
