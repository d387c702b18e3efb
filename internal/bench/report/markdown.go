package report

import "fmt"

// WriteMarkdown is filled in below; stub while the plots are written.
func WriteMarkdown(r *Results, path string) error { return fmt.Errorf("not yet") }
