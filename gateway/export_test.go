package gateway

import "time"

// SetSubscriptionPing sets how often an idle subscription is pinged and
// returns what restores it (tests).
func SetSubscriptionPing(d time.Duration) (restore func()) {
	old := wsPingInterval
	wsPingInterval = d
	return func() { wsPingInterval = old }
}
