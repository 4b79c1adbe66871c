// Package kvstore keeps a CA mount's ACME state (acme.Store) in the
// mount's barrier storage: every object is JSON under its own kind
// ("acme/account", "acme/order", ...), encrypted under the mount's data
// key with the row's identity as additional data, one file per entity.
// It does no locking; acme.Service serializes changes.
package kvstore
