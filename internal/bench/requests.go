package bench

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// requestCounts reads the API server's apiserver_request_total and sums
// it by verb and resource (with subresource, dry run and any code other
// than 2xx), every client together; watches are left out.
func requestCounts(ctx context.Context, cfg *rest.Config) (map[string]float64, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("parsing the API server's metrics: %w", err)
	}
	out := map[string]float64{}
	f, ok := families["apiserver_request_total"]
	if !ok {
		return out, nil
	}
	for _, m := range f.GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		// A watch (or another long-running request) is counted when it
		// ends, not when it is made: not a figure for an interval.
		if l["verb"] == "WATCH" || l["verb"] == "CONNECT" {
			continue
		}
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		if l["dry_run"] != "" {
			key += " (dry run)"
		}
		if c := l["code"]; c != "" && c[0] != '2' {
			key += " [" + c + "]"
		}
		out[key] += m.GetCounter().GetValue()
	}
	return out, nil
}

// printRequests prints what the API server served between two snapshots,
// per app, largest first.
func printRequests(w io.Writer, label string, before, after map[string]float64, n int) {
	type row struct {
		key string
		v   float64
	}
	var rows []row
	var total float64
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			rows = append(rows, row{k, d})
			total += d
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].v > rows[j].v })
	fmt.Fprintf(w, "%s: %.1f API server requests per app (%.0f in all), every client together:\n", label, total/float64(n), total)
	for _, r := range rows {
		if r.v/float64(n) < 0.05 {
			break
		}
		fmt.Fprintf(w, "  %6.2f  %s\n", r.v/float64(n), r.key)
	}
}
