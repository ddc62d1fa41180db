// Package migrations embeds the goose SQL migrations that create and evolve the wecom
// schema. Apply them with the worker's `migrate` command (internal/db.Migrate).
package migrations

import "embed"

// FS holds the numbered goose SQL files.
//
//go:embed *.sql
var FS embed.FS
