package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
)

// Operation is one deploy, undeploy, stop, start, restart or recover of a
// service. Step is the index of the step being done (state running) or
// being undone (state rolling_back); it is written before the step runs,
// so after a crash the step found there is the one to do again (steps are
// idempotent) or to undo.
type Operation struct {
	ID       int64
	Service  string
	Kind     string
	Revision int64
	// PrevRevision is the revision serving when the operation began.
	PrevRevision int64
	State        string
	Step         int
	Error        string
	StartedAt    time.Time
	FinishedAt   *time.Time
}

// Finished reports whether the operation ended.
func (o Operation) Finished() bool { return o.State != OpRunning && o.State != OpRollingBack }

const opColumns = `id, service, kind, revision, prev_revision, state, step, error, started_at, finished_at`

func scanOp(sc interface{ Scan(...any) error }) (Operation, error) {
	var o Operation
	err := sc.Scan(&o.ID, &o.Service, &o.Kind, &o.Revision, &o.PrevRevision, &o.State, &o.Step, &o.Error,
		db.Time(&o.StartedAt), db.NullTime(&o.FinishedAt))
	return o, err
}

// NewOperation records an operation starting at step 0 and returns its id.
func (s *Store) NewOperation(ctx context.Context, o Operation) (int64, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO operations (service, kind, revision, prev_revision, state, step, error, started_at)
		VALUES (?, ?, ?, ?, ?, 0, '', ?)`, o.Service, o.Kind, o.Revision, o.PrevRevision, OpRunning, s.stamp())
	if err != nil {
		return 0, fmt.Errorf("record operation: %w", err)
	}
	return res.LastInsertId()
}

// SetStep records the step an operation is at and its state.
func (s *Store) SetStep(ctx context.Context, id int64, state string, step int) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE operations SET state = ?, step = ? WHERE id = ?`, state, step, id); err != nil {
		return fmt.Errorf("record operation step: %w", err)
	}
	return nil
}

// SetError records why an operation is failing.
func (s *Store) SetError(ctx context.Context, id int64, msg string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE operations SET error = ? WHERE id = ?`, msg, id); err != nil {
		return fmt.Errorf("record operation error: %w", err)
	}
	return nil
}

// FinishOperation records an operation's end.
func (s *Store) FinishOperation(ctx context.Context, id int64, state string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE operations SET state = ?, finished_at = ? WHERE id = ?`, state, s.stamp(), id); err != nil {
		return fmt.Errorf("record operation end: %w", err)
	}
	return nil
}

// Operation returns one operation.
func (s *Store) Operation(ctx context.Context, id int64) (Operation, error) {
	o, err := scanOp(s.db.QueryRowContext(ctx, `SELECT `+opColumns+` FROM operations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("%w: operation %d", ErrNotFound, id)
	}
	return o, err
}

// Unfinished lists the operations a crash interrupted, oldest first.
func (s *Store) Unfinished(ctx context.Context) ([]Operation, error) {
	return s.ops(ctx, `SELECT `+opColumns+` FROM operations WHERE state IN (?, ?) ORDER BY id`, OpRunning, OpRollingBack)
}

// LastOperation is a service's latest operation (ErrNotFound if none).
func (s *Store) LastOperation(ctx context.Context, service string) (Operation, error) {
	o, err := scanOp(s.db.QueryRowContext(ctx, `SELECT `+opColumns+` FROM operations WHERE service = ? ORDER BY id DESC LIMIT 1`, service))
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("%w: operations of %s", ErrNotFound, service)
	}
	return o, err
}

func (s *Store) ops(ctx context.Context, q string, args ...any) ([]Operation, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list operations: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Operation
	for rows.Next() {
		o, err := scanOp(rows)
		if err != nil {
			return nil, fmt.Errorf("list operations: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// Event is one transition of an operation step.
type Event struct {
	ID        int64
	Operation int64
	Service   string
	Kind      string
	Step      string
	State     string
	Message   string
	At        time.Time
}

// AddEvent appends an event and returns it with its id and time.
func (s *Store) AddEvent(ctx context.Context, e Event) (Event, error) {
	e.At = s.now().UTC()
	res, err := s.db.ExecContext(ctx, `INSERT INTO events (operation, service, kind, step, state, message, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.Operation, e.Service, e.Kind, e.Step, e.State, e.Message, db.FormatTime(e.At))
	if err != nil {
		return e, fmt.Errorf("record event: %w", err)
	}
	e.ID, _ = res.LastInsertId()
	return e, nil
}

// Events lists a service's last limit events, oldest first.
func (s *Store) Events(ctx context.Context, service string, limit int) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, operation, service, kind, step, state, message, at FROM
		(SELECT * FROM events WHERE service = ? ORDER BY id DESC LIMIT ?) ORDER BY id`, service, limit)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Event
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.ID, &e.Operation, &e.Service, &e.Kind, &e.Step, &e.State, &e.Message, db.Time(&e.At)); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Alert is something the monitor reported.
type Alert struct {
	ID      int64
	At      time.Time
	Service string
	Kind    string
	Message string
}

// AddAlert records an alert.
func (s *Store) AddAlert(ctx context.Context, a Alert) (Alert, error) {
	if a.At.IsZero() {
		a.At = s.now().UTC()
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO alerts (at, service, kind, message) VALUES (?, ?, ?, ?)`,
		db.FormatTime(a.At), a.Service, a.Kind, a.Message)
	if err != nil {
		return a, fmt.Errorf("record alert: %w", err)
	}
	a.ID, _ = res.LastInsertId()
	// Keep the table bounded: the last 10,000 alerts are history enough.
	_, _ = s.db.ExecContext(ctx, `DELETE FROM alerts WHERE id <= ?`, a.ID-10000)
	return a, nil
}

// Alerts lists the last limit alerts (of one service unless ""), newest
// last.
func (s *Store) Alerts(ctx context.Context, service string, limit int) ([]Alert, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, service, kind, message FROM
		(SELECT * FROM alerts WHERE ? = '' OR service = ? ORDER BY id DESC LIMIT ?) ORDER BY id`, service, service, limit)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Alert
	for rows.Next() {
		var a Alert
		if err := rows.Scan(&a.ID, db.Time(&a.At), &a.Service, &a.Kind, &a.Message); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
