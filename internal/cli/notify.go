package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/webhook"
)

// NotifyOptions are the flags of `berth notify`.
type NotifyOptions struct {
	URL        string
	SecretFile string
}

// NewCmdNotify sends a signed generic webhook to the agent, so CI or a Git
// hook can trigger an immediate fetch of a repository.
func NewCmdNotify(s Streams) *cobra.Command {
	o := &NotifyOptions{}
	cmd := &cobra.Command{
		Use:   "notify REPO_URL",
		Short: "Tell the agent a repository changed (a signed generic webhook)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Read as the agent reads its copy: the same bytes sign.
			secret, err := webhook.ReadSecretFile(o.SecretFile)
			if err != nil {
				return fmt.Errorf("reading the webhook secret: %w", err)
			}
			body, _ := json.Marshal(map[string]string{"url": args[0]})
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, o.URL, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Berth-Signature", webhook.Sign(secret, body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("calling %s: %w", o.URL, err)
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusAccepted {
				return &ExitError{Code: 1, Err: fmt.Errorf("agent answered %s: %s", resp.Status, strings.TrimSpace(string(out)))}
			}
			fmt.Fprintf(s.Out, "%s", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.URL, "url", "", "agent webhook URL, e.g. http://berth-webhooks.berth-system/hooks/generic")
	cmd.Flags().StringVar(&o.SecretFile, "secret-file", "", "file holding the shared webhook secret")
	_ = cmd.MarkFlagRequired("url")
	_ = cmd.MarkFlagRequired("secret-file")
	return cmd
}
