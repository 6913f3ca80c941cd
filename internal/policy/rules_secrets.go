package policy

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/berth-dev/berth/internal/manifest"
)

// Secret rule IDs.
const (
	RuleConfigMapCredential = "configmap-credential" //nolint:gosec // a rule ID, not a credential
	RuleSecretInGit         = "secret-in-git"
)

func init() {
	register(
		&Rule{
			ID: RuleConfigMapCredential, Family: "secrets", Severity: SeverityHigh, DefaultMode: ModeEnforce,
			Summary: "a ConfigMap key looks like a credential (password, token, secret, api key, private key)",
			Fix:     "move the value into a Secret kept encrypted in Git (SOPS or Sealed Secrets) or an external secret store, rotate the credential, and reference it with secretKeyRef",
			check:   configMapCredentials,
		},
		&Rule{
			ID: RuleSecretInGit, Family: "secrets", Severity: SeverityMedium, DefaultMode: ModeWarn,
			Summary: "a plain Secret manifest is committed to Git (base64 is not encryption)",
			Fix:     "commit the Secret in an encrypted form (SOPS, Sealed Secrets) or fetch it from an external secret store (External Secrets Operator), and rotate the values",
			check:   plainSecret,
		},
	)
}

// sensitiveKey matches key names that hold credentials once separators are
// removed and the name lower-cased.
var sensitiveKey = regexp.MustCompile(`password|passwd|passphrase|secret|token|apikey|accesskey|privatekey|credential|authkey|connectionstring|dsn$`)

// benignSuffix marks keys that describe a credential rather than hold it
// (password_file, token_ttl, secret_name, ...).
var benignSuffix = regexp.MustCompile(`(file|path|dir|name|ref|url|uri|ttl|length|len|enabled|timeout|expiry|expiration|header|type|policy|rotation|minlength|maxlength|count|mode|format|endpoint)$`)

// placeholder matches values that are clearly not secrets: empty-ish,
// booleans, numbers, template placeholders.
var placeholder = regexp.MustCompile(`^(|true|false|yes|no|on|off|null|none|changeme|[0-9.]+|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*|<[^>]*>|\{\{[^}]*\}\})$`)

// normaliseKey lower-cases a key and drops separators ("API_KEY" → "apikey").
func normaliseKey(k string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(k) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// credentialKey reports whether a ConfigMap entry looks like a credential
// by its name and value shape.
func credentialKey(key, value string) bool {
	n := normaliseKey(key)
	if !sensitiveKey.MatchString(n) || benignSuffix.MatchString(n) {
		return false
	}
	return !placeholder.MatchString(strings.ToLower(strings.TrimSpace(value)))
}

// Redact returns a form of a secret value safe to print: at most the first
// two characters of a long value, the rest masked, and the length.
func Redact(value string) string {
	n := len([]rune(value))
	if n < 12 {
		return fmt.Sprintf("****** (%d chars)", n)
	}
	return fmt.Sprintf("%s****** (%d chars)", string([]rune(value)[:2]), n)
}

func configMapCredentials(_ *evalContext, obj *manifest.Object, _ *podTemplate) []finding {
	u := obj.Object
	if u.GetKind() != "ConfigMap" || u.GroupVersionKind().Group != "" {
		return nil
	}
	data, _, _ := unstructured.NestedStringMap(u.Object, "data")
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []finding
	seen := map[string]bool{}
	for _, k := range keys {
		if credentialKey(k, data[k]) {
			seen[k] = true
			out = append(out, finding{obj: obj, field: "data[" + strconv.Quote(k) + "]", message: fmt.Sprintf("key %q looks like a credential (value %s)", k, Redact(data[k]))})
		}
	}
	for _, f := range valueFindings(obj, keys, data) {
		if !seen[f.key] {
			seen[f.key] = true
			out = append(out, finding{obj: obj, field: "data[" + strconv.Quote(f.key) + "]", message: f.message})
		}
	}
	return out
}

// keyFinding is a value-based finding for one ConfigMap key.
type keyFinding struct {
	key, message string
}

func plainSecret(_ *evalContext, obj *manifest.Object, _ *podTemplate) []finding {
	u := obj.Object
	if u.GetKind() != "Secret" || u.GroupVersionKind().Group != "" {
		return nil
	}
	data, _, _ := unstructured.NestedMap(u.Object, "data")
	sdata, _, _ := unstructured.NestedMap(u.Object, "stringData")
	if len(data)+len(sdata) == 0 {
		return nil // a Secret to be filled in by a controller carries nothing
	}
	if _, sops := u.Object["sops"]; sops {
		return nil // encrypted with SOPS: values are ENC[...]
	}
	keys := make([]string, 0, len(data)+len(sdata))
	for k := range data {
		keys = append(keys, k)
	}
	for k := range sdata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return []finding{{obj: obj, message: fmt.Sprintf("plain Secret committed to Git with keys %s; base64 is readable by anyone with the repository", strings.Join(keys, ", "))}}
}
