package policy

import (
	"fmt"
	"strings"

	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"

	"github.com/berth-dev/berth/internal/manifest"
)

// Pod security rule IDs.
const (
	RulePodSecurityBaseline   = "pod-security-baseline"
	RulePodSecurityRestricted = "pod-security-restricted"
)

// pssEvaluator is the Pod Security Admission library's own evaluator with
// its default checks: the same code the apiserver runs.
var pssEvaluator, pssErr = psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)

func init() {
	register(
		&Rule{
			ID: RulePodSecurityBaseline, Family: "pod-security", Severity: SeverityHigh, DefaultMode: ModeEnforce,
			Summary: "a pod template violates the Kubernetes Pod Security Standards, baseline level",
			Fix:     "remove the privileged settings named in the message (privileged, host namespaces, hostPath, host ports, added capabilities, ...); see https://kubernetes.io/docs/concepts/security/pod-security-standards/",
			check:   pssCheck(psaapi.LevelBaseline),
		},
		&Rule{
			ID: RulePodSecurityRestricted, Family: "pod-security", Severity: SeverityMedium, DefaultMode: ModeWarn,
			Summary: "a pod template violates the Kubernetes Pod Security Standards, restricted level (beyond baseline)",
			Fix:     "set runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities.drop: [ALL] and seccompProfile.type: RuntimeDefault on every container",
			check:   pssCheck(psaapi.LevelRestricted),
		},
	)
}

// pssVersion parses a Pod Security Standards version ("v1.37", "latest").
func pssVersion(v string) (psaapi.Version, error) {
	if v == "" {
		return psaapi.LatestVersion(), nil
	}
	return psaapi.ParseVersion(v)
}

// pssCheck evaluates one level. The restricted rule reports only what the
// baseline level does not already forbid, so one problem is one violation.
func pssCheck(level psaapi.Level) func(*evalContext, *manifest.Object, *podTemplate) []finding {
	return func(ec *evalContext, obj *manifest.Object, pod *podTemplate) []finding {
		if pod == nil {
			return nil
		}
		if pssErr != nil {
			return []finding{{obj: obj, message: fmt.Sprintf("pod security library unavailable: %v", pssErr)}}
		}
		ver, err := pssVersion(ec.cfg.PodSecurity.Version)
		if err != nil {
			ver = psaapi.LatestVersion()
		}
		failed := forbidden(psaapi.LevelVersion{Level: level, Version: ver}, pod)
		if level == psaapi.LevelRestricted {
			base := map[string]bool{}
			for _, r := range forbidden(psaapi.LevelVersion{Level: psaapi.LevelBaseline, Version: ver}, pod) {
				base[r] = true
			}
			var rest []string
			for _, r := range failed {
				if !base[r] {
					rest = append(rest, r)
				}
			}
			failed = rest
		}
		if len(failed) == 0 {
			return nil
		}
		return []finding{{obj: obj, field: strings.Join(pod.Path, "."), message: fmt.Sprintf("violates PodSecurity %q: %s", string(level)+":"+ver.String(), strings.Join(failed, ", "))}}
	}
}

// forbidden returns "reason (detail)" for every failed check.
func forbidden(lv psaapi.LevelVersion, pod *podTemplate) []string {
	var out []string
	for _, r := range pssEvaluator.EvaluatePod(lv, pod.Meta, pod.Spec) {
		if r.Allowed {
			continue
		}
		s := r.ForbiddenReason
		if r.ForbiddenDetail != "" {
			s += " (" + r.ForbiddenDetail + ")"
		}
		out = append(out, s)
	}
	return out
}
