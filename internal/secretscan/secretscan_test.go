package secretscan_test

import (
	"bytes"
	"fmt"
	"github.com/berth-dev/berth/internal/testenv"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/secretscan"
)

func TestScan(t *testing.T) {
	if err := secretscan.Init(); err != nil {
		t.Fatal(err)
	}
	// Shaped like real credentials, made up on every run.
	aws := "AKIA" + testenv.RandomString(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
	ghp := "ghp_" + testenv.RandomString(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 36)
	text := fmt.Sprintf("first line\nAWS_ACCESS_KEY_ID=%s\n\nexport GITHUB_TOKEN=%s\n", aws, ghp)

	tests := []struct {
		name    string
		content []byte
		want    []string // "line rule"
	}{
		{"text", []byte(text), []string{"2 aws-access-token", "4 github-pat"}},
		{"configmap value", []byte(ghp), []string{"1 github-pat"}},
		{"clean", []byte("nothing to see\nhere=there\n"), nil},
		{"binary", append([]byte{0x7f, 'E', 'L', 'F', 0}, text...), nil},
		{"too big", append(bytes.Repeat([]byte("a\n"), secretscan.MaxSize/2), text...), nil},
		{"empty", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range secretscan.Scan("/etc/app.env", tc.content) {
				got = append(got, fmt.Sprintf("%d %s", f.Line, f.RuleID))
				if f.Description == "" {
					t.Errorf("%s: no description", f.RuleID)
				}
				for _, s := range []string{aws, ghp, aws[4:], ghp[4:]} {
					if strings.Contains(fmt.Sprintf("%+v", f), s) {
						t.Errorf("finding %+v holds the secret", f)
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestScanConcurrent(t *testing.T) {
	ghp := "ghp_" + testenv.RandomString(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 36)
	var wg sync.WaitGroup
	counts := make([]int, 8)
	for i := range counts {
		wg.Go(func() { counts[i] = len(secretscan.Scan("", []byte("token: "+ghp))) })
	}
	wg.Wait()
	for i, n := range counts {
		if n != 1 {
			t.Errorf("goroutine %d: %d findings, want 1", i, n)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ match, secret, want string }{
		{"key = AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP", "key = AKIA****REDACTED****"},
		{"password=hunter2", "hunter2", "password=****REDACTED****"},
		{"whole", "", "****REDACTED****"},
		{"no match here", "zzz", "****REDACTED****"},
	}
	for _, tc := range tests {
		if got := secretscan.Redact(tc.match, tc.secret); got != tc.want {
			t.Errorf("Redact(%q, %q) = %q, want %q", tc.match, tc.secret, got, tc.want)
		}
	}
}

func TestIsBinary(t *testing.T) {
	if secretscan.IsBinary([]byte("plain text")) || !secretscan.IsBinary([]byte("a\x00b")) {
		t.Error("IsBinary misjudges")
	}
	late := append(bytes.Repeat([]byte("x"), 9000), 0)
	if secretscan.IsBinary(late) {
		t.Error("a NUL after 8 KiB counts")
	}
}
