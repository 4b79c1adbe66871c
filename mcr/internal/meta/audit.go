package meta

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
)

// Event is one audit record: who did what to which repository, when.
type Event struct {
	ID         int64     `json:"id"`
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	Repository string    `json:"repository"`
	Reference  string    `json:"reference"`
	Digest     string    `json:"digest"`
	Remote     string    `json:"remote"`
	Detail     string    `json:"detail"`
}

// AuditFilter narrows AuditEvents; zero fields match everything.
type AuditFilter struct {
	Repository string
	Actor      string
	Action     string
	Since      time.Time
	// BeforeID pages backwards: only events with a smaller id.
	BeforeID int64
	Limit    int
}

// AppendEvent records e (its time is the store's clock when zero).
func (s *Store) AppendEvent(ctx context.Context, e Event) error {
	if e.At.IsZero() {
		e.At = s.Now()
	}
	return s.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_events (at, actor, action, repository, reference, digest, remote, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			db.FormatTime(e.At), e.Actor, e.Action, e.Repository, e.Reference, e.Digest, e.Remote, e.Detail)
		return err
	})
}

// AuditEvents lists events matching f, newest first.
func (s *Store) AuditEvents(ctx context.Context, f AuditFilter) ([]Event, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if f.Repository != "" {
		add("repository = ?", f.Repository)
	}
	if f.Actor != "" {
		add("actor = ?", f.Actor)
	}
	if f.Action != "" {
		add("(action = ? OR action LIKE ? || '.%')", f.Action)
		args = append(args, f.Action)
	}
	if !f.Since.IsZero() {
		add("at >= ?", db.FormatTime(f.Since))
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	q := `SELECT id, at, actor, action, repository, reference, digest, remote, detail FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	out := []Event{}
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.ID, db.Time(&e.At), &e.Actor, &e.Action, &e.Repository, &e.Reference, &e.Digest, &e.Remote, &e.Detail); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
