//go:build !unix

package router_test

func cpuNow() int64 { return 0 }
