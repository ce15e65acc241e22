package tunnel

import "github.com/prometheus/client_golang/prometheus"

// Collector exposes an endpoint's counters to Prometheus. The endpoint's
// owner registers it (prometheus.MustRegister(ep.Collector())); it reads
// Stats at scrape time, so it costs nothing between scrapes.
func (e *Endpoint) Collector() prometheus.Collector { return &collector{e: e} }

var (
	descPDUs     = prometheus.NewDesc("gdp_tunnel_pdus_total", "Whole PDUs sent or received over tunnels.", []string{"direction"}, nil)
	descFrames   = prometheus.NewDesc("gdp_tunnel_raw_frames_total", "Raw GDP-in-UDP frames (fragments count one each).", []string{"direction"}, nil)
	descSyscalls = prometheus.NewDesc("gdp_tunnel_raw_syscalls_total", "Send and receive system calls on the raw socket (sendmmsg/recvmmsg or one datagram each); raw frames over syscalls is how well the data path batches.", []string{"direction"}, nil)
	descDrops    = prometheus.NewDesc("gdp_tunnel_drops_total", "Frames or PDUs dropped, by reason.", []string{"reason"}, nil)
	descRefused  = prometheus.NewDesc("gdp_tunnel_handshakes_refused_total", "Peers refused in the TLS handshake (credentials, key or name).", nil, nil)
	descDialFail = prometheus.NewDesc("gdp_tunnel_dials_failed_total", "Dials that did not produce a link.", nil, nil)
	descAccFail  = prometheus.NewDesc("gdp_tunnel_accepts_failed_total", "Incoming connections that did not produce a link.", nil, nil)
	descOpened   = prometheus.NewDesc("gdp_tunnel_links_opened_total", "Links that came up, by side (dialed, accepted); their log lines are rate-limited per peer, this counts each.", []string{"side"}, nil)
	descClosed   = prometheus.NewDesc("gdp_tunnel_links_closed_total", "Links that went down (any reason); their log lines are rate-limited per peer, this counts each.", nil, nil)
	descRekeys   = prometheus.NewDesc("gdp_tunnel_rekeys_total", "Raw key epochs completed.", nil, nil)
	descLinks    = prometheus.NewDesc("gdp_tunnel_links", "Links currently up.", nil, nil)
	descPending  = prometheus.NewDesc("gdp_tunnel_handshakes_in_flight", "Incoming QUIC handshakes started and not finished.", nil, nil)
	descKeep     = prometheus.NewDesc("gdp_tunnel_keepalives_total", "KEEPALIVE datagrams sent on idle links or received (consumed, not counted as PDUs).", []string{"direction"}, nil)
	descRetries  = prometheus.NewDesc("gdp_tunnel_retries_total", "New clients sent a QUIC Retry (source address validation) because handshakes piled up.", nil, nil)
	descRenewOut = prometheus.NewDesc("gdp_tunnel_renewals_sent_total", "Renewed credentials (a reloaded membership) sent to peers on live links (RENEW).", nil, nil)
	descRenewIn  = prometheus.NewDesc("gdp_tunnel_renewals_received_total", "Peers' renewed credentials received on live links, by result: accepted (the link's expiry moved), refused (not for the link's peer, key or domain, or not valid), rate_limited (not checked), unchanged.", []string{"result"}, nil)
	descPeerExp  = prometheus.NewDesc("gdp_tunnel_peer_expiry_seconds", "Seconds until the soonest expiry of a live link's peer's membership (the link closes then unless the peer renews); absent when no link's peer expires.", nil, nil)
	descExpiring = prometheus.NewDesc("gdp_tunnel_peers_expiring", "Live links whose peer's membership has less than 20% of its lifetime left.", nil, nil)
)

type collector struct{ e *Endpoint }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPDUs, descFrames, descSyscalls, descDrops, descRefused, descDialFail, descAccFail, descOpened, descClosed, descRekeys, descLinks, descPending, descRetries, descKeep, descRenewOut, descRenewIn, descPeerExp, descExpiring} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descPDUs, s.PDUsSent, "out")
	counter(descPDUs, s.PDUsReceived, "in")
	counter(descKeep, s.KeepalivesSent, "out")
	counter(descKeep, s.KeepalivesReceived, "in")
	counter(descFrames, s.FramesSent, "out")
	counter(descFrames, s.FramesReceived, "in")
	counter(descSyscalls, s.SendCalls, "out")
	counter(descSyscalls, s.RecvCalls, "in")
	for r := DropReason(0); r < numDropReasons; r++ {
		counter(descDrops, s.Drops[r.String()], r.String())
	}
	counter(descRefused, s.HandshakesRefused)
	counter(descDialFail, s.DialsFailed)
	counter(descAccFail, s.AcceptsFailed)
	counter(descOpened, s.LinksDialed, "dialed")
	counter(descOpened, s.LinksAccepted, "accepted")
	counter(descClosed, s.LinksClosed)
	counter(descRekeys, s.Rekeys)
	counter(descRetries, s.Retries)
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(s.HandshakesInFlight))
	ch <- prometheus.MustNewConstMetric(descLinks, prometheus.GaugeValue, float64(s.Links))
	counter(descRenewOut, s.RenewalsSent)
	counter(descRenewIn, s.RenewalsAccepted, "accepted")
	counter(descRenewIn, s.RenewalsRefused, "refused")
	counter(descRenewIn, s.RenewalsRateLimited, "rate_limited")
	counter(descRenewIn, s.RenewalsUnchanged, "unchanged")
	soonest, expiring := c.e.peerExpiries()
	if !soonest.IsZero() {
		ch <- prometheus.MustNewConstMetric(descPeerExp, prometheus.GaugeValue, soonest.Sub(c.e.cfg.Now()).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(descExpiring, prometheus.GaugeValue, float64(expiring))
}
