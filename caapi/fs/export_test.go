package fs

// Exported for the black-box tests that build records by hand.
var (
	Header         = header
	EncodeManifest = encodeManifest
)

const KindChunk, KindList = kindChunk, kindList
