// Package web holds what every server-rendered UI on the platform shares:
// the session cookie carrying the caller's MCIAS token (HttpOnly, Secure,
// SameSite=Strict), html/template pages rendered from an embed.FS with a
// common layout, one-shot flash messages, and SSOClient, the relying-party
// side of MCIAS's SSO authorization-code flow.
package web
