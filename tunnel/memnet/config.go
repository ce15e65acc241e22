package memnet

import "time"

// LinkConfig shapes one direction of a path between two hosts. The zero
// value is a perfect link: no delay, no loss, unlimited bandwidth, MTU
// 65,507 (the largest UDP payload).
type LinkConfig struct {
	// Delay is the one-way propagation delay.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter); packets
	// may then arrive reordered, as on a real path.
	Jitter time.Duration
	// Loss is the probability (0..1) that a packet is dropped.
	Loss float64
	// Bandwidth in bits per second; 0 means unlimited. Packets are
	// serialised one after another at this rate.
	Bandwidth int64
	// QueueLimit is the longest a packet may wait for the bandwidth before
	// it is tail-dropped (the router's buffer, in time). Default 50 ms.
	QueueLimit time.Duration
	// MTU is the largest datagram payload the path carries; larger ones
	// are dropped (as with the DF bit set). Default 65,507.
	MTU int
	// Down drops everything.
	Down bool
}

const (
	maxUDP            = 65507
	defaultQueueLimit = 50 * time.Millisecond
)

func (c LinkConfig) mtu() int {
	if c.MTU <= 0 || c.MTU > maxUDP {
		return maxUDP
	}
	return c.MTU
}

func (c LinkConfig) queueLimit() time.Duration {
	if c.QueueLimit <= 0 {
		return defaultQueueLimit
	}
	return c.QueueLimit
}
