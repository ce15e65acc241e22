//go:build race

package capsuled_test

// Under -race this code runs about 5–10× slower: the end-to-end tests
// write fewer records (still every one acknowledged is read back and
// verified) and their I/O deadlines are stretched.
const (
	// fullRecords is how many records the 100k end-to-end tests write.
	fullRecords = 20000
	// slow multiplies the end-to-end tests' write, read and convergence
	// deadlines.
	slow = 5
)
