//go:build !linux

package sim

import (
	"context"
	"errors"
	"net"
)

var errNoNetns = errors.New("netns mode needs Linux (network namespaces, veth pairs)")

type nsRun struct{}

type nsNode struct{}

// NetnsAvailable says why the netns mode cannot run here.
func NetnsAvailable() error { return errNoNetns }

func (s *Sim) buildNetns(context.Context) error { return errNoNetns }

func (r *nsRun) listen(*simNode, uint16) (net.PacketConn, error) { return nil, errNoNetns }
func (r *nsRun) startRouter(*simNode) error                      { return errNoNetns }
func (r *nsRun) stopRouter(*simNode)                             {}
func (r *nsRun) close()                                          {}

// CleanReport is what CleanNetns removed.
type CleanReport struct{}

// Empty says nothing was removed.
func (c *CleanReport) Empty() bool { return true }

func (c *CleanReport) String() string { return "nothing to clean\n" }

// CleanNetns needs Linux.
func CleanNetns(bool) (*CleanReport, error) { return nil, errNoNetns }

// RouterPIDs is nil: no netns mode here.
func (s *Sim) RouterPIDs() map[string]int { return nil }

// RunID is "": no netns mode here.
func (s *Sim) RunID() string { return "" }
