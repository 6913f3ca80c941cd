// Package secretscan finds hard-coded secrets in file contents with
// gitleaks' default rules. It holds one shared gitleaks detector, built once
// on first use (gitleaks keeps global viper state, so there must be exactly
// one), and is used by the image scanner for image files and by the policy
// engine for ConfigMap values.
//
// A Finding never carries the secret: only the rule, the line and a redacted
// match in which the secret is masked.
package secretscan
