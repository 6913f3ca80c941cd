// Package application reconciles berth Applications: Git → render →
// validate → apply → prune → health, with drift watches and webhook
// triggers. See package controller for the architecture.
package application
