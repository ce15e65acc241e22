//go:build !linux

package router_test

import "testing"

func gsoRelay(b *testing.B, size int) (float64, int64) {
	b.Skip("the GSO/GRO relay baseline needs Linux")
	return 0, 0
}
