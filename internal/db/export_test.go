package db

// NewProviderForTest exposes the goose provider to the package's external tests.
var NewProviderForTest = newProvider
