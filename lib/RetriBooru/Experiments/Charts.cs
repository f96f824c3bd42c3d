using Microsoft.FSharp.Core;
using Plotly.NET;
using Plotly.NET.LayoutObjects;
using Plotly.NET.TraceObjects;
using CSharpChart = Plotly.NET.CSharp.Chart;
using Plotly.NET.CSharp;

namespace RetriBooru.Experiments;

/// <summary>A loss curve: one value per logged step.</summary>
public sealed record LossSeries(string Name, IReadOnlyList<int> Steps, IReadOnlyList<double> Losses);

/// <summary>A metric estimate with its 95% confidence interval, for one group (model, dropout rate ...).</summary>
public sealed record MetricPoint(string Group, string Metric, double Mean, double Low, double High);

/// <summary>One labelled point with confidence intervals on both axes (e.g. one prompt-dropout rate).</summary>
public sealed record TradeOffPoint(string Label, double X, double XLow, double XHigh, double Y, double YLow, double YHigh);

/// <summary>
/// The charts of reports and notebooks, built with Plotly.NET. Reports and notebooks call the same
/// functions, so a figure looks the same in both.
/// </summary>
public static class Charts
{
    /// <summary>Loss against step, one line per series, with an optional exponential moving average to read trends.</summary>
    public static GenericChart LossCurves(IEnumerable<LossSeries> series, double smoothing = 0.0, string title = "Training loss")
    {
        if (smoothing is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(smoothing), smoothing, "smoothing must be in [0, 1)");
        var lines = series.Select(s =>
            CSharpChart.Line<int, double, string>(s.Steps, Smooth(s.Losses, smoothing), Name: s.Name, ShowMarkers: false)).ToList();
        if (lines.Count == 0) throw new ArgumentException("no loss series to plot", nameof(series));
        return CSharpChart.Combine(lines)
            .WithXAxisStyle<double, double, string>(TitleText: "step")
            .WithYAxisStyle<double, double, string>(TitleText: "loss")
            .Titled(title);
    }

    /// <summary>Denoising error per timestep (log-log): the model's x0 MSE against the naive x_t guess (<c>model diagnose</c>).</summary>
    public static GenericChart DenoisingError(IReadOnlyList<Diffusion.DenoisingErrorRow> rows, string title = "Denoising error per timestep (x0 MSE, real images)")
    {
        if (rows.Count == 0) throw new ArgumentException("no rows to plot", nameof(rows));
        var t = rows.Select(r => Math.Max(r.Timestep, 1)).ToList();
        var model = CSharpChart.Line<int, double, string>(t, rows.Select(r => r.ModelX0Mse), Name: "model", ShowMarkers: true);
        var naive = CSharpChart.Line<int, double, string>(t, rows.Select(r => r.NaiveX0Mse), Name: "naive (x_t)", ShowMarkers: true);
        return CSharpChart.Combine([model, naive])
            .WithXAxisStyle<double, double, string>(TitleText: "timestep (0 shown at 1)", AxisType: StyleParam.AxisType.Log)
            .WithYAxisStyle<double, double, string>(TitleText: "x0 MSE", AxisType: StyleParam.AxisType.Log)
            .Titled(title);
    }

    /// <summary>Grouped bars, one group of bars per metric and one colour per group, with 95% CI error bars.</summary>
    public static GenericChart MetricBars(IEnumerable<MetricPoint> points, string title = "Metrics (mean, 95% CI)")
    {
        var all = points.ToList();
        if (all.Count == 0) throw new ArgumentException("no metric points to plot", nameof(points));
        var bars = all.GroupBy(p => p.Group).Select(g =>
        {
            var rows = g.ToList();
            var bar = CSharpChart.Column<double, string, string>(rows.Select(r => r.Mean), Keys: rows.Select(r => r.Metric).ToArray(), Name: g.Key);
            return WithYError(bar, rows.Select(r => r.High - r.Mean), rows.Select(r => r.Mean - r.Low));
        }).ToList();
        return CSharpChart.Combine(bars).Titled(title).WithYAxisStyle<double, double, string>(TitleText: "score");
    }

    /// <summary>A labelled trade-off curve (e.g. identity vs prompt consistency across prompt-dropout rates) with 2-D error bars.</summary>
    public static GenericChart TradeOff(IEnumerable<TradeOffPoint> points, string xTitle, string yTitle, string title)
    {
        var all = points.ToList();
        if (all.Count == 0) throw new ArgumentException("no points to plot", nameof(points));
        var chart = CSharpChart.Scatter<double, double, string>(all.Select(p => p.X), all.Select(p => p.Y), StyleParam.Mode.Lines_Markers_Text,
            MultiText: all.Select(p => p.Label).ToArray(), TextPosition: StyleParam.TextPosition.TopCenter, Name: title);
        chart = WithYError(chart, all.Select(p => p.YHigh - p.Y), all.Select(p => p.Y - p.YLow));
        chart = WithXError(chart, all.Select(p => p.XHigh - p.X), all.Select(p => p.X - p.XLow));
        return chart.WithXAxisStyle<double, double, string>(TitleText: xTitle).WithYAxisStyle<double, double, string>(TitleText: yTitle).Titled(title);
    }

    /// <summary>Scatter of per-item values, one colour per group (e.g. SWD vs identity per reference set, per model).</summary>
    public static GenericChart GroupedScatter(IEnumerable<(string Group, double X, double Y, string Label)> points, string xTitle, string yTitle, string title)
    {
        var groups = points.GroupBy(p => p.Group).Select(g =>
            CSharpChart.Point<double, double, string>(g.Select(p => p.X), g.Select(p => p.Y), Name: g.Key, MultiText: g.Select(p => p.Label).ToArray())).ToList();
        if (groups.Count == 0) throw new ArgumentException("no points to plot", nameof(points));
        return CSharpChart.Combine(groups).WithXAxisStyle<double, double, string>(TitleText: xTitle).WithYAxisStyle<double, double, string>(TitleText: yTitle).Titled(title);
    }

    /// <summary>Bars for a precomputed histogram (e.g. the number of images by length of their `similar` list).</summary>
    public static GenericChart Histogram(IEnumerable<(string Bin, double Count)> bins, string xTitle, string yTitle, string title)
    {
        var all = bins.ToList();
        return CSharpChart.Column<double, string, string>(all.Select(b => b.Count), Keys: all.Select(b => b.Bin).ToArray(), Name: yTitle)
            .WithXAxisStyle<double, double, string>(TitleText: xTitle).WithYAxisStyle<double, double, string>(TitleText: yTitle).Titled(title);
    }

    /// <summary>A matrix as a heat map (e.g. pairwise answer diversity of generations), rows and columns numbered from 0.</summary>
    public static GenericChart Heatmap(IReadOnlyList<IReadOnlyList<double>> values, string xTitle, string yTitle, string title)
    {
        if (values.Count == 0) throw new ArgumentException("no values to plot", nameof(values));
        var labels = Enumerable.Range(0, values.Count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var columns = Enumerable.Range(0, values.Max(r => r.Count)).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        return CSharpChart.Heatmap<double, string, string, string>(values.Select(r => (IEnumerable<double>)r), X: columns, Y: labels)
            .WithXAxisStyle<double, double, string>(TitleText: xTitle).WithYAxisStyle<double, double, string>(TitleText: yTitle).Titled(title);
    }

    static GenericChart Titled(this GenericChart chart, string title) => Plotly.NET.Chart.withTitle(title, null).Invoke(chart);

    static IReadOnlyList<double> Smooth(IReadOnlyList<double> values, double smoothing)
    {
        if (smoothing == 0 || values.Count == 0) return values;
        var result = new double[values.Count];
        double average = values[0];
        for (int i = 0; i < values.Count; i++) result[i] = average = smoothing * average + (1 - smoothing) * values[i];
        return result;
    }

    // Plotly.NET exposes error bars only through its F# API; None is null for FSharpOption.
    static GenericChart WithYError(GenericChart chart, IEnumerable<double> plus, IEnumerable<double> minus) =>
        Plotly.NET.Chart.withYError(ErrorBars(plus, minus)).Invoke(chart);

    static GenericChart WithXError(GenericChart chart, IEnumerable<double> plus, IEnumerable<double> minus) =>
        Plotly.NET.Chart.withXError(ErrorBars(plus, minus)).Invoke(chart);

    static Error ErrorBars(IEnumerable<double> plus, IEnumerable<double> minus) =>
        Error.init<double, double>(
            Visible: FSharpOption<bool>.Some(true), Type: FSharpOption<StyleParam.ErrorType>.Some(StyleParam.ErrorType.Data),
            Symmetric: FSharpOption<bool>.Some(false),
            Array: FSharpOption<IEnumerable<double>>.Some(plus.Select(v => Math.Max(0, v)).ToArray()),
            Arrayminus: FSharpOption<IEnumerable<double>>.Some(minus.Select(v => Math.Max(0, v)).ToArray()),
            ArrayEncoded: null, ArrayminusEncoded: null, Value: null, Valueminus: null, Traceref: null, Tracerefminus: null,
            Copy_ystyle: null, Color: null, Thickness: null, Width: null);
}
