// Package access decides what a caller may do to a repository: push, pull
// and delete rules by repository glob and by account, role or account
// type, evaluated in priority order, default deny. Admins may do
// everything; the agent accounts (mcp-agent) pull everything unless a rule
// says otherwise. It imports nothing internal to MCR but the oci
// vocabulary.
package access
