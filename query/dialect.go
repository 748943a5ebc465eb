package query

import (
	"math"
	"math/big"
	"time"
)

// Dialect is the SQL that differs between the stores. Each method that
// takes a column returns a predicate with exactly one "?" placeholder;
// the compiler prepares the bind value (lower-casing, LIKE escaping) the
// same way for every dialect. LIKE patterns use "\" as the escape
// character.
type Dialect interface {
	// Name is "duckdb" or "clickhouse".
	Name() string
	// Like: col matches a LIKE pattern.
	Like(col string) string
	// LowerLike: col, lower-cased, matches a lower-case LIKE pattern.
	LowerLike(col string) string
	// LowerEqual: col, lower-cased, equals a lower-case value.
	LowerEqual(col string) string
	// Contains: col contains the value (col holds lower-case text and
	// the value is lower-case).
	Contains(col string) string
	// ContainsFold: col contains the lower-case value, ignoring case.
	ContainsFold(col string) string
	// ListContains: an element of the list column equals the value.
	ListContains(col string) string
	// ListLike: an element of the list column matches a LIKE pattern.
	ListLike(col string) string
	// ListNotEmpty: the list column has an element (no placeholder).
	ListNotEmpty(col string) string
	// Not negates a predicate so that NULL (unknown) counts as "does not
	// match": -country:CN keeps rows without a country.
	Not(pred string) string
	// True is a predicate that always holds (the empty query).
	True() string
	// Unnest turns a list column into one row per element (facets).
	Unnest(col string) string
	// Arg adapts a bind value (string, int64, uint64, bool, time.Time)
	// to what the store's driver and column types take.
	Arg(v any) any
}

var (
	// DuckDB is the embedded store's dialect.
	DuckDB Dialect = duckDB{}
	// ClickHouse is the dialect of ClickHouse 18.16 (Debian's): no ILIKE,
	// no boolean type, DateTime with whole seconds.
	ClickHouse Dialect = clickHouse{}
)

type duckDB struct{}

func (duckDB) Name() string                   { return "duckdb" }
func (duckDB) Like(col string) string         { return col + ` LIKE ? ESCAPE '\'` }
func (duckDB) LowerLike(col string) string    { return "lower(" + col + `) LIKE ? ESCAPE '\'` }
func (duckDB) LowerEqual(col string) string   { return "lower(" + col + ") = ?" }
func (duckDB) Contains(col string) string     { return "contains(" + col + ", ?)" }
func (duckDB) ContainsFold(col string) string { return "contains(lower(" + col + "), ?)" }
func (duckDB) ListContains(col string) string { return "list_contains(" + col + ", ?)" }
func (duckDB) ListLike(col string) string {
	return "len(list_filter(" + col + `, x -> x LIKE ? ESCAPE '\')) > 0`
}
func (duckDB) ListNotEmpty(col string) string { return "len(" + col + ") > 0" }
func (duckDB) Not(pred string) string         { return "NOT coalesce(" + pred + ", false)" }
func (duckDB) True() string                   { return "true" }
func (duckDB) Unnest(col string) string       { return "unnest(" + col + ")" }

// Arg: database/sql refuses a uint64 with the high bit set (an IPv6 hi
// or lo from 8000:: up) before the driver sees it; duckdb-go takes a
// *big.Int and DuckDB casts it to the UBIGINT column's type.
func (duckDB) Arg(v any) any {
	switch v := v.(type) {
	case time.Time:
		return v.UTC()
	case uint64:
		if v > math.MaxInt64 {
			return new(big.Int).SetUint64(v)
		}
	}
	return v
}

type clickHouse struct{}

func (clickHouse) Name() string                 { return "clickhouse" }
func (clickHouse) Like(col string) string       { return col + " LIKE ?" }
func (clickHouse) LowerLike(col string) string  { return "lowerUTF8(" + col + ") LIKE ?" }
func (clickHouse) LowerEqual(col string) string { return "lowerUTF8(" + col + ") = ?" }
func (clickHouse) Contains(col string) string   { return "position(" + col + ", ?) > 0" }
func (clickHouse) ContainsFold(col string) string {
	return "positionCaseInsensitiveUTF8(" + col + ", ?) > 0"
}
func (clickHouse) ListContains(col string) string { return "has(" + col + ", ?)" }
func (clickHouse) ListLike(col string) string     { return "arrayExists(x -> x LIKE ?, " + col + ")" }
func (clickHouse) ListNotEmpty(col string) string { return "notEmpty(" + col + ")" }
func (clickHouse) Not(pred string) string         { return "NOT ifNull(" + pred + ", 0)" }
func (clickHouse) True() string                   { return "1" }
func (clickHouse) Unnest(col string) string       { return "arrayJoin(" + col + ")" }
func (clickHouse) Arg(v any) any {
	switch v := v.(type) {
	case time.Time:
		return v.UTC().Truncate(time.Second)
	case bool:
		if v {
			return uint8(1)
		}
		return uint8(0)
	}
	return v
}
