package policy

import (
	"context"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitField(t *testing.T) {
	got := splitField(`spec.template.spec.initContainers[2].image`)
	if diff := cmp.Diff([]string{"spec", "template", "spec", "initContainers", "2", "image"}, got); diff != "" {
		t.Error(diff)
	}
	got = splitField(`data["app.properties"]`)
	if diff := cmp.Diff([]string{"data", "app.properties"}, got); diff != "" {
		t.Error(diff)
	}
}

func TestRefineLines(t *testing.T) {
	tests := []struct {
		file string
		rule string
		want []int
	}{
		// the init container's image line, then the ephemeral container's
		{"testdata/rules/image-latest-tag/bad-init-and-ephemeral.yaml", RuleImageLatestTag, []int{10, 16}},
		// the keys DB_PASSWORD, apiKey, github-token
		{"testdata/rules/configmap-credential/bad-keys.yaml", RuleConfigMapCredential, []int{11, 12, 13}},
		// notes, then the key of the multi-line bootstrap.sh (re-sorted by line)
		{"testdata/rules/configmap-credential/bad-values.yaml", RuleConfigMapCredential, []int{9, 10}},
		// the two items of rules
		{"testdata/rules/rbac-escalation-verbs/bad.yaml", RuleRBACEscalation, []int{8, 11}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			rep, err := Evaluate(context.Background(), parseFile(t, tt.file), Config{})
			if err != nil {
				t.Fatal(err)
			}
			rep.RefineLines(os.ReadFile)
			var got []int
			for _, v := range rep.Violations {
				if v.RuleID == tt.rule {
					got = append(got, v.Source.Line)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}
