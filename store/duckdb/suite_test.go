package duckdb

import (
	"testing"

	"github.com/vantagehq/vantage/store/storetest"
)

// TestSuite holds the DuckDB store to the shared query suite (the
// ClickHouse store answers the same).
func TestSuite(t *testing.T) {
	storetest.Run(t, openTest(t))
}
