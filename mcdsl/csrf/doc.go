// Package csrf protects every mutating web request with a signed
// double-submit token: the server sets an HMAC-signed random token in a
// HttpOnly, Secure, SameSite=Strict cookie, renders the same token into each
// form, and rejects a POST, PUT, PATCH or DELETE whose submitted token does
// not match a cookie it signed.
package csrf
