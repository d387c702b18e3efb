package report

import (
	"fmt"
	"image/color"
	"math/rand/v2"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot is one PNG written next to the report.
type Plot struct {
	File, Title string
}

// writePlots draws the four plots into dir and returns those it drew.
func writePlots(r *Results, dir string) ([]Plot, error) {
	var out []Plot
	type drawer struct {
		file, title string
		draw        func(*Results) (*plot.Plot, error)
	}
	for _, d := range []drawer{
		{"failover.png", "Failover: SIGKILL of the leader → first block committed by the new leader", failoverPlot},
		{"switchover.png", "Switchover: largest gap between consecutive blocks per hand-over", switchoverPlot},
		{"commit-latency-cdf.png", "Commit latency CDF: block build → committed on the leader", latencyPlot},
		{"throughput.png", "Sustained throughput against block size", throughputPlot},
	} {
		p, err := d.draw(r)
		if err != nil {
			return out, fmt.Errorf("%s: %w", d.file, err)
		}
		if p == nil {
			continue
		}
		if err := p.Save(9*vg.Inch, 5*vg.Inch, filepath.Join(dir, d.file)); err != nil {
			return out, fmt.Errorf("cannot save %s: %w", d.file, err)
		}
		out = append(out, Plot{File: d.file, Title: d.title})
	}
	return out, nil
}

// boxes draws one box plot per group with its samples as jittered points over it.
func boxes(p *plot.Plot, names []string, groups [][]float64) error {
	rng := rand.New(rand.NewPCG(1, 2))
	for i, g := range groups {
		if len(g) == 0 {
			continue
		}
		b, err := plotter.NewBoxPlot(vg.Points(30), float64(i), plotter.Values(g))
		if err != nil {
			return err
		}
		b.FillColor = color.RGBA{R: 200, G: 220, B: 255, A: 255}
		pts := make(plotter.XYs, len(g))
		for j, v := range g {
			pts[j] = plotter.XY{X: float64(i) + 0.25 + 0.1*(rng.Float64()-0.5), Y: v}
		}
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		s.GlyphStyle.Radius = vg.Points(1.8)
		s.GlyphStyle.Color = color.RGBA{R: 180, A: 255}
		p.Add(b, s)
	}
	p.NominalX(names...)
	return nil
}

func hline(p *plot.Plot, y, x0, x1 float64, label string) error {
	l, err := plotter.NewLine(plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}})
	if err != nil {
		return err
	}
	l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	l.LineStyle.Color = color.RGBA{R: 200, G: 80, A: 255}
	p.Add(l)
	p.Legend.Add(label, l)
	return nil
}

func failoverPlot(r *Results) (*plot.Plot, error) {
	if len(r.Failover) == 0 && len(r.Floor) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "SIGKILL of the leader → first block committed by the new leader"
	p.Y.Label.Text = "ms (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	var names []string
	var groups [][]float64
	for _, f := range r.Failover {
		names = append(names, "node "+f.Timings.Name)
		groups = append(groups, f.FirstCommits())
		if fl := floorFor(r, f.Timings.Name); fl != nil {
			names = append(names, "floor "+f.Timings.Name)
			groups = append(groups, fl.FirstCommits())
		}
	}
	if err := boxes(p, names, groups); err != nil {
		return nil, err
	}
	if err := hline(p, targetFailoverP99, -0.5, float64(len(names))-0.5, "target p99 400 ms (default timings)"); err != nil {
		return nil, err
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p, nil
}

func switchoverPlot(r *Results) (*plot.Plot, error) {
	s := r.Switchover
	if s == nil {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Largest gap between consecutive blocks around a hand-over (%v blocks)", s.BlockTime)
	p.Y.Label.Text = "ms"
	if err := boxes(p, []string{"SIGTERM", "API transfer"}, [][]float64{s.Gaps("sigterm"), s.Gaps("transfer")}); err != nil {
		return nil, err
	}
	limit := float64(s.BlockTime.Milliseconds()) + 20
	if err := hline(p, limit, -0.5, 1.5, fmt.Sprintf("target %.0f ms", limit)); err != nil {
		return nil, err
	}
	p.Legend.Top = true
	return p, nil
}

func latencyPlot(r *Results) (*plot.Plot, error) {
	if len(r.CommitLatency) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Per block: header time (build starts) → committed and applied on the leader"
	p.X.Label.Text = "ms (log scale)"
	p.Y.Label.Text = "fraction of blocks"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	var args []any
	for _, l := range r.CommitLatency {
		v := append([]float64(nil), l.BuildToVisibleMs...)
		if len(v) == 0 {
			continue
		}
		sort.Float64s(v)
		pts := make(plotter.XYs, len(v))
		for i, x := range v {
			pts[i] = plotter.XY{X: max(x, 0.1), Y: float64(i+1) / float64(len(v))}
		}
		args = append(args, fmt.Sprintf("%v, %d tx", l.BlockTime, l.TxsPerBlock), pts)
	}
	if err := plotutil.AddLines(p, args...); err != nil {
		return nil, err
	}
	p.Legend.Left, p.Legend.Top = false, false
	return p, nil
}

func throughputPlot(r *Results) (*plot.Plot, error) {
	if len(r.Throughput) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Committed tx/s (100-byte tx, fsync on, 3 nodes) against the block size limit"
	p.X.Label.Text = "max transactions per block"
	p.Y.Label.Text = "tx/s"
	var pts plotter.XYs
	for _, t := range r.Throughput {
		pts = append(pts, plotter.XY{X: float64(t.MaxTxsPerBlock), Y: t.TxPerSecond})
	}
	if err := plotutil.AddLinePoints(p, fmt.Sprintf("measured (%v blocks)", r.Throughput[0].BlockTime), pts); err != nil {
		return nil, err
	}
	if err := hline(p, targetThroughput, pts[0].X, pts[len(pts)-1].X, "target 50,000 tx/s"); err != nil {
		return nil, err
	}
	p.Y.Min = 0
	p.Legend.Top = true
	return p, nil
}
