package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// ConfigFile is where a repository keeps its policy, relative to its root.
const ConfigFile = ".berth/policy.yaml"

// Config selects rule modes, severities, exceptions and rule settings. The
// zero Config means every rule in its default mode. It is the format of
// .berth/policy.yaml and of an Application's policy settings (same JSON
// field names), combined with Merge.
type Config struct {
	// Rules overrides mode and severity per rule ID.
	Rules map[string]RuleConfig `json:"rules,omitempty"`
	// Exceptions suppress one rule on matching objects until they expire.
	Exceptions []Exception `json:"exceptions,omitempty"`
	// Images configures the image rules and the resolver.
	Images ImageConfig `json:"images,omitempty"`
	// PodSecurity configures the pod security rules.
	PodSecurity PodSecurityConfig `json:"podSecurity,omitempty"`
}

// RuleConfig overrides one rule.
type RuleConfig struct {
	// Mode is enforce, warn or off; empty keeps the rule's default.
	Mode Mode `json:"mode,omitempty"`
	// Severity overrides the rule's severity; empty keeps it.
	Severity Severity `json:"severity,omitempty"`
}

// ImageConfig configures image reference handling.
type ImageConfig struct {
	// InsecureRegistries are registry hosts (host or host:port) the
	// resolver reaches over plain HTTP.
	InsecureRegistries []string `json:"insecureRegistries,omitempty"`
}

// PodSecurityConfig configures the pod security rules.
type PodSecurityConfig struct {
	// Version is the Pod Security Standards version ("v1.37"); empty or
	// "latest" means the newest the library knows.
	Version string `json:"version,omitempty"`
}

// fileConfig is the on-disk envelope of .berth/policy.yaml.
type fileConfig struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Config     `json:",inline"`
}

// Parse reads a policy file's content. Unknown fields are errors, so a typo
// in a rule setting is not silently ignored.
func Parse(data []byte) (Config, error) {
	var f fileConfig
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return Config{}, fmt.Errorf("parsing policy: %w", err)
	}
	if f.Kind != "" && f.Kind != "Policy" {
		return Config{}, fmt.Errorf("parsing policy: kind %q, want Policy", f.Kind)
	}
	if err := f.Validate(); err != nil {
		return Config{}, err
	}
	return f.Config, nil
}

// LoadFile reads root/.berth/policy.yaml; a missing file is the zero Config.
func LoadFile(root string) (Config, error) {
	p := filepath.Join(root, filepath.FromSlash(ConfigFile))
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("reading %s: %w", ConfigFile, err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	return c, nil
}

// Validate checks rule IDs, modes, severities and exceptions.
func (c Config) Validate() error {
	var errs []error
	for id, rc := range c.Rules {
		if _, ok := registry[id]; !ok {
			errs = append(errs, fmt.Errorf("rules: unknown rule %q", id))
		}
		if rc.Mode != "" && !rc.Mode.valid() {
			errs = append(errs, fmt.Errorf("rules.%s.mode: %q is not enforce, warn or off", id, rc.Mode))
		}
		if rc.Severity != "" && rc.Severity.rank() == 0 {
			errs = append(errs, fmt.Errorf("rules.%s.severity: %q is not critical, high, medium or low", id, rc.Severity))
		}
	}
	for i, e := range c.Exceptions {
		if err := e.validate(); err != nil {
			errs = append(errs, fmt.Errorf("exceptions[%d]: %w", i, err))
		}
	}
	if v := c.PodSecurity.Version; v != "" {
		if _, err := pssVersion(v); err != nil {
			errs = append(errs, fmt.Errorf("podSecurity.version: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid policy: %w", errors.Join(errs...))
	}
	return nil
}

// Merge combines a repository's policy with an Application's: the
// Application's rule settings win per rule and field, exceptions and
// insecure registries add up, and the Application's pod security version
// wins when set.
func Merge(repo, app Config) Config {
	out := Config{Rules: map[string]RuleConfig{}}
	for id, rc := range repo.Rules {
		out.Rules[id] = rc
	}
	for id, rc := range app.Rules {
		cur := out.Rules[id]
		if rc.Mode != "" {
			cur.Mode = rc.Mode
		}
		if rc.Severity != "" {
			cur.Severity = rc.Severity
		}
		out.Rules[id] = cur
	}
	out.Exceptions = append(append([]Exception{}, repo.Exceptions...), app.Exceptions...)
	out.Images.InsecureRegistries = append(append([]string{}, repo.Images.InsecureRegistries...), app.Images.InsecureRegistries...)
	out.PodSecurity = repo.PodSecurity
	if app.PodSecurity.Version != "" {
		out.PodSecurity.Version = app.PodSecurity.Version
	}
	return out
}

// Mode returns the effective mode of the rule with id ("" for an unknown rule).
func (c Config) Mode(id string) Mode {
	r, ok := registry[id]
	if !ok {
		return ""
	}
	return c.mode(r)
}

// DigestsRequired reports whether image references must carry a digest
// (rule image-digest-required in enforce mode). The agent then holds a sync
// whose tags cannot be resolved instead of applying them.
func (c Config) DigestsRequired() bool { return c.Mode(RuleImageDigestRequired) == ModeEnforce }

// insecure reports whether host is listed as a plain-HTTP registry.
func (c ImageConfig) insecure(host string) bool {
	for _, h := range c.InsecureRegistries {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

func (c *Config) mode(r *Rule) Mode {
	if rc, ok := c.Rules[r.ID]; ok && rc.Mode != "" {
		return rc.Mode
	}
	return r.DefaultMode
}

func (c *Config) severity(r *Rule) Severity {
	if rc, ok := c.Rules[r.ID]; ok && rc.Severity != "" {
		return rc.Severity
	}
	return r.Severity
}

// ReadFile reads a policy file at an explicit path.
func ReadFile(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading policy: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// FindFile looks for .berth/policy.yaml in dir and its parents, up to the
// directory holding .git (the repository root) or the filesystem root, and
// returns the directory that has it; ok is false when there is none.
func FindFile(dir string) (root string, ok bool) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	return findFile(d, func(d string) bool {
		_, err := os.Stat(filepath.Join(d, ".git"))
		return err == nil
	})
}

// FindFileWithin is FindFile for a directory dir inside a tree at top (a
// Git work tree, or the agent's checkout, which holds no .git): it looks
// in dir and its parents up to top, never above it. berth reads only top's
// file; one found below top is named in a warning as not read.
func FindFileWithin(top, dir string) (root string, ok bool) {
	t, err := filepath.Abs(top)
	if err != nil {
		return "", false
	}
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	if rel, err := filepath.Rel(t, d); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return findFile(d, func(d string) bool { return d == t })
}

// findFile looks in d and its parents, stopping after the directory last
// accepts or at the filesystem root.
func findFile(d string, last func(string) bool) (string, bool) {
	for {
		if fi, err := os.Stat(filepath.Join(d, filepath.FromSlash(ConfigFile))); err == nil && fi.Mode().IsRegular() {
			return d, true
		}
		if last(d) {
			return "", false
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", false
		}
		d = parent
	}
}
