package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// InsertCertificate records an issued certificate and indexes its names.
func (s *Store) InsertCertificate(ctx context.Context, mountID string, c pki.Certificate) error {
	dns, err := json.Marshal(c.DNSNames)
	if err != nil {
		return err
	}
	ips := make([]string, len(c.IPs))
	for i, a := range c.IPs {
		ips[i] = a.String()
	}
	ipJSON, err := json.Marshal(ips)
	if err != nil {
		return err
	}
	return s.tx(ctx, "record certificate", func(tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, `INSERT INTO certificates (mount_id, serial, issuer, common_name, dns_names, ip_addresses,
			profile, key_type, not_before, not_after, requested_by, created_at, renewed_from, der)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			mountID, c.Serial, c.Issuer, c.CommonName, string(dns), string(ipJSON), string(c.Profile), string(c.KeyType),
			c.NotBefore.Unix(), c.NotAfter.Unix(), c.RequestedBy, db.Time(&c.CreatedAt), c.RenewedFrom, c.DER)
		if db.IsUnique(err) {
			return fmt.Errorf("%w: serial %s", engine.ErrConflict, c.Serial)
		}
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, n := range append(append([]string{}, c.DNSNames...), ips...) {
			n = strings.ToLower(n)
			if seen[n] {
				continue
			}
			seen[n] = true
			if _, err := s.txExec(ctx, tx, `INSERT INTO certificate_names (mount_id, serial, name) VALUES (?, ?, ?)`, mountID, c.Serial, n); err != nil {
				return err
			}
		}
		return nil
	})
}

const certColumns = `serial, issuer, common_name, dns_names, ip_addresses, profile, key_type, not_before, not_after,
	requested_by, created_at, revoked_at, reason, renewed_from, der`

func scanCertificate(sc interface{ Scan(...any) error }, mount string) (pki.Certificate, error) {
	var c pki.Certificate
	var dns, ips, profile, keyType string
	var nb, na int64
	var reason int
	err := sc.Scan(&c.Serial, &c.Issuer, &c.CommonName, &dns, &ips, &profile, &keyType, &nb, &na,
		&c.RequestedBy, db.Time(&c.CreatedAt), db.NullTime(&c.RevokedAt), &reason, &c.RenewedFrom, &c.DER)
	if err != nil {
		return c, err
	}
	c.Mount, c.Profile, c.KeyType, c.Reason = mount, pki.Profile(profile), pki.KeyType(keyType), pki.Reason(reason)
	c.NotBefore, c.NotAfter = time.Unix(nb, 0).UTC(), time.Unix(na, 0).UTC()
	if err := json.Unmarshal([]byte(dns), &c.DNSNames); err != nil {
		return c, fmt.Errorf("stored dns_names of %s: %w", c.Serial, err)
	}
	var ipStrs []string
	if err := json.Unmarshal([]byte(ips), &ipStrs); err != nil {
		return c, fmt.Errorf("stored ip_addresses of %s: %w", c.Serial, err)
	}
	for _, s := range ipStrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return c, fmt.Errorf("stored ip_addresses of %s: %w", c.Serial, err)
		}
		c.IPs = append(c.IPs, a)
	}
	return c, nil
}

// Certificate reads one certificate record; engine.ErrNotFound if absent.
func (s *Store) Certificate(ctx context.Context, mountID, mountName, serial string) (pki.Certificate, error) {
	row := s.row(ctx, `SELECT `+certColumns+` FROM certificates WHERE mount_id = ? AND serial = ?`, mountID, serial)
	c, err := scanCertificate(row, mountName)
	if errors.Is(err, sql.ErrNoRows) {
		return pki.Certificate{}, fmt.Errorf("%w: certificate %s", engine.ErrNotFound, serial)
	}
	if err != nil {
		return pki.Certificate{}, fmt.Errorf("read certificate: %w", err)
	}
	return c, nil
}

// Certificates lists certificate records by filter, soonest expiry first.
func (s *Store) Certificates(ctx context.Context, mountID, mountName string, f pki.Filter) ([]pki.Certificate, error) {
	q := `SELECT ` + certColumns + ` FROM certificates c WHERE mount_id = ?`
	args := []any{mountID}
	now := f.Now.Unix()
	if f.Issuer != "" {
		q += ` AND issuer = ?`
		args = append(args, f.Issuer)
	}
	if f.Name != "" {
		q += ` AND EXISTS (SELECT 1 FROM certificate_names n WHERE n.mount_id = c.mount_id AND n.serial = c.serial AND n.name = ?)`
		args = append(args, strings.ToLower(f.Name))
	}
	if f.RequestedBy != "" {
		q += ` AND requested_by = ?`
		args = append(args, f.RequestedBy)
	}
	switch f.Status {
	case pki.Valid:
		q += ` AND revoked_at IS NULL AND not_after > ?`
		args = append(args, now)
	case pki.Revoked:
		q += ` AND revoked_at IS NOT NULL`
	case pki.Expired:
		q += ` AND revoked_at IS NULL AND not_after <= ?`
		args = append(args, now)
	}
	if f.ExpiringWithin > 0 {
		q += ` AND revoked_at IS NULL AND not_after > ? AND not_after <= ?`
		args = append(args, now, f.Now.Add(f.ExpiringWithin).Unix())
	}
	q += ` ORDER BY not_after, serial LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []pki.Certificate
	for rows.Next() {
		c, err := scanCertificate(rows, mountName)
		if err != nil {
			return nil, fmt.Errorf("list certificates: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Revoke marks a certificate revoked at (kept to the second, as CRLs
// and OCSP carry it, which also keeps the stored times in one fixed-width
// form that MAX orders); engine.ErrConflict if it is already,
// engine.ErrNotFound if there is none.
func (s *Store) Revoke(ctx context.Context, mountID, serial string, at time.Time, reason pki.Reason) error {
	at = at.UTC().Truncate(time.Second)
	return s.tx(ctx, "revoke", func(tx *sql.Tx) error {
		var revoked sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM certificates WHERE mount_id = ? AND serial = ?`, mountID, serial).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: certificate %s", engine.ErrNotFound, serial)
		}
		if err != nil {
			return err
		}
		if revoked.Valid {
			return fmt.Errorf("%w: certificate %s is revoked already", engine.ErrConflict, serial)
		}
		_, err = tx.ExecContext(ctx, `UPDATE certificates SET revoked_at = ?, reason = ? WHERE mount_id = ? AND serial = ?`,
			db.Time(&at), int(reason), mountID, serial)
		return err
	})
}

// RevokedEntry is one line of a CRL.
type RevokedEntry struct {
	Serial    string
	RevokedAt time.Time
	Reason    pki.Reason
}

// RevokedBy lists the revoked, unexpired-at-cutoff certificates of an
// issuer (a certificate that expired before cutoff may leave the CRL).
func (s *Store) RevokedBy(ctx context.Context, mountID, issuer string, cutoff time.Time) ([]RevokedEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT serial, revoked_at, reason FROM certificates
		WHERE mount_id = ? AND issuer = ? AND revoked_at IS NOT NULL AND not_after > ? ORDER BY serial`,
		mountID, issuer, cutoff.Unix())
	if err != nil {
		return nil, fmt.Errorf("list revoked: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []RevokedEntry
	for rows.Next() {
		var e RevokedEntry
		var reason int
		if err := rows.Scan(&e.Serial, db.Time(&e.RevokedAt), &reason); err != nil {
			return nil, fmt.Errorf("list revoked: %w", err)
		}
		e.Reason = pki.Reason(reason)
		out = append(out, e)
	}
	return out, rows.Err()
}

// LastRevocation is the time of an issuer's latest revocation (zero if
// none), to tell whether its CRL is stale.
func (s *Store) LastRevocation(ctx context.Context, mountID, issuer string) (time.Time, error) {
	var last sql.NullString
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(revoked_at) FROM certificates WHERE mount_id = ? AND issuer = ?`, mountID, issuer).Scan(&last); err != nil {
		return time.Time{}, fmt.Errorf("last revocation: %w", err)
	}
	if !last.Valid {
		return time.Time{}, nil
	}
	return db.ParseTime(last.String)
}

// PutCACert stores the public copy of the root's or an issuer's
// certificate.
func (s *Store) PutCACert(ctx context.Context, mountID, name string, der []byte) error {
	_, err := s.exec(ctx, `INSERT INTO ca_certs (mount_id, name, der) VALUES (?, ?, ?)
		ON CONFLICT (mount_id, name) DO UPDATE SET der = excluded.der`, mountID, name, der)
	if err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}
	return nil
}

// CACert reads the public copy of a CA certificate; engine.ErrNotFound if
// absent.
func (s *Store) CACert(ctx context.Context, mountID, name string) ([]byte, error) {
	var der []byte
	err := s.db.QueryRowContext(ctx, `SELECT der FROM ca_certs WHERE mount_id = ? AND name = ?`, mountID, name).Scan(&der)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: issuer %s", engine.ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	return der, nil
}

// CACerts lists the public CA certificates of a mount by name.
func (s *Store) CACerts(ctx context.Context, mountID string) (map[string][]byte, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, der FROM ca_certs WHERE mount_id = ?`, mountID)
	if err != nil {
		return nil, fmt.Errorf("list CA certificates: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := map[string][]byte{}
	for rows.Next() {
		var name string
		var der []byte
		if err := rows.Scan(&name, &der); err != nil {
			return nil, fmt.Errorf("list CA certificates: %w", err)
		}
		out[name] = der
	}
	return out, rows.Err()
}

// CRL is a stored CRL.
type CRL struct {
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	DER        []byte
}

// CRL reads an issuer's current CRL; engine.ErrNotFound if none is built
// yet.
func (s *Store) CRL(ctx context.Context, mountID, issuer string) (CRL, error) {
	var c CRL
	err := s.db.QueryRowContext(ctx, `SELECT number, this_update, next_update, der FROM crls WHERE mount_id = ? AND issuer = ?`, mountID, issuer).
		Scan(&c.Number, db.Time(&c.ThisUpdate), db.Time(&c.NextUpdate), &c.DER)
	if errors.Is(err, sql.ErrNoRows) {
		return CRL{}, fmt.Errorf("%w: no CRL for issuer %s", engine.ErrNotFound, issuer)
	}
	if err != nil {
		return CRL{}, fmt.Errorf("read CRL: %w", err)
	}
	return c, nil
}

// PutCRL stores an issuer's new CRL, refusing one whose number does not
// exceed the stored one's (CRL numbers only grow).
func (s *Store) PutCRL(ctx context.Context, mountID, issuer string, c CRL) error {
	res, err := s.exec(ctx, `INSERT INTO crls (mount_id, issuer, number, this_update, next_update, der) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (mount_id, issuer) DO UPDATE SET number = excluded.number, this_update = excluded.this_update,
			next_update = excluded.next_update, der = excluded.der WHERE excluded.number > crls.number`,
		mountID, issuer, c.Number, db.Time(&c.ThisUpdate), db.Time(&c.NextUpdate), c.DER)
	if err != nil {
		return fmt.Errorf("write CRL: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: CRL number %d is not above the stored one", engine.ErrConflict, c.Number)
	}
	return nil
}
