package httpapi

import (
	"time"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

// The JSON objects of RFC 8555 §7.1.

type directoryJSON struct {
	NewNonce    string   `json:"newNonce"`
	NewAccount  string   `json:"newAccount"`
	NewOrder    string   `json:"newOrder"`
	RevokeCert  string   `json:"revokeCert"`
	KeyChange   string   `json:"keyChange"`
	RenewalInfo string   `json:"renewalInfo"`
	Meta        metaJSON `json:"meta"`
}

type metaJSON struct {
	ExternalAccountRequired bool   `json:"externalAccountRequired"`
	Website                 string `json:"website,omitempty"`
}

type accountJSON struct {
	Status      acme.Status `json:"status"`
	Contact     []string    `json:"contact,omitempty"`
	TermsAgreed bool        `json:"termsOfServiceAgreed,omitempty"`
	Orders      string      `json:"orders"`
}

func (l linker) accountJSON(a acme.Account) accountJSON {
	return accountJSON{Status: a.Status, Contact: a.Contact, TermsAgreed: a.TermsAgreed, Orders: l.orders(a.ID)}
}

type orderJSON struct {
	Status         acme.Status       `json:"status"`
	Expires        string            `json:"expires"`
	Identifiers    []acme.Identifier `json:"identifiers"`
	Authorizations []string          `json:"authorizations"`
	Finalize       string            `json:"finalize"`
	Certificate    string            `json:"certificate,omitempty"`
	Error          *acme.Problem     `json:"error,omitempty"`
	Replaces       string            `json:"replaces,omitempty"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (l linker) orderJSON(o acme.Order) orderJSON {
	out := orderJSON{
		Status: o.Status, Expires: rfc3339(o.Expires), Identifiers: o.Identifiers, Finalize: l.finalize(o.ID),
		Error: o.Error, Replaces: o.Replaces, Authorizations: make([]string, len(o.Authzs)),
	}
	for i, id := range o.Authzs {
		out.Authorizations[i] = l.authz(id)
	}
	if o.Certificate != "" {
		out.Certificate = l.certificate(o.Certificate)
	}
	return out
}

type authzJSON struct {
	Status     acme.Status     `json:"status"`
	Expires    string          `json:"expires"`
	Identifier acme.Identifier `json:"identifier"`
	Challenges []challengeJSON `json:"challenges"`
	Wildcard   bool            `json:"wildcard,omitempty"`
}

type challengeJSON struct {
	Type      acme.ChallengeType `json:"type"`
	URL       string             `json:"url"`
	Status    acme.Status        `json:"status"`
	Token     string             `json:"token"`
	Validated string             `json:"validated,omitempty"`
	Error     *acme.Problem      `json:"error,omitempty"`
}

func (l linker) challengeJSON(authz string, c acme.Challenge) challengeJSON {
	out := challengeJSON{Type: c.Type, URL: l.challenge(authz, c.Type), Status: c.Status, Token: c.Token, Error: c.Error}
	if !c.Validated.IsZero() {
		out.Validated = rfc3339(c.Validated)
	}
	return out
}

func (l linker) authzJSON(a acme.Authz) authzJSON {
	out := authzJSON{Status: a.Status, Expires: rfc3339(a.Expires), Identifier: a.Identifier, Wildcard: a.Wildcard}
	for _, c := range a.Challenges {
		out.Challenges = append(out.Challenges, l.challengeJSON(a.ID, c))
	}
	return out
}

type renewalInfoJSON struct {
	SuggestedWindow struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"suggestedWindow"`
}
