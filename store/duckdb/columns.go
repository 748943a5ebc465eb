//go:build duckdb_arrow

package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/memory/mallocator"
	"github.com/duckdb/duckdb-go/v2"
)

// Records go into DuckDB through its Arrow interface: columns are built in
// Go without a call into C per value, and DuckDB copies whole vectors. With
// a transaction of more than one row group (122,880 rows) DuckDB also
// writes the data straight into the database file instead of the WAL. In
// this project's measurements that is about 3x the appender's rate.
//
// A table is a list of columns, each saying how to take its value from a
// record: the column order is the table's (schema.go).

// arrowMem holds the columns' buffers outside the Go heap: they are
// written once, read by DuckDB and released after the insert, so the
// garbage collector has no business with them, and C's allocator hands the
// same pages back for the next batch instead of fresh ones to fault in.
var arrowMem memory.Allocator = mallocator.NewMallocator()

// column is one column of a table of T. fill appends the column's values
// of all the rows to a builder with room reserved for them: one call per
// column rather than per value, with the builder's type asserted once.
type column[T any] struct {
	name string
	typ  arrow.DataType
	fill func(b array.Builder, rows []*T)
}

// table is the column layout of a DuckDB table filled from records of T.
type table[T any] struct {
	name   string
	cols   []column[T]
	schema *arrow.Schema
}

func newTable[T any](name string, cols ...column[T]) *table[T] {
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
	}
	return &table[T]{name: name, cols: cols, schema: arrow.NewSchema(fields, nil)}
}

// build turns records into one Arrow record batch (nil when there are none).
func (t *table[T]) build(rows []*T) arrow.RecordBatch {
	if len(rows) == 0 {
		return nil
	}
	b := array.NewRecordBuilder(arrowMem, t.schema)
	defer b.Release()
	// column by column: each builder is sized once and stays in cache
	for i, c := range t.cols {
		f := b.Field(i)
		f.Reserve(len(rows))
		c.fill(f, rows)
	}
	return b.NewRecordBatch()
}

// with returns rec with the named column replaced by the constant v
// (the caller releases the result).
func (t *table[T]) with(rec arrow.RecordBatch, name string, v int64) arrow.RecordBatch {
	i := slices.IndexFunc(t.cols, func(c column[T]) bool { return c.name == name })
	n := int(rec.NumRows())
	sb := array.NewInt64Builder(arrowMem)
	defer sb.Release()
	sb.Reserve(n)
	for range n {
		sb.UnsafeAppend(v)
	}
	arr := sb.NewInt64Array()
	defer arr.Release()
	cols := slices.Clone(rec.Columns())
	cols[i] = arr
	return array.NewRecordBatch(t.schema, cols, int64(n))
}

// insertArrow inserts rec into the table into, through DuckDB's Arrow scan
// of it as the view named view.
func insertArrow(ctx context.Context, conn driver.Conn, rec arrow.RecordBatch, view, into string) error {
	rdr, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		return fmt.Errorf("%s: %w", into, err)
	}
	defer rdr.Release()
	ar, err := duckdb.NewArrowFromConn(conn)
	if err != nil {
		return fmt.Errorf("%s: arrow: %w", into, err)
	}
	release, err := ar.RegisterView(rdr, view)
	if err != nil {
		return fmt.Errorf("%s: arrow view: %w", into, err)
	}
	defer release()
	// SELECT * only: selecting expressions over DuckDB's Arrow scan crashed
	// it (v1.5.6); constants are swapped into the record instead (with)
	if _, err := conn.(driver.ExecerContext).ExecContext(ctx, "INSERT INTO "+into+" SELECT * FROM "+view, nil); err != nil {
		return fmt.Errorf("insert into %s: %w", into, err)
	}
	return nil
}

// Column constructors. Empty strings, zero numbers and zero times are
// NULL, as in the record types zero means unknown; strings are made valid
// UTF-8 (DuckDB refuses invalid text).

func textCol[T any](name string, get func(*T) string) column[T] {
	return column[T]{name, arrow.BinaryTypes.String, func(b array.Builder, rows []*T) {
		sb := b.(*array.StringBuilder)
		for _, r := range rows {
			appendText(sb, get(r))
		}
	}}
}

func appendText(b *array.StringBuilder, s string) {
	switch {
	case s == "":
		b.AppendNull()
	case !utf8.ValidString(s):
		b.Append(strings.ToValidUTF8(s, "\uFFFD"))
	default:
		b.Append(s)
	}
}

func listCol[T any](name string, get func(*T) []string) column[T] {
	return column[T]{name, arrow.ListOf(arrow.BinaryTypes.String), func(b array.Builder, rows []*T) {
		lb := b.(*array.ListBuilder)
		vb := lb.ValueBuilder().(*array.StringBuilder)
		for _, r := range rows {
			// an empty string in a list (a tag, a CPE) says nothing, and
			// stored it would be a NULL element that list functions choke on
			vs := nonEmpty(get(r))
			if len(vs) == 0 {
				lb.AppendNull()
				continue
			}
			lb.Append(true)
			for _, v := range vs {
				appendText(vb, v)
			}
		}
	}}
}

func blobCol[T any](name string, get func(*T) []byte) column[T] {
	return column[T]{name, arrow.BinaryTypes.Binary, func(b array.Builder, rows []*T) {
		bb := b.(*array.BinaryBuilder)
		// the values' bytes too (payloads, banners, details: the bulk of
		// a call), or the buffer grows by doubling, each time a fresh
		// zeroed allocation and a copy
		n := 0
		for _, r := range rows {
			n += len(get(r))
		}
		bb.ReserveData(n)
		for _, r := range rows {
			if v := get(r); len(v) > 0 {
				bb.Append(v)
			} else {
				bb.AppendNull()
			}
		}
	}}
}

func idCol[T any](name string, get func(*T) [16]byte) column[T] {
	return column[T]{name, &arrow.FixedSizeBinaryType{ByteWidth: 16}, func(b array.Builder, rows []*T) {
		fb := b.(*array.FixedSizeBinaryBuilder)
		for _, r := range rows {
			id := get(r)
			fb.Append(id[:])
		}
	}}
}

// fixed is the builder of a fixed-width column with its unchecked
// appends (the room is reserved before fill).
type fixed[V any] interface {
	array.Builder
	UnsafeAppend(V)
	UnsafeAppendBoolToBitmap(bool)
}

// fixedCol is a column of fixed-width values; with zeroIsNull, a zero
// value is stored as NULL (unknown).
func fixedCol[T any, V comparable, B fixed[V]](name string, typ arrow.DataType, zeroIsNull bool, get func(*T) V) column[T] {
	return column[T]{name, typ, func(b array.Builder, rows []*T) {
		fb := b.(B)
		var zero V
		for _, r := range rows {
			if v := get(r); !zeroIsNull || v != zero {
				fb.UnsafeAppend(v)
			} else {
				fb.UnsafeAppendBoolToBitmap(false)
			}
		}
	}}
}

// naiveMicros is a timestamp without a time zone, as the TIMESTAMP columns
// are (UTC by convention). Arrow's Timestamp_us carries "UTC", which DuckDB
// reads as TIMESTAMPTZ and casts to TIMESTAMP value by value through ICU's
// calendar: about 2% of the ingest's CPU.
var naiveMicros = &arrow.TimestampType{Unit: arrow.Microsecond}

func timeCol[T any](name string, get func(*T) int64) column[T] {
	return fixedCol[T, arrow.Timestamp, *array.TimestampBuilder](name, naiveMicros, true,
		func(r *T) arrow.Timestamp { return arrow.Timestamp(get(r)) })
}

func u64Col[T any](name string, get func(*T) uint64) column[T] {
	return fixedCol[T, uint64, *array.Uint64Builder](name, arrow.PrimitiveTypes.Uint64, false, get)
}

func i64Col[T any](name string, get func(*T) int64) column[T] {
	return fixedCol[T, int64, *array.Int64Builder](name, arrow.PrimitiveTypes.Int64, false, get)
}

func u32Col[T any](name string, get func(*T) uint32) column[T] {
	return fixedCol[T, uint32, *array.Uint32Builder](name, arrow.PrimitiveTypes.Uint32, true, get)
}

func i32Col[T any](name string, get func(*T) int32) column[T] {
	return fixedCol[T, int32, *array.Int32Builder](name, arrow.PrimitiveTypes.Int32, true, get)
}

func u16Col[T any](name string, get func(*T) uint16) column[T] {
	return fixedCol[T, uint16, *array.Uint16Builder](name, arrow.PrimitiveTypes.Uint16, true, get)
}

func u8Col[T any](name string, get func(*T) uint8) column[T] {
	return fixedCol[T, uint8, *array.Uint8Builder](name, arrow.PrimitiveTypes.Uint8, true, get)
}

// keyU16Col is a uint16 that is never NULL (a key: 0 is a value).
func keyU16Col[T any](name string, get func(*T) uint16) column[T] {
	return fixedCol[T, uint16, *array.Uint16Builder](name, arrow.PrimitiveTypes.Uint16, false, get)
}

func boolCol[T any](name string, get func(*T) bool) column[T] {
	return column[T]{name, arrow.FixedWidthTypes.Boolean, func(b array.Builder, rows []*T) {
		bb := b.(*array.BooleanBuilder)
		for _, r := range rows {
			bb.UnsafeAppend(get(r))
		}
	}}
}
