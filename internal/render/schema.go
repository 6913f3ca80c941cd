package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	chart "helm.sh/helm/v4/pkg/chart"

	"github.com/berth-dev/berth/internal/manifest"
)

// metaSchemas are the JSON Schema drafts Helm's validator knows without
// loading them, with or without https and a trailing "#": a `$schema` of
// one of them reads nothing.
var metaSchemas = map[string]bool{
	"json-schema.org/schema": true, "json-schema.org/draft/2020-12/schema": true, "json-schema.org/draft/2019-09/schema": true,
	"json-schema.org/draft-07/schema": true, "json-schema.org/draft-06/schema": true, "json-schema.org/draft-04/schema": true,
}

// metaSchema reports whether s names one of metaSchemas.
func metaSchema(s string) bool {
	s = strings.TrimSuffix(s, "#")
	u, ok := strings.CutPrefix(s, "http://")
	if !ok {
		u, ok = strings.CutPrefix(s, "https://")
	}
	return ok && metaSchemas[u]
}

// checkSchemas refuses a chart (or subchart) whose values.schema.json
// refers to another document: Helm validates values with loaders for
// file, http and https URLs, so a `$ref` would make the agent (and `berth
// render` in CI) read a local file or call any address it can reach, and
// show what it found in its error. A reference within the schema itself
// ("#/definitions/...") is what charts use, and is kept.
func checkSchemas(ch chart.Charter, prefix string) error {
	acc, err := chart.NewAccessor(ch)
	if err != nil {
		return err
	}
	if s := acc.Schema(); len(s) > 0 {
		src := manifest.Source{File: prefix + "values.schema.json"}
		dec := json.NewDecoder(bytes.NewReader(s))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			return &manifest.Error{Source: src, Err: fmt.Errorf("invalid JSON schema: %w", err)}
		}
		if err := checkSchemaRefs(doc); err != nil {
			return &manifest.Error{Source: src, Err: err}
		}
	}
	for _, dep := range acc.Dependencies() {
		d, err := chart.NewAccessor(dep)
		if err != nil {
			return err
		}
		if err := checkSchemas(dep, prefix+"charts/"+d.Name()+"/"); err != nil {
			return err
		}
	}
	return nil
}

// checkSchemaRefs walks a schema for references to other documents.
func checkSchemaRefs(v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			s, isString := c.(string)
			switch {
			case !isString:
			case k == "$ref" || k == "$dynamicRef" || k == "$recursiveRef":
				if !strings.HasPrefix(s, "#") {
					return fmt.Errorf("%s %q refers to another document: a chart's schema may refer only within itself (\"#/...\"); berth does not let Helm read files or call addresses to validate values", k, s)
				}
			case k == "$schema":
				if !metaSchema(s) {
					return fmt.Errorf("$schema %q is not a JSON Schema draft Helm knows without loading it; berth does not let Helm read files or call addresses to validate values", s)
				}
			}
			if err := checkSchemaRefs(c); err != nil {
				return err
			}
		}
	case []any:
		for _, c := range v {
			if err := checkSchemaRefs(c); err != nil {
				return err
			}
		}
	}
	return nil
}
