package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"

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

// concurrency is the agent's --concurrency in benchmarks
// ($BERTH_BENCH_CONCURRENCY, default 16, as in docs/benchmarks.md).
func concurrency() string {
	if v := os.Getenv("BERTH_BENCH_CONCURRENCY"); v != "" {
		return v
	}
	return "16"
}
