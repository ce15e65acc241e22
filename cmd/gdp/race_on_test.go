//go:build race

package main

// raceEnabled: the tests run under -race, where this binary (and every
// `gdp` process the tests start from it) runs 5–10× slower.
const raceEnabled = true
