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
