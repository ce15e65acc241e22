package fs

// Exported for the black-box tests that build records by hand.
var (
	Header         = header
	EncodeManifest = encodeManifest
)

const KindChunk, KindList = kindChunk, kindList

// HeldChunks is how many chunks fl holds (fetched or under way).
func HeldChunks(fl *File) int {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return len(fl.chunks)
}

// ReadsUnderWay is how many reads of fl are at a chunk now.
func ReadsUnderWay(fl *File) int {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	n := 0
	for _, c := range fl.at {
		n += c
	}
	return n
}
