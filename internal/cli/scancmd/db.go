package scancmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/cli/clio"
	"github.com/berth-dev/berth/internal/scan"
	"github.com/berth-dev/berth/internal/vulndb"
)

// dbFlags locate the vulnerability database.
type dbFlags struct {
	Dir string
}

func (f *dbFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.Dir, "db", "", "vulnerability database directory (default: berth/vulndb under the user cache directory, or $BERTH_DB_DIR)")
}

func (f *dbFlags) dir() (string, error) {
	if f.Dir != "" {
		return f.Dir, nil
	}
	return vulndb.DefaultDir()
}

// NewCmdDB groups the commands that manage the vulnerability database.
func NewCmdDB(s clio.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Manage the local OSV vulnerability database that `berth scan` reads",
		Long: `berth scans against a local copy of vulnerability data in OSV format. Import the
per-ecosystem all.zip archives that OSV publishes, a directory of OSV .json files (for
example golang.org/x/vulndb's data/osv) or single records; imports merge, and a record
replaces an older one with the same ID.`,
	}
	cmd.AddCommand(NewCmdDBImport(s), NewCmdDBStatus(s))
	return cmd
}

// DBImportOptions are the flags of `berth db import`.
type DBImportOptions struct {
	dbFlags
}

// NewCmdDBImport imports OSV data into the store.
func NewCmdDBImport(s clio.Streams) *cobra.Command {
	o := &DBImportOptions{}
	cmd := &cobra.Command{
		Use:   "import PATH",
		Short: "Import OSV records from a .json file, a directory of them or an OSV all.zip",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := o.dir()
			if err != nil {
				return err
			}
			res, err := vulndb.Import(cmd.Context(), dir, args[0], vulndb.ImportOptions{})
			if err != nil {
				return err
			}
			if res.Replaced != "" {
				fmt.Fprintln(s.ErrOut, "warning:", res.Replaced)
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(s.ErrOut, "warning:", w)
			}
			if res.Skipped > len(res.Warnings) {
				fmt.Fprintf(s.ErrOut, "warning: %d more records skipped\n", res.Skipped-len(res.Warnings))
			}
			fmt.Fprintf(s.Out, "imported %d records (%d withdrawn, %d skipped) into %s: %d advisories in total\n",
				res.Records, res.Withdrawn, res.Skipped, dir, res.Meta.Advisories)
			return nil
		},
	}
	o.bind(cmd.Flags())
	return cmd
}

// DBStatusOptions are the flags of `berth db status`.
type DBStatusOptions struct {
	dbFlags
	MaxAge ageValue
}

// NewCmdDBStatus prints what the store holds. Exit code 1 when it is older
// than --max-db-age.
func NewCmdDBStatus(s clio.Streams) *cobra.Command {
	o := &DBStatusOptions{MaxAge: ageValue(scan.DefaultMaxDBAge)}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the database's sources, import time and counts (exit 1 if older than --max-db-age)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			dir, err := o.dir()
			if err != nil {
				return err
			}
			db, err := vulndb.Open(dir)
			if err != nil {
				return err
			}
			now := time.Now()
			vulndb.PrintStatus(s.Out, dir, db.Metadata(), now)
			if err := db.CheckAge(now, time.Duration(o.MaxAge)); err != nil {
				return &clio.ExitError{Code: 1, Err: err}
			}
			return nil
		},
	}
	o.bind(cmd.Flags())
	cmd.Flags().Var(&o.MaxAge, "max-db-age", "age after which the database is stale, e.g. 7d, 36h; 0 disables the check")
	return cmd
}
