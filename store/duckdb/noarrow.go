//go:build !duckdb_arrow

package duckdb

// The store ingests events through DuckDB's Arrow interface, which the
// duckdb-go driver compiles only with a build tag. Build and test with
//
//	go build -tags duckdb_arrow ./...    (scripts/test.sh and the README do)
//
// A build without it stops here:
var _ = buildWithTag_duckdb_arrow
