//go:build !race

package capsuled_test

const (
	// fullRecords is how many records the 100k end-to-end tests write.
	fullRecords = 100000
	// slow multiplies the end-to-end tests' write, read and convergence
	// deadlines (see race_on_test.go).
	slow = 1
)
