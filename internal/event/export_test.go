package event

// DecodeDataForTest exposes decodeData to the package's external tests.
var DecodeDataForTest = decodeData
