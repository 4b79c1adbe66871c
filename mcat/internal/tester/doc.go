// Package tester is MCAT, the login-policy tester: it submits one login to
// MCIAS with a service_name and tags chosen in a web form and reports what
// MCIAS decided — allowed (with the account's roles, type and token
// expiry), denied by policy, bad credentials, throttled, or MCIAS
// unavailable. Tokens it obtains are revoked at once and never shown.
package tester
