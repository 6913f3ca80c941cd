// Package webhook receives push notifications from Git hosts and triggers an
// immediate fetch of the Applications on the pushed repository, instead of
// waiting for the next poll.
//
// Three endpoints, each verifying the sender before acting on the payload
// (the HMAC ones read the body, at most 1 MiB, to check it):
//
//	POST /hooks/github   X-Hub-Signature-256: sha256=HMAC-SHA256(secret, body)
//	POST /hooks/gitlab   X-Gitlab-Token: token (its own: GitLab sends it in clear)
//	POST /hooks/generic  X-Berth-Signature: sha256=HMAC-SHA256(secret, body),
//	                     body {"url": "..."} or {"urls": ["..."]}
//
// Only pushes (of branches or tags) trigger: a verified GitHub or GitLab
// call for another event (X-GitHub-Event, X-Gitlab-Event: an issue
// comment, a star, a merge request) gets 200 and triggers nothing, so a
// hook set to send every event costs no fetch. A call without the event
// header is taken as a push.
//
// Unsigned or wrongly signed calls get 401 and are logged with the sender's
// address and the reason, never with the secret or the signature.
package webhook
