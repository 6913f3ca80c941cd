// Package apps is what the CLI does with Applications: list them as a table
// (and watch), request a sync and wait for it, and compute what the next
// sync would change by fetching, rendering and dry-running exactly like the
// agent does.
package apps
