// Package policy decides who may do what in Metacrypt. ACL rules match a
// caller (account, role, account type), a mount, an operation and a
// resource; issuance limits match a caller, a mount and each name a
// certificate would carry. Both are priority-ordered lists where the
// first match decides and no match denies; admins bypass both. The rules
// are stored in the barrier (the "sys" owner), so they are encrypted and
// integrity-protected like every secret, and unavailable while sealed.
package policy
