package clickhouse

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/store"
)

// Deletions are mutations (ALTER TABLE ... DELETE), run on each shard's
// local table and waited for: 18.16 has neither lightweight deletes nor
// mutations_sync. A table with nothing to delete is not touched (a
// mutation rewrites the parts it reads).

// deleteWhere counts the rows of a shard-local table matching cond and
// deletes them; counted with FINAL for the services, whose replaced rows
// are not services.
func (s *DB) deleteWhere(ctx context.Context, table, cond string, args ...any) (int64, error) {
	final := ""
	if table == "services" {
		final = " FINAL"
	}
	var total int64
	for i, conn := range s.shards {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+s.local(table)+final+" WHERE "+cond, args...).Scan(&n); err != nil {
			return total, fmt.Errorf("shard %d: %w", i+1, err)
		}
		if n == 0 {
			continue
		}
		if err := s.mutate(ctx, conn, s.local(table), "DELETE WHERE "+cond, args...); err != nil {
			return total, fmt.Errorf("shard %d: %w", i+1, err)
		}
		total += int64(n)
	}
	return total, nil
}

// Purge deletes what the scans stored about the addresses of the prefixes
// (current services and their history); sensor events stay.
func (s *DB) Purge(ctx context.Context, prefixes []netip.Prefix) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var total int64
	for _, p := range prefixes {
		p = p.Masked()
		loHi, loLo := query.AddrToHiLo(p.Addr())
		hiHi, hiLo := query.AddrToHiLo(lastAddr(p))
		cond := fmt.Sprintf("(ip_hi > %[1]d OR ip_hi = %[1]d AND ip_lo >= %[2]d) AND (ip_hi < %[3]d OR ip_hi = %[3]d AND ip_lo <= %[4]d)",
			loHi, loLo, hiHi, hiLo)
		for _, table := range []string{"services", "service_history"} {
			n, err := s.deleteWhere(ctx, table, cond)
			total += n
			if err != nil {
				return total, fmt.Errorf("purge %s from %s: %w", p, table, err)
			}
		}
	}
	return total, nil
}

// Expire deletes what is older than the retention settings. Batch IDs are
// kept for at least 30 days, longer than the bus keeps a message. A
// source's profile goes with its last event (the count of profiles is of
// sources none of whose events are left).
func (s *DB) Expire(ctx context.Context, now time.Time) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	ret := s.opts.Retention
	var total int64
	if ret.Events > 0 {
		cut := micros(now.Add(-ret.Events))
		var n uint64
		if err := s.q.QueryRow(ctx, `SELECT count() FROM (SELECT max(ts_us) AS m FROM events GROUP BY src_lo, src_hi HAVING m < ?)`, cut).Scan(&n); err != nil {
			return total, fmt.Errorf("expire profiles: %w", err)
		}
		total += int64(n)
	}
	for _, d := range []struct {
		table, col string
		age        time.Duration
	}{
		{"events", "ts_us", ret.Events},
		{"service_history", "ts_us", ret.History},
		{"services", "last_us", ret.Services},
	} {
		if d.age <= 0 {
			continue
		}
		n, err := s.deleteWhere(ctx, d.table, d.col+" < ?", micros(now.Add(-d.age)))
		total += n
		if err != nil {
			return total, fmt.Errorf("expire %s: %w", d.table, err)
		}
	}
	cut := now.Add(-max(30*24*time.Hour, ret.Events, ret.History)).UTC().Truncate(time.Second)
	var n uint64
	if err := s.shards[0].QueryRow(ctx, "SELECT count() FROM batches FINAL WHERE stored < ?", cut).Scan(&n); err != nil {
		return total, fmt.Errorf("expire batches: %w", err)
	}
	if n > 0 {
		if err := s.mutate(ctx, s.shards[0], "batches", "DELETE WHERE stored < ?", cut); err != nil {
			return total, fmt.Errorf("expire batches: %w", err)
		}
		total += int64(n)
	}
	return total, nil
}

// Usage counts the rows of each table (profiles: the sources with events;
// batches: those stored) and the bytes of the database's parts on every
// shard.
func (s *DB) Usage(ctx context.Context) (store.Usage, error) {
	u := store.Usage{Tables: map[string]store.TableUsage{}}
	for _, c := range []struct{ name, q string }{
		{"services", "SELECT count() FROM services FINAL"},
		{"service_history", "SELECT count() FROM service_history"},
		{"events", "SELECT count() FROM events"},
		{"profiles", "SELECT uniqExact(src_lo, src_hi) FROM events"},
	} {
		var n uint64
		if err := s.q.QueryRow(ctx, c.q).Scan(&n); err != nil {
			return u, fmt.Errorf("usage of %s: %w", c.name, err)
		}
		u.Tables[c.name] = store.TableUsage{Rows: int64(n)}
	}
	var n uint64
	if err := s.shards[0].QueryRow(ctx, "SELECT count() FROM batches FINAL WHERE state = 1").Scan(&n); err != nil {
		return u, fmt.Errorf("usage of batches: %w", err)
	}
	u.Tables["batches"] = store.TableUsage{Rows: int64(n)}
	for i, conn := range s.shards {
		var b uint64
		if err := conn.QueryRow(ctx, "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = currentDatabase() AND active").Scan(&b); err != nil {
			return u, fmt.Errorf("usage on shard %d: %w", i+1, err)
		}
		u.Bytes += int64(b)
	}
	return u, nil
}
