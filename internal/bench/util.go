package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

var schemaDeployment = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

func postSigned(ctx context.Context, url string, body []byte, sig string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-Berth-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// DefaultConcurrency is the agent's --concurrency in benchmarks, and the
// baseline's number of workers. It is twice the agent's own default (8);
// 64 was no faster on the 2-core bench machine, where the agent and the
// cluster share the CPU, and it slowed push→applied (docs/benchmarks.md).
const DefaultConcurrency = 16

func (o Options) concurrency() int {
	if o.Concurrency > 0 {
		return o.Concurrency
	}
	return DefaultConcurrency
}
