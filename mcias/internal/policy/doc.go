// Package policy evaluates MCIAS login policy: priority-ordered allow/deny
// rules matched against who is logging in (roles, account type) and where
// (action, calling service, its tags). The first matching rule decides and
// no match denies, so an empty rule set admits nobody.
package policy
