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
	var (
		from         []string
		out, jsonOut string
	)
	cmd := &cobra.Command{
		Use:   "report --from results.json [--from more.json] --to docs/benchmarks.md",
		Short: "Rewrite the markdown report and plots from raw results (merging several runs), and print the table",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if len(from) == 0 {
				return errors.New("--from is required")
			}
			var r report.Results
			for i, path := range from {
				part, err := readResults(path)
				if err != nil {
					return err
				}
				if i == 0 {
					r = *part
				} else {
					r.Merge(part)
				}
			}
			fmt.Print(report.Table(&r).Text())
			if jsonOut != "" {
				if err := report.WriteJSON(&r, jsonOut); err != nil {
					return err
				}
			}
			if out == "" {
				return nil
			}
			return report.WriteMarkdown(&r, out)
		},
	}
	cmd.Flags().StringSliceVar(&from, "from", nil, "raw results written by --json; several (in order) are merged, a later run's sections replacing an earlier run's")
	cmd.Flags().StringVar(&out, "to", "", "write the markdown report here (plots go to <dir>/benchmarks/)")
	cmd.Flags().StringVar(&jsonOut, "json", "", "write the merged raw results here")
	return cmd
}

func readResults(path string) (*report.Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r report.Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return &r, nil
}
