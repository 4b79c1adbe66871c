// Package webui is Metacrypt's browser UI: seal status and unseal, the
// mounts and their issuers, the issue form, the certificate list with
// search and revocation, ACME EAB credentials, the policy (rules and
// issuance limits), and the pages of the other engines' mounts: the SSH
// CA (its key, signing profiles, signing, records and revocation),
// transit keys with a form per operation, and user-to-user messages.
// Sign-in is MCIAS single sign-on (mcdsl/web.SSOClient); pages are
// server-rendered from embedded templates without JavaScript; every form
// carries a CSRF token bound to the session (mcdsl/csrf).
//
// The UI holds no rules of its own: it calls the gRPC API through the
// server's in-process connection with the signed-in user's token, so the
// method maps, the seal check and the policy decide exactly as they do for
// metacryptctl. Unseal is public there, so it is here; everything else
// needs a session.
package webui
