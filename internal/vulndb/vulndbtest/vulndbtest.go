package vulndbtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/vulndb"
)

// GoVulnDBModule is the pinned golang.org/x/vulndb version whose data/osv
// directory holds the Go vulnerability database in OSV format.
const GoVulnDBModule = "golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018"

var (
	osvOnce sync.Once
	osvDir  string
	osvErr  error
)

// GoOSVDir returns the data/osv directory of the pinned golang.org/x/vulndb
// (about 4,800 real OSV records), downloading the module when needed.
func GoOSVDir(t testing.TB) string {
	t.Helper()
	osvOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", GoVulnDBModule)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Dir = os.TempDir()
		if err := cmd.Run(); err != nil {
			osvErr = err
			osvDir = errb.String()
			return
		}
		var m struct{ Dir string }
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			osvErr = err
			return
		}
		osvDir = filepath.Join(m.Dir, "data", "osv")
	})
	if osvErr != nil {
		t.Fatalf("downloading %s: %v %s", GoVulnDBModule, osvErr, osvDir)
	}
	return osvDir
}

// Store imports GoOSVDir into a fresh store under t.TempDir (about half a
// second) and returns its directory.
func Store(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	if _, err := vulndb.Import(context.Background(), dir, GoOSVDir(t), vulndb.ImportOptions{}); err != nil {
		t.Fatalf("importing the Go vulnerability database: %v", err)
	}
	return dir
}
