package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `berth render` and `berth check` confine Kustomize to the Git work tree
// holding PATH, as the agent confines it to the fetched revision: a pull
// request cannot make CI print files from outside the repository. --root
// widens it. Outside Git, PATH itself is the bound.
func TestRenderConfinedToTheRepository(t *testing.T) {
	parent := t.TempDir()
	repo := filepath.Join(parent, "repo")
	files := map[string]string{
		"repo/.git/HEAD":                  "ref: refs/heads/main\n",
		"repo/apps/x/kustomization.yaml":  "resources: [../../../outside]\n",
		"repo/apps/ok/kustomization.yaml": "resources: [../../base]\n",
		"repo/base/kustomization.yaml":    "resources: [cm.yaml]\n",
		"repo/base/cm.yaml":               "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: base\n",
		"outside/kustomization.yaml":      "resources: [cm.yaml]\n",
		"outside/cm.yaml":                 "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\n",
	}
	for p, c := range files {
		full := filepath.Join(parent, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	x := filepath.Join(repo, "apps/x")
	for _, cmd := range []string{"render", "check"} {
		code, out, errOut := run(t, parent, cmd, x)
		if code == 0 || strings.Contains(out, "stolen") || !strings.Contains(out+errOut, "leaves the repository") {
			t.Errorf("%s of a base outside the repository: exit %d, out %q, err %q; want refused", cmd, code, out, errOut)
		}
	}
	if code, out, errOut := run(t, parent, "render", "--root", parent, x); code != 0 || !strings.Contains(out, "stolen") {
		t.Errorf("render --root PARENT: exit %d, out %q, err %q; want the base rendered", code, out, errOut)
	}
	if code, out, errOut := run(t, parent, "render", filepath.Join(repo, "apps/ok")); code != 0 || !strings.Contains(out, "name: base") {
		t.Errorf("an overlay inside the repository: exit %d, out %q, err %q", code, out, errOut)
	}
	// As CI runs it: a relative PATH from the repository's root.
	t.Chdir(repo)
	for _, cmd := range []string{"render", "check"} {
		if code, out, errOut := run(t, parent, cmd, "apps/ok"); code != 0 {
			t.Errorf("%s apps/ok from the repository root: exit %d, out %q, err %q", cmd, code, out, errOut)
		}
	}
	if code, out, errOut := run(t, parent, "render", "apps/x"); code == 0 || strings.Contains(out, "stolen") {
		t.Errorf("render apps/x from the repository root: exit %d, out %q, err %q; want refused", code, out, errOut)
	}
	// Outside Git (an archive unpacked without .git): PATH is the bound.
	if err := os.Rename(filepath.Join(repo, ".git"), filepath.Join(parent, "git-moved")); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"render", "check"} {
		code, out, errOut := run(t, parent, cmd, filepath.Join(repo, "apps/ok"))
		if code == 0 || strings.Contains(out, "name: base") || !strings.Contains(out+errOut, "leaves the repository") {
			t.Errorf("%s outside Git of an overlay whose base is outside PATH: exit %d, out %q, err %q; want refused", cmd, code, out, errOut)
		}
	}
	if code, out, errOut := run(t, parent, "render", "--root", repo, filepath.Join(repo, "apps/ok")); code != 0 || !strings.Contains(out, "name: base") {
		t.Errorf("render --root REPO outside Git: exit %d, out %q, err %q; want the base rendered", code, out, errOut)
	}
}

// A chart that requires a Kubernetes version renders for the one given
// (Helm's default is older than most charts accept).
func TestRenderKubeVersionAndAPIVersions(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: modern\nversion: 0.1.0\nkubeVersion: \">=1.30.0-0\"\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caps\ndata:\n  widget: {{ .Capabilities.APIVersions.Has \"example.test/v1/Widget\" | quote }}\n",
	})
	if code, _, errOut := run(t, "", "render", dir); code == 0 || !strings.Contains(errOut, "kubeVersion") {
		t.Errorf("without --kube-version: exit %d, stderr %q", code, errOut)
	}
	code, out, errOut := run(t, "", "render", dir, "--kube-version", "v1.31.0", "-a", "example.test/v1/Widget")
	if code != 0 || !strings.Contains(out, `widget: "true"`) {
		t.Errorf("with --kube-version and -a: exit %d, stdout %s, stderr %s", code, out, errOut)
	}
	if code, _, errOut := run(t, "", "check", dir, "--kube-version", "v1.31.0"); code == 2 {
		t.Errorf("check --kube-version: exit 2, stderr %s", errOut)
	}
}

// `berth render` of a chart prints its hooks too, marked as such: Helm
// creates them as rendered here, and `berth check` gates them.
func TestRenderPrintsHelmHooks(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Chart.yaml":          "apiVersion: v2\nname: hooked\nversion: 0.1.0\n",
		"templates/cm.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n",
		"templates/hook.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-upgrade\n",
	})
	code, out, errOut := run(t, "", "render", dir)
	if code != 0 || !strings.Contains(out, "name: migrate") || !strings.Contains(out, "hooked/templates/hook.yaml (Helm hook)") || !strings.Contains(errOut, "1 objects (helm), 1 Helm hooks") {
		t.Errorf("render of a chart with a hook: exit %d, stdout %s, stderr %s", code, out, errOut)
	}
}

// berth render and berth check refuse what the agent refuses over data
// hooks (berth.dev/hook): a CI run that passes must not meet a rejection
// in the cluster.
func TestRenderAndCheckRefuseInvalidDataHooks(t *testing.T) {
	job := func(name, hook string) string {
		return "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: " + name + "\n  annotations:\n    berth.dev/hook: " + hook +
			"\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: x, image: example.test/x@sha256:" + strings.Repeat("a", 64) + "}]\n"
	}
	for name, files := range map[string]map[string]string{
		"a hook on a ConfigMap": {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    berth.dev/hook: pre-sync\n"},
		"an unknown hook kind":  {"job.yaml": job("backup", "presync")},
		"two pre-sync hooks":    {"a.yaml": job("a", "pre-sync"), "b.yaml": job("b", "pre-sync")},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, files)
			if code, _, errOut := run(t, "", "render", dir); code != 1 || !strings.Contains(errOut, "hook") {
				t.Errorf("render: exit %d, stderr %s; want 1 naming the hook", code, errOut)
			}
			if code, _, errOut := run(t, "", "check", dir); code == 0 || !strings.Contains(errOut, "hook") {
				t.Errorf("check: exit %d, stderr %s; want a failure naming the hook", code, errOut)
			}
		})
	}
	// A valid one passes.
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"job.yaml": job("backup", "pre-sync")})
	if code, _, errOut := run(t, "", "render", dir); code != 0 {
		t.Errorf("render of a valid hook: exit %d, stderr %s", code, errOut)
	}
}
