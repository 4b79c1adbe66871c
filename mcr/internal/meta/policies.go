package meta

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcr/internal/access"
)

// ErrRuleNotFound is the answer for no access rule with that id.
var ErrRuleNotFound = apierr.New(apierr.NotFound, "no such policy rule")

func jsonList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l)
	return string(b)
}

// Rules lists every access rule.
func (s *Store) Rules(ctx context.Context) ([]access.Rule, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, priority, effect, repository, accounts, roles, account_types, actions, description, created_by, created_at, updated_at FROM policies ORDER BY priority, id`)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	out := []access.Rule{}
	for rows.Next() {
		var r access.Rule
		var acc, roles, types, acts string
		if err := rows.Scan(&r.ID, &r.Priority, &r.Effect, &r.Repository, &acc, &roles, &types, &acts, &r.Description, &r.CreatedBy,
			db.Time(&r.CreatedAt), db.Time(&r.UpdatedAt)); err != nil {
			return nil, err
		}
		for _, p := range []struct {
			s   string
			dst *[]string
		}{{acc, &r.Accounts}, {roles, &r.Roles}, {types, &r.AccountTypes}, {acts, &r.Actions}} {
			if err := json.Unmarshal([]byte(p.s), p.dst); err != nil {
				return nil, err
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Rule returns one rule or ErrRuleNotFound.
func (s *Store) Rule(ctx context.Context, id int64) (access.Rule, error) {
	rules, err := s.Rules(ctx)
	if err != nil {
		return access.Rule{}, err
	}
	for _, r := range rules {
		if r.ID == id {
			return r, nil
		}
	}
	return access.Rule{}, ErrRuleNotFound
}

// CreateRule stores a validated rule and returns it with its id.
func (s *Store) CreateRule(ctx context.Context, r access.Rule) (access.Rule, error) {
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		now := s.Now()
		r.CreatedAt, r.UpdatedAt = now, now
		res, err := tx.ExecContext(ctx, `INSERT INTO policies (priority, effect, repository, accounts, roles, account_types, actions, description, created_by, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.Priority, r.Effect, r.Repository, jsonList(r.Accounts), jsonList(r.Roles),
			jsonList(r.AccountTypes), jsonList(r.Actions), r.Description, r.CreatedBy, db.FormatTime(now), db.FormatTime(now))
		if err != nil {
			return err
		}
		r.ID, err = res.LastInsertId()
		return err
	})
	return r, err
}

// UpdateRule replaces rule r.ID (keeping its creator and creation time).
func (s *Store) UpdateRule(ctx context.Context, r access.Rule) (access.Rule, error) {
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE policies SET priority = ?, effect = ?, repository = ?, accounts = ?, roles = ?, account_types = ?, actions = ?, description = ?, updated_at = ? WHERE id = ?`,
			r.Priority, r.Effect, r.Repository, jsonList(r.Accounts), jsonList(r.Roles), jsonList(r.AccountTypes), jsonList(r.Actions),
			r.Description, s.ts(), r.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrRuleNotFound
		}
		return nil
	})
	if err != nil {
		return access.Rule{}, err
	}
	return s.Rule(ctx, r.ID)
}

// DeleteRule removes a rule, returning it, or ErrRuleNotFound.
func (s *Store) DeleteRule(ctx context.Context, id int64) (access.Rule, error) {
	r, err := s.Rule(ctx, id)
	if err != nil {
		return access.Rule{}, err
	}
	err = s.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM policies WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrRuleNotFound
		}
		return nil
	})
	if errors.Is(err, ErrRuleNotFound) {
		return access.Rule{}, err
	}
	return r, err
}
