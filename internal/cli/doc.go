// Package cli is berth's command tree (cobra). Each command lives in its own
// file as an Options struct, a NewCmdX constructor that binds flags, and a
// run method that calls a domain package; commands hold no logic of their own.
//
// Exit codes are fixed: 0 success, 1 the command ran and found a problem it
// reports (for example an unhealthy sandbox), 2 the command could not run
// (bad flags, I/O errors). Commands that have more codes document them.
package cli
