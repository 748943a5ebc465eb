package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Profiles (the sensors' view of each source address) are derived from the
// events table by a refresher, off the ingest path: every second it folds
// the events stored since its watermark (the seq of the last ingest call it
// saw) into the profiles table, in one transaction with the new watermark.
// A profile is therefore at most about a second behind its events; Sync
// brings it up to date at once.

// profileRefresh is the shortest time between two refreshes; under load
// the refresher waits ten times as long as its last refresh took, so it
// never takes more than about a tenth of the writer's time.
const profileRefresh = time.Second

// Lists kept per profile are capped, so a source that touches every port
// of every sensor does not grow one row without bound.
const foldProfiles = `INSERT INTO profiles
SELECT src_lo, src_hi, min(ts), max(ts), count(*),
	list_slice(list_sort(list_distinct(list(dst_port) FILTER (WHERE dst_port IS NOT NULL))), 1, 1024),
	list_slice(list_sort(list_distinct(flatten(list(tags) FILTER (WHERE tags IS NOT NULL)))), 1, 256),
	list_slice(list_sort(list_distinct(list(sensor) FILTER (WHERE sensor IS NOT NULL))), 1, 256),
	list_slice(list_distinct(list(dst_lo)), 1, 1024),
	bool_or(handshake),
	CASE WHEN bool_or(classification = 'benign') THEN 'benign'
		WHEN bool_or(classification = 'malicious') THEN 'malicious' ELSE 'unknown' END,
	arg_max(actor, ts) FILTER (WHERE actor IS NOT NULL),
	arg_max(src_country, ts) FILTER (WHERE src_country IS NOT NULL),
	arg_max(src_asn, ts) FILTER (WHERE src_asn IS NOT NULL),
	arg_max(src_org, ts) FILTER (WHERE src_org IS NOT NULL)
FROM events WHERE seq > ? AND seq <= ? GROUP BY src_lo, src_hi
ON CONFLICT (src_lo, src_hi) DO UPDATE SET
	first_seen = least(profiles.first_seen, excluded.first_seen),
	last_seen = greatest(profiles.last_seen, excluded.last_seen),
	events = profiles.events + excluded.events,
	ports = list_slice(list_sort(list_distinct(list_concat(profiles.ports, excluded.ports))), 1, 1024),
	tags = list_slice(list_sort(list_distinct(list_concat(profiles.tags, excluded.tags))), 1, 256),
	sensors = list_slice(list_sort(list_distinct(list_concat(profiles.sensors, excluded.sensors))), 1, 256),
	dsts = list_slice(list_distinct(list_concat(profiles.dsts, excluded.dsts)), 1, 1024),
	handshake = profiles.handshake OR excluded.handshake,
	classification = CASE
		WHEN 'benign' IN (profiles.classification, excluded.classification) THEN 'benign'
		WHEN 'malicious' IN (profiles.classification, excluded.classification) THEN 'malicious'
		ELSE 'unknown' END,
	actor = coalesce(excluded.actor, profiles.actor),
	country = coalesce(excluded.country, profiles.country),
	asn = coalesce(excluded.asn, profiles.asn),
	org = coalesce(excluded.org, profiles.org)`

// refreshProfiles folds pending events into the profiles.
func (s *DB) refreshProfiles(ctx context.Context) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	upto := s.seqs.ended()
	if upto <= s.profileSeq {
		return nil
	}
	if _, err := s.w.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("refresh profiles: %w", err)
	}
	err := func() error {
		// the filter learns the new sources before their profiles exist
		if err := s.noteSources(ctx, upto); err != nil {
			return err
		}
		if _, err := s.w.ExecContext(ctx, foldProfiles, s.profileSeq, upto); err != nil {
			return err
		}
		_, err := s.w.ExecContext(ctx, `INSERT OR REPLACE INTO meta VALUES ('profiles_seq', ?)`, strconv.FormatInt(upto, 10))
		return err
	}()
	if err != nil {
		s.w.ExecContext(context.Background(), "ROLLBACK")
		return fmt.Errorf("refresh profiles: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("refresh profiles: %w", err)
	}
	s.profileSeq = upto
	return nil
}

// Sync makes everything ingested so far visible to every query, the
// derived profiles included.
func (s *DB) Sync(ctx context.Context) error { return s.refreshProfiles(ctx) }

// loadSeqs reads the last ingest seq and the profiles' watermark.
func (s *DB) loadSeqs(ctx context.Context) error {
	if err := s.w.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM events`).Scan(&s.seqs.last); err != nil {
		return fmt.Errorf("load ingest seq: %w", err)
	}
	var v string
	err := s.w.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'profiles_seq'`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("load profile watermark: %w", err)
	default:
		if s.profileSeq, err = strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("profile watermark %q: %w", v, err)
		}
	}
	return nil
}

// refresher runs refreshProfiles every second until the store closes.
func (s *DB) refresher() {
	defer close(s.refreshDone)
	wait := profileRefresh
	for {
		select {
		case <-s.closing:
			return
		case <-time.After(wait):
			start := time.Now()
			if err := s.refreshProfiles(context.Background()); err != nil {
				s.log.Error("refresh profiles", "err", err)
			}
			wait = max(profileRefresh, 10*time.Since(start))
		}
	}
}

// noteSources adds the sources of the events not folded yet to the
// profile filter, rebuilding it bigger when it is full (from the profiles
// table, which does not hold them yet, plus all of them). Under wmu.
func (s *DB) noteSources(ctx context.Context, upto int64) error {
	rows, err := s.w.QueryContext(ctx, `SELECT DISTINCT src_hi, src_lo FROM events WHERE seq > ? AND seq <= ?`, s.profileSeq, upto)
	if err != nil {
		return err
	}
	var fresh [][2]uint64
	full := false
	f := s.profiled.Load()
	for rows.Next() {
		var hi, lo uint64
		if err := rows.Scan(&hi, &lo); err != nil {
			rows.Close()
			return err
		}
		if !f.add(hi, lo) {
			full = true
		}
		fresh = append(fresh, [2]uint64{hi, lo})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if full {
		return s.loadSources(ctx, fresh)
	}
	return nil
}

// loadSources builds the profile filter from the profiles table, plus
// extra addresses, sized for twice what it holds.
func (s *DB) loadSources(ctx context.Context, extra [][2]uint64) error {
	var n int
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM profiles`).Scan(&n); err != nil {
		return fmt.Errorf("profile filter: %w", err)
	}
	f := newSources(max(2*(n+len(extra)), 1<<16))
	rows, err := s.w.QueryContext(ctx, `SELECT src_hi, src_lo FROM profiles`)
	if err != nil {
		return fmt.Errorf("profile filter: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var hi, lo uint64
		if err := rows.Scan(&hi, &lo); err != nil {
			return fmt.Errorf("profile filter: %w", err)
		}
		f.add(hi, lo)
	}
	for _, a := range extra {
		f.add(a[0], a[1])
	}
	s.profiled.Store(f)
	return rows.Err()
}
