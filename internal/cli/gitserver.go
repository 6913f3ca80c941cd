package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/gitserver"
)

// GitServerOptions are the flags of `berth git-server`.
type GitServerOptions struct {
	gitserver.Options
	Addr string
}

// NewCmdGitServer serves bare repositories over Git smart HTTP (used by
// `berth up`; hidden).
func NewCmdGitServer(s Streams) *cobra.Command {
	o := &GitServerOptions{}
	cmd := &cobra.Command{
		Use:    "git-server",
		Short:  "Serve bare Git repositories over smart HTTP (used by berth up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := gitserver.NewHandler(o.Options)
			if err != nil {
				return err
			}
			var lc net.ListenConfig
			l, err := lc.Listen(cmd.Context(), "tcp", o.Addr)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			fmt.Fprintf(s.ErrOut, "serving %s on http://%s\n", o.Root, l.Addr())
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Root, "root", ".", "directory holding NAME.git repositories")
	cmd.Flags().StringVar(&o.Addr, "addr", "127.0.0.1:8418", "listen address")
	cmd.Flags().StringVar(&o.User, "user", "", "require basic auth with this user")
	cmd.Flags().StringVar(&o.Password, "password", "", "password for --user")
	return cmd
}
