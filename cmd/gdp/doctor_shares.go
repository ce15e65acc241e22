package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gdpnet/gdpnet/router"
)

// A share is a limit kept per member (or per domain) that is part of a
// larger total: placement.max_per_requester of placement.max_placements,
// placement.max_bytes_per_requester of the disk. A share above its total
// never bites — the total does first, for everyone — which is the config
// mistake these checks catch (gdp doctor --config, docs/OPERATIONS.md
// §6.15).
type share struct {
	key      string
	v        int64
	totalKey string // "" when total is not a key (the disk)
	total    int64
}

// shareChecks warns for each share above its total; -1 (no bound, the
// operator's explicit choice) is not checked.
func shareChecks(shares []share) []checkResult {
	var out []checkResult
	for _, s := range shares {
		if s.v < 0 || s.total <= 0 || s.v <= s.total {
			continue
		}
		totalKey, fix := s.totalKey, fmt.Sprintf("lower %s to at most %d, or raise %s", s.key, s.total, s.totalKey)
		if totalKey == "" {
			totalKey = "the disk"
			fix = fmt.Sprintf("lower %s below the disk's size (%d bytes), or give dir a larger file system", s.key, s.total)
		}
		out = append(out, checkResult{Check: "share " + s.key, Status: checkWarn,
			Detail: fmt.Sprintf("%s %d is more than %s (%d): one member (or domain) can take all of it before its share bites", s.key, s.v, totalKey, s.total),
			Fix:    fix})
	}
	if len(out) == 0 {
		out = append(out, checkResult{Check: "shares", Status: checkOK, Detail: fmt.Sprintf("each of %d per-member and per-domain shares is within its total", len(shares))})
	}
	return out
}

// capsuledShares are a capsule server's shares with their totals; disk is
// the size of the file system dir is on (0: not known, not checked).
func capsuledShares(path string, disk func(string) (int64, error)) ([]share, error) {
	cfg, err := loadCapsuledConfig(path)
	if err != nil {
		return nil, err
	}
	sc, err := cfg.server()
	if err != nil {
		return nil, err
	}
	c, err := sc.WithDefaults()
	if err != nil {
		return nil, err
	}
	pp := c.Placement
	var size int64
	if disk != nil {
		size, _ = disk(c.Dir)
	}
	shares := []share{
		{"placement.max_per_requester", int64(pp.MaxPerRequester), "placement.max_placements", int64(pp.MaxPlacements)},
		{"placement.max_per_domain", int64(pp.MaxPerDomain), "placement.max_placements", int64(pp.MaxPlacements)},
		{"placement.max_per_owner", int64(pp.MaxPerOwner), "placement.max_placements", int64(pp.MaxPlacements)},
		{"placement.max_bytes_per_requester", pp.MaxBytesPerRequester, "", size},
		{"placement.max_bytes_per_domain", pp.MaxBytesPerDomain, "", size},
	}
	if c.MaxSubscriptions > 0 && c.MaxSubscriptionsPerSubscriber > 0 {
		shares = append(shares, share{"max_subscriptions_per_subscriber", int64(c.MaxSubscriptionsPerSubscriber), "max_subscriptions", int64(c.MaxSubscriptions)},
			share{"max_subscriptions_unproven", int64(c.MaxSubscriptionsUnproven), "max_subscriptions", int64(c.MaxSubscriptions)})
	}
	return shares, nil
}

// routerShares are a router's shares with their totals.
func routerShares(path string) ([]share, error) {
	cfg, err := loadRouterConfig(path)
	if err != nil {
		return nil, err
	}
	c := router.Config.WithDefaults(cfg)
	return []share{
		{"face.max_per_identity", int64(c.Face.MaxPerIdentity), "face.max_per_domain", int64(c.Face.MaxPerDomain)},
		{"advertise.max_names_per_identity", int64(c.Advertise.MaxNamesPerIdentity), "advertise.max_names_per_domain", int64(c.Advertise.MaxNamesPerDomain)},
		{"advertise.max_names_per_identity", int64(c.Advertise.MaxNamesPerIdentity), "fib_size", int64(c.FIBSize)},
		{"advertise.max_names_per_domain", int64(c.Advertise.MaxNamesPerDomain), "fib_size", int64(c.FIBSize)},
		{"resolver.max_waiting_per_identity", int64(c.Resolver.MaxWaitingPerIdentity), "resolver.max_waiting", int64(c.Resolver.MaxWaiting)},
	}, nil
}

// checkShares is the shares of the config at path for role (router or
// capsuled; nothing for the others).
func checkShares(path, role string, disk func(string) (int64, error)) []checkResult {
	var shares []share
	var err error
	switch role {
	case "capsuled":
		shares, err = capsuledShares(path, disk)
	case "router":
		shares, err = routerShares(path)
	default:
		return nil
	}
	if err != nil {
		return nil // the config check reports it
	}
	return shareChecks(shares)
}

// nearestDir is dir or its nearest existing parent (a server's dir may
// not exist before its first start).
func nearestDir(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(d); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("no existing directory")
		}
		d = p
	}
}
