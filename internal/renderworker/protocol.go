package renderworker

import (
	"encoding/json"
	"errors"

	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/render"
)

// message is one line of the protocol, in either direction: the Pool
// sends render and reply; the worker sends lookup (then waits for a
// reply), and ends each render with result or failure.
type message struct {
	Render  *renderCall  `json:"render,omitempty"`
	Lookup  *lookupCall  `json:"lookup,omitempty"`
	Reply   *lookupReply `json:"reply,omitempty"`
	Result  *result      `json:"result,omitempty"`
	Failure *failure     `json:"failure,omitempty"`
}

type renderCall struct {
	Dir     string         `json:"dir"`
	Options render.Options `json:"options"`
	// Lookup tells the worker that `lookup` reads the cluster (through
	// the Pool); without it `lookup` finds nothing, as in `helm template`.
	Lookup bool `json:"lookup,omitempty"`
}

type lookupCall struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name,omitempty"`
}

type lookupReply struct {
	Object map[string]any `json:"object,omitempty"`
	Error  string         `json:"error,omitempty"`
}

type result struct {
	Kind    render.Kind `json:"kind"`
	Objects []object    `json:"objects,omitempty"`
	Hooks   []object    `json:"hooks,omitempty"`
}

type object struct {
	Source manifest.Source `json:"source"`
	Object json.RawMessage `json:"object"`
}

// failure is a render's error: a manifest error keeps the file and line it
// names, so the Application's condition still points at them.
type failure struct {
	Message string           `json:"message"`
	Source  *manifest.Source `json:"source,omitempty"`
}

func toFailure(err error) *failure {
	var me *manifest.Error
	if errors.As(err, &me) {
		s := me.Source
		return &failure{Message: me.Err.Error(), Source: &s}
	}
	return &failure{Message: err.Error()}
}

func (f *failure) err() error {
	if f.Source != nil {
		return &manifest.Error{Source: *f.Source, Err: errors.New(f.Message)}
	}
	return errors.New(f.Message)
}
