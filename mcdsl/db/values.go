package db

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsUnique reports whether err is SQLite refusing a row that would repeat a
// UNIQUE or PRIMARY KEY value, by its extended result code rather than its
// text.
func IsUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

// TimeFormat is how platform databases store instants: RFC 3339 in UTC with
// nanoseconds, as TEXT.
const TimeFormat = time.RFC3339Nano

// FormatTime is t as stored (UTC, TimeFormat).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ParseTime reads a stored instant.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}

// Time adapts a time.Time for Scan (a stored TEXT instant; NULL is the
// zero time) and for query arguments (stored as TimeFormat):
//
//	row.Scan(&r.Name, db.Time(&r.CreatedAt))
//	tx.ExecContext(ctx, `UPDATE t SET at = ?`, db.Time(&now))
func Time(t *time.Time) interface {
	sql.Scanner
	driver.Valuer
} {
	return timeValue{t}
}

type timeValue struct{ t *time.Time }

func (v timeValue) Scan(src any) error {
	switch s := src.(type) {
	case nil:
		*v.t = time.Time{}
		return nil
	case string:
		t, err := ParseTime(s)
		*v.t = t
		return err
	case []byte:
		t, err := ParseTime(string(s))
		*v.t = t
		return err
	case time.Time:
		*v.t = s.UTC()
		return nil
	}
	return fmt.Errorf("stored time: unexpected %T", src)
}

func (v timeValue) Value() (driver.Value, error) { return FormatTime(*v.t), nil }

// NullTime adapts a *time.Time field that may be NULL: NULL scans as nil,
// and a nil pointer is stored as NULL.
func NullTime(t **time.Time) interface {
	sql.Scanner
	driver.Valuer
} {
	return nullTimeValue{t}
}

type nullTimeValue struct{ t **time.Time }

func (v nullTimeValue) Scan(src any) error {
	if src == nil {
		*v.t = nil
		return nil
	}
	var t time.Time
	if err := (timeValue{&t}).Scan(src); err != nil {
		return err
	}
	*v.t = &t
	return nil
}

func (v nullTimeValue) Value() (driver.Value, error) {
	if *v.t == nil {
		return nil, nil
	}
	return FormatTime(**v.t), nil
}
