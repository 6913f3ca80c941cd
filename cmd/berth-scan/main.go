// Command berth-scan is berth's image scanner alone, for CI images: the
// `scan` and `db` commands of berth, without any Kubernetes code.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-dev/berth/internal/cli/clio"
	"github.com/berth-dev/berth/internal/cli/scancmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	s := clio.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	code := clio.Execute(ctx, scancmd.NewRootCmd(s), os.Args[1:], s)
	stop()
	os.Exit(code)
}
