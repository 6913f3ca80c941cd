package sandbox

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
)

// ensureEncryptionConfig writes (once) an EncryptionConfiguration that
// encrypts Secrets with aescbc and returns its path.
func ensureEncryptionConfig(dir string) (string, error) {
	path := filepath.Join(dir, "pki", "encryption-config.yaml")
	if exists(path) {
		return path, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generating encryption key: %w", err)
	}
	cfg := `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: ["secrets"]
  providers:
  - aescbc:
      keys:
      - name: sandbox
        secret: ` + base64.StdEncoding.EncodeToString(key) + `
  - identity: {}
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return "", fmt.Errorf("writing encryption configuration: %w", err)
	}
	return path, nil
}
