package manifest

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Source says where an object was read from.
type Source struct {
	// File is the path relative to the root that was loaded (slash separated),
	// or a label such as "helm:templates/deploy.yaml" for rendered output.
	File string `json:"file,omitempty"`
	// Line is the 1-based line where the object's document starts; 0 if unknown.
	Line int `json:"line,omitempty"`
}

// String renders the source as file:line.
func (s Source) String() string {
	if s.Line > 0 {
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return s.File
}

// Object is one Kubernetes object and where it came from.
type Object struct {
	Object *unstructured.Unstructured
	Source Source
}

// ID returns group/kind namespace/name, the identity used in inventories
// and messages.
func (o Object) ID() string {
	return ObjectID(o.Object)
}

// ObjectID returns "group/Kind namespace/name" for u ("Kind name" forms when
// group or namespace are empty).
func ObjectID(u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	kind := gvk.Kind
	if gvk.Group != "" {
		kind = gvk.Group + "/" + kind
	}
	if ns := u.GetNamespace(); ns != "" {
		return kind + " " + ns + "/" + u.GetName()
	}
	return kind + " " + u.GetName()
}

// Error is a problem tied to a source location.
type Error struct {
	Source Source
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Source, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// FromJSON decodes an object kept or sent as JSON, with src as its
// source; numbers come back as float64, as the YAML loader
// (sigs.k8s.io/yaml) makes them.
func FromJSON(b []byte, src Source) (Object, error) {
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(b, &u.Object); err != nil {
		return Object{}, &Error{Source: src, Err: err}
	}
	return Object{Object: u, Source: src}, nil
}
