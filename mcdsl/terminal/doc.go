// Package terminal reads secrets from the operator without echoing them.
// Every CLI that asks for a password (mciasctl login, metacrypt unseal, ...)
// uses ReadPassword, which turns echo off on a real terminal and falls back
// to reading one line when input is piped from a script.
package terminal
