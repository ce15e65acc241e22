package router

import "github.com/gdpnet/gdpnet/pdu"

// SetTestHookQueued sets testHookQueued for one test (nil: none).
func SetTestHookQueued(f func(pdu.Name)) { testHookQueued = f }
