package renderworker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/render"
)

// ServeProcess is Serve on this process's stdin and stdout, as `berth
// render-worker` runs it: the protocol keeps the real stdout, and anything
// a library prints to os.Stdout goes to stderr instead of into the
// protocol; the data limit the Pool sets (DataLimitEnv) is applied first.
func ServeProcess(ctx context.Context) error {
	if err := limitData(); err != nil {
		return err
	}
	out, err := protocolOutput()
	if err != nil {
		return err
	}
	return Serve(ctx, os.Stdin, out)
}

// Serve is the worker's side: it reads render requests from in, one at a
// time, renders each with render.Render and writes the result to out,
// until in ends. It is what `berth render-worker` runs; nothing else
// should write to out meanwhile.
func Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	// Of all processes in the agent's container, the kernel's
	// out-of-memory killer should pick a worker first. Raising one's own
	// score needs no privilege; where it fails the Pool's limit still
	// applies.
	_ = os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0)
	dec := json.NewDecoder(bufio.NewReader(in))
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	send := func(m message) error {
		if err := enc.Encode(m); err != nil {
			return err
		}
		return w.Flush()
	}
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading a request: %w", err)
		}
		if m.Render == nil {
			return errors.New("protocol: expected a render request")
		}
		opts := m.Render.Options
		var ioErr error
		if m.Render.Lookup {
			opts.Lookup = func(apiVersion, kind, namespace, name string) (map[string]any, error) {
				if err := send(message{Lookup: &lookupCall{APIVersion: apiVersion, Kind: kind, Namespace: namespace, Name: name}}); err != nil {
					ioErr = err
					return nil, err
				}
				var raw struct {
					Reply *struct {
						Object json.RawMessage `json:"object"`
						Error  string          `json:"error"`
					} `json:"reply"`
				}
				if err := dec.Decode(&raw); err != nil {
					ioErr = err
					return nil, err
				}
				if raw.Reply == nil {
					ioErr = errors.New("protocol: expected a lookup reply")
					return nil, ioErr
				}
				if raw.Reply.Error != "" {
					return nil, errors.New(raw.Reply.Error)
				}
				// As Helm's own lookup returns them: whole numbers are
				// int64, so a template can compare them with integers.
				obj := map[string]any{}
				if len(raw.Reply.Object) > 0 {
					if err := utiljson.Unmarshal(raw.Reply.Object, &obj); err != nil {
						return nil, err
					}
				}
				return obj, nil
			}
		}
		res, err := render.Render(ctx, m.Render.Dir, opts)
		if ioErr != nil {
			return ioErr
		}
		reply := message{}
		if err != nil {
			reply.Failure = toFailure(err)
		} else if reply.Result, err = toResult(res); err != nil {
			reply.Result, reply.Failure = nil, toFailure(err)
		}
		if err := send(reply); err != nil {
			return err
		}
	}
}

func toResult(res *render.Result) (*result, error) {
	out := &result{Kind: res.Kind}
	var err error
	if out.Objects, err = toObjects(res.Objects); err != nil {
		return nil, err
	}
	if out.Hooks, err = toObjects(res.HelmHooks); err != nil {
		return nil, err
	}
	return out, nil
}

func toObjects(objs []manifest.Object) ([]object, error) {
	out := make([]object, 0, len(objs))
	for _, o := range objs {
		b, err := json.Marshal(o.Object.Object)
		if err != nil {
			return nil, &manifest.Error{Source: o.Source, Err: err}
		}
		out = append(out, object{Source: o.Source, Object: b})
	}
	return out, nil
}
