package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/seqops/sequencer-operator/internal/bench/report"
)

// newReportCommand rewrites the report and plots from a JSON of raw results, e.g. after the
// hand-written findings changed, without measuring again.
func newReportCommand() *cobra.Command {
	var from, out string
	cmd := &cobra.Command{
		Use:   "report --from results.json --to docs/benchmarks.md",
		Short: "Rewrite the markdown report and plots from raw results, and print the table",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if from == "" {
				return errors.New("--from is required")
			}
			data, err := os.ReadFile(from)
			if err != nil {
				return err
			}
			var r report.Results
			if err := json.Unmarshal(data, &r); err != nil {
				return fmt.Errorf("cannot read %s: %w", from, err)
			}
			fmt.Print(report.Table(&r).Text())
			if out == "" {
				return nil
			}
			return report.WriteMarkdown(&r, out)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "raw results written by --json")
	cmd.Flags().StringVar(&out, "to", "", "write the markdown report here (plots go to <dir>/benchmarks/)")
	return cmd
}
