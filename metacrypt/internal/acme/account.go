package acme

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/acme/jws"
)

// NewAccountRequest is a verified newAccount request (RFC 8555 §7.3).
type NewAccountRequest struct {
	// Key is the JWS's embedded key, which signed it.
	Key *jws.JWK
	// URL is the newAccount URL the request was sent to (the EAB's url).
	URL                string
	Contact            []string
	TermsAgreed        bool
	OnlyReturnExisting bool
	// EAB is the externalAccountBinding member, a JWS.
	EAB json.RawMessage
}

// MaxContacts bounds an account's contact URLs.
const MaxContacts = 10

// checkContacts accepts mailto: URLs of one address each.
func checkContacts(list []string) error {
	if len(list) > MaxContacts {
		return NewProblem(ErrInvalidContact, "more than %d contacts", MaxContacts)
	}
	for _, c := range list {
		addr, ok := strings.CutPrefix(c, "mailto:")
		if !ok {
			return NewProblem(ErrUnsupportedContact, "contact %q: only mailto: URLs are supported", c)
		}
		if strings.ContainsAny(addr, "?,") || len(addr) > 254 {
			return NewProblem(ErrInvalidContact, "contact %q: one address, no header fields", c)
		}
		if a, err := mail.ParseAddress(addr); err != nil || a.Address != addr {
			return NewProblem(ErrInvalidContact, "contact %q is not an e-mail address", c)
		}
	}
	return nil
}

// NewAccount registers an account, or returns the one the key already
// has (created false). A new account needs External Account Binding
// credentials: single use, unexpired, their MAC over the account key;
// the account is bound to their identity.
func (s *Service) NewAccount(ctx context.Context, mount, issuer string, r NewAccountRequest) (Account, bool, error) {
	st, err := s.store(ctx, mount)
	if err != nil {
		return Account{}, false, err
	}
	thumb := r.Key.Thumbprint()
	unlock := s.locks.lock("accounts/" + mount)
	defer unlock()
	id, err := st.AccountByKey(ctx, thumb)
	switch {
	case err == nil:
		a, err := st.Account(ctx, id)
		if err != nil {
			return Account{}, false, err
		}
		if a.Issuer != issuer {
			return Account{}, false, NewProblem(ErrUnauthorized, "this key belongs to an account of issuer %s's directory", a.Issuer)
		}
		if a.Status != StatusValid {
			return Account{}, false, NewProblem(ErrUnauthorized, "the account of this key is %s", a.Status)
		}
		return a, false, nil
	case apierr.KindOf(err) != apierr.NotFound:
		return Account{}, false, err
	}
	if r.OnlyReturnExisting {
		return Account{}, false, NewProblem(ErrAccountDoesNotExist, "no account has this key")
	}
	if len(r.EAB) == 0 || string(r.EAB) == "null" {
		return Account{}, false, NewProblem(ErrExternalAccountRequired, "registration needs External Account Binding credentials (metacryptctl acme eab create)")
	}
	if err := checkContacts(r.Contact); err != nil {
		return Account{}, false, err
	}
	inner, err := jws.ParseEAB(r.EAB, r.URL, r.Key)
	if err != nil {
		return Account{}, false, NewProblem(ErrMalformed, "externalAccountBinding: %v", err)
	}
	e, err := st.EAB(ctx, inner.Header.KID)
	if err != nil {
		if apierr.KindOf(err) == apierr.NotFound {
			return Account{}, false, NewProblem(ErrUnauthorized, "unknown EAB key id")
		}
		return Account{}, false, err
	}
	now := s.now()
	switch {
	case !e.RevokedAt.IsZero():
		return Account{}, false, NewProblem(ErrUnauthorized, "EAB credentials %s are revoked", e.KID)
	case !e.UsedAt.IsZero():
		return Account{}, false, NewProblem(ErrUnauthorized, "EAB credentials %s were used already (they are single use)", e.KID)
	case !e.Usable(now):
		return Account{}, false, NewProblem(ErrUnauthorized, "EAB credentials %s expired", e.KID)
	}
	if err := inner.VerifyMAC(e.Key); err != nil {
		return Account{}, false, NewProblem(ErrUnauthorized, "externalAccountBinding MAC does not verify with the key of %s", e.KID)
	}
	keyJSON, err := r.Key.MarshalJSON()
	if err != nil {
		return Account{}, false, NewProblem(ErrBadPublicKey, "%v", err)
	}
	a := Account{
		ID: newID(16), Issuer: issuer, Status: StatusValid, Key: keyJSON, Thumbprint: thumb,
		Contact: r.Contact, TermsAgreed: r.TermsAgreed, EAB: e.KID, Caller: e.Caller, CreatedAt: now,
	}
	// The credentials are spent first: a failure after this leaves an
	// unusable credential, never a reusable one.
	e.UsedAt, e.Account = now, a.ID
	clear(e.Key)
	e.Key = nil
	if err := st.PutEAB(ctx, e); err != nil {
		return Account{}, false, err
	}
	if err := st.PutAccount(ctx, a); err != nil {
		return Account{}, false, err
	}
	if err := st.PutAccountKey(ctx, thumb, a.ID); err != nil {
		return Account{}, false, err
	}
	s.d.Logger.Info("acme: account registered", "mount", mount, "issuer", issuer, "account", a.ID, "identity", a.Caller.Username, "eab", e.KID)
	return a, true, nil
}

// Account is the account a request's kid names: it must exist in this
// directory and be valid.
func (s *Service) Account(ctx context.Context, mount, issuer, id string) (Account, error) {
	st, err := s.store(ctx, mount)
	if err != nil {
		return Account{}, err
	}
	a, err := st.Account(ctx, id)
	if err != nil {
		if apierr.KindOf(err) == apierr.NotFound {
			return Account{}, NewProblem(ErrAccountDoesNotExist, "no such account")
		}
		return Account{}, err
	}
	if a.Issuer != issuer {
		return Account{}, NewProblem(ErrAccountDoesNotExist, "no such account in this directory")
	}
	if a.Status != StatusValid {
		return Account{}, NewProblem(ErrUnauthorized, "the account is %s", a.Status)
	}
	return a, nil
}

// AccountKey is an account's public key.
func (a Account) AccountKey() (*jws.JWK, error) { return jws.ParseJWK(a.Key) }

// UpdateAccount changes an account's contacts (when contact is not nil)
// or deactivates it (RFC 8555 §7.3.2, §7.3.6). Deactivation is final.
func (s *Service) UpdateAccount(ctx context.Context, mount string, a Account, contact *[]string, deactivate bool) (Account, error) {
	st, err := s.store(ctx, mount)
	if err != nil {
		return Account{}, err
	}
	unlock := s.locks.lock("accounts/" + mount)
	defer unlock()
	cur, err := st.Account(ctx, a.ID)
	if err != nil {
		return Account{}, err
	}
	if cur.Status != StatusValid {
		return Account{}, NewProblem(ErrUnauthorized, "the account is %s", cur.Status)
	}
	if contact != nil {
		if err := checkContacts(*contact); err != nil {
			return Account{}, err
		}
		cur.Contact = *contact
	}
	if deactivate {
		cur.Status = StatusDeactivated
	}
	if err := st.PutAccount(ctx, cur); err != nil {
		return Account{}, err
	}
	if deactivate {
		s.d.Logger.Info("acme: account deactivated", "mount", mount, "account", cur.ID, "identity", cur.Caller.Username)
	}
	return cur, nil
}

// keyChangePayload is the inner JWS's payload of a key change.
type keyChangePayload struct {
	Account string          `json:"account"`
	OldKey  json.RawMessage `json:"oldKey"`
}

// KeyChange rolls an account over to a new key (RFC 8555 §7.3.5). inner
// is the outer request's payload: a JWS signed by the new key, with the
// outer request's url (outerURL) and no nonce, whose payload names the
// account (accountURL) and its current key. A key that belongs to
// another account is a conflict; the error carries that account's ID.
func (s *Service) KeyChange(ctx context.Context, mount string, a Account, inner []byte, outerURL, accountURL string) (Account, error) {
	j, err := jws.Parse(inner)
	if err != nil {
		return Account{}, NewProblem(ErrMalformed, "key change: inner JWS: %v", err)
	}
	if err := j.CheckRequest(jws.Rules{NoNonce: true}); err != nil {
		if errors.Is(err, jws.ErrAlgorithm) {
			p := NewProblem(ErrBadSignatureAlgorithm, "key change: %v", err)
			p.Algorithms = jws.Algorithms
			return Account{}, p
		}
		return Account{}, NewProblem(ErrMalformed, "key change: inner JWS: %v", err)
	}
	if j.Header.JWK == nil {
		return Account{}, NewProblem(ErrMalformed, "key change: the inner JWS must carry the new key as jwk")
	}
	if j.Header.URL != outerURL {
		return Account{}, NewProblem(ErrMalformed, "key change: the inner JWS's url is not the request's")
	}
	if err := j.Verify(j.Header.JWK); err != nil {
		return Account{}, NewProblem(ErrMalformed, "key change: inner JWS: %v", err)
	}
	var p keyChangePayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return Account{}, NewProblem(ErrMalformed, "key change: inner payload: %v", err)
	}
	if p.Account != accountURL {
		return Account{}, NewProblem(ErrMalformed, "key change: inner payload names another account")
	}
	old, err := jws.ParseJWK(p.OldKey)
	if err != nil {
		return Account{}, NewProblem(ErrMalformed, "key change: oldKey: %v", err)
	}
	cur, err := a.AccountKey()
	if err != nil {
		return Account{}, err
	}
	if !old.Equal(cur) {
		return Account{}, NewProblem(ErrMalformed, "key change: oldKey is not the account's key")
	}
	newKey := j.Header.JWK
	st, err := s.store(ctx, mount)
	if err != nil {
		return Account{}, err
	}
	unlock := s.locks.lock("accounts/" + mount)
	defer unlock()
	newThumb := newKey.Thumbprint()
	if other, err := st.AccountByKey(ctx, newThumb); err == nil {
		return Account{}, &KeyInUse{Account: other}
	} else if apierr.KindOf(err) != apierr.NotFound {
		return Account{}, err
	}
	acct, err := st.Account(ctx, a.ID)
	if err != nil {
		return Account{}, err
	}
	if acct.Status != StatusValid || acct.Thumbprint != cur.Thumbprint() {
		return Account{}, NewProblem(ErrUnauthorized, "the account changed meanwhile")
	}
	keyJSON, err := newKey.MarshalJSON()
	if err != nil {
		return Account{}, err
	}
	oldThumb := acct.Thumbprint
	acct.Key, acct.Thumbprint = keyJSON, newThumb
	if err := st.PutAccountKey(ctx, newThumb, acct.ID); err != nil {
		return Account{}, err
	}
	if err := st.PutAccount(ctx, acct); err != nil {
		return Account{}, err
	}
	if err := st.DeleteAccountKey(ctx, oldThumb); err != nil {
		return Account{}, err
	}
	s.d.Logger.Info("acme: account key changed", "mount", mount, "account", acct.ID)
	return acct, nil
}

// KeyInUse is the conflict of a key change to a key another account has
// (RFC 8555 §7.3.5: 409 with that account's URL in Location).
type KeyInUse struct {
	Account string
}

func (e *KeyInUse) Error() string { return "the new key belongs to another account" }

// Problem is the conflict's problem document.
func (e *KeyInUse) Problem() *Problem {
	return NewProblem(ErrMalformed, "the new key belongs to another account").withStatus(http.StatusConflict)
}
