package rehearsal

import (
	"context"
	"fmt"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/controller/application"
)

// Who the drill's writes run as.
//
// The drill asks whether the release can be deployed, upgraded and rolled
// back by the agent, so it writes as the agent does: impersonating the
// Application's spec.serviceAccountName. A release the agent may not
// apply (a Role it may not create, a kind it may not touch) then fails the
// drill, as it would fail the agent. That service account's permissions
// are usually granted by RoleBindings in the destination namespace, which
// do not reach the scratch namespace; the caller copies them there first
// (the RoleBindings naming the account, and the Roles they reference).
//
// When the caller may not impersonate the account (SelfSubjectAccessReview
// of verb impersonate), may not copy its RoleBindings, or the Application
// names no account (the agent then uses its --default-service-account,
// which the CLI cannot see), the drill runs with the caller's own
// credentials and says so: apply, health, prune and immutable fields are
// still rehearsed, permissions are not.

// identity is who the drill writes as.
type identity struct {
	cfg          *rest.Config
	user         string
	impersonated bool
	// note explains why the caller's credentials are used.
	note string
}

// chooseIdentity decides who the drill writes as and, when impersonating,
// copies the account's namespaced permissions into scratch.
func chooseIdentity(ctx context.Context, c client.Client, cfg *rest.Config, app *berthv1.Application, scratch string) identity {
	self := identity{cfg: cfg, user: callerName(ctx, c)}
	// The agent's own --default-service-account is not known here: an
	// Application that names no account is drilled as the caller.
	user := application.ImpersonatedUser(app, "")
	if user == "" {
		self.note = "the Application names no serviceAccountName (the agent's --default-service-account is not known here)"
		return self
	}
	if ok, err := mayImpersonate(ctx, c, user); err != nil || !ok {
		self.note = "you may not impersonate " + user
		if err != nil {
			self.note += fmt.Sprintf(" (%v)", err)
		}
		return self
	}
	if err := mirrorRBAC(ctx, c, user, app.Spec.Namespace, scratch); err != nil {
		self.note = fmt.Sprintf("could not copy the permissions of %s into the scratch namespace: %v", user, err)
		return self
	}
	imp := rest.CopyConfig(cfg)
	imp.Impersonate = rest.ImpersonationConfig{UserName: user}
	return identity{cfg: imp, user: user, impersonated: true}
}

// callerName returns the caller's user name, or "you" when the server
// will not say.
func callerName(ctx context.Context, c client.Client) string {
	r := &authnv1.SelfSubjectReview{}
	if err := c.Create(ctx, r); err != nil || r.Status.UserInfo.Username == "" {
		return "you"
	}
	return r.Status.UserInfo.Username
}

// mayImpersonate reports whether the caller may impersonate user.
func mayImpersonate(ctx context.Context, c client.Client, user string) (bool, error) {
	attrs := &authzv1.ResourceAttributes{Verb: "impersonate", Resource: "users", Name: user}
	if ns, name, ok := splitServiceAccount(user); ok {
		attrs = &authzv1.ResourceAttributes{Verb: "impersonate", Resource: "serviceaccounts", Namespace: ns, Name: name}
	}
	r := &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}}
	if err := c.Create(ctx, r); err != nil {
		return false, fmt.Errorf("checking impersonation: %w", err)
	}
	return r.Status.Allowed, nil
}

func splitServiceAccount(user string) (ns, name string, ok bool) {
	tail, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, name, ok = strings.Cut(tail, ":")
	return ns, name, ok && ns != "" && name != ""
}

// mirrorRBAC copies the RoleBindings of namespace that name user (and the
// Roles they reference) into scratch, each binding only user.
func mirrorRBAC(ctx context.Context, c client.Client, user, namespace, scratch string) error {
	var rbs rbacv1.RoleBindingList
	if err := c.List(ctx, &rbs, client.InNamespace(namespace)); err != nil {
		return fmt.Errorf("listing RoleBindings of %s: %w", namespace, err)
	}
	labels := map[string]string{DrillLabel: scratch}
	for _, rb := range rbs.Items {
		subject, ok := matchSubject(rb, user)
		if !ok {
			continue
		}
		if rb.RoleRef.Kind == "Role" {
			role := &rbacv1.Role{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: rb.RoleRef.Name}, role); err != nil {
				return fmt.Errorf("reading Role %s/%s: %w", namespace, rb.RoleRef.Name, err)
			}
			cp := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: scratch, Labels: labels}, Rules: role.Rules}
			if err := c.Create(ctx, cp); err != nil {
				return fmt.Errorf("copying Role %s: %w", role.Name, err)
			}
		}
		cp := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: rb.Name, Namespace: scratch, Labels: labels},
			RoleRef:    rb.RoleRef,
			Subjects:   []rbacv1.Subject{subject},
		}
		if err := c.Create(ctx, cp); err != nil {
			return fmt.Errorf("copying RoleBinding %s: %w", rb.Name, err)
		}
	}
	return nil
}

// matchSubject returns rb's subject that is user, made explicit.
func matchSubject(rb rbacv1.RoleBinding, user string) (rbacv1.Subject, bool) {
	saNS, saName, isSA := splitServiceAccount(user)
	for _, s := range rb.Subjects {
		switch {
		case isSA && s.Kind == rbacv1.ServiceAccountKind && s.Name == saName:
			ns := s.Namespace
			if ns == "" {
				ns = rb.Namespace
			}
			if ns == saNS {
				return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: saName, Namespace: saNS}, true
			}
		case s.Kind == rbacv1.UserKind && s.Name == user:
			return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}, true
		}
	}
	return rbacv1.Subject{}, false
}
