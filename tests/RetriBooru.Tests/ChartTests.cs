using System.Text.Json.Nodes;
using RetriBooru.Experiments;
using Xunit;

namespace RetriBooru.Tests;

public class ChartTests
{
    static JsonNode Figure(Plotly.NET.GenericChart chart) => JsonNode.Parse(Plotly.NET.GenericChart.toFigureJson(chart))!;

    [Fact]
    public void Metric_bars_carry_asymmetric_confidence_intervals()
    {
        var chart = Charts.MetricBars([
            new MetricPoint("retrinet", "identity", 0.8, 0.7, 0.85),
            new MetricPoint("retrinet", "swd", 0.5, 0.45, 0.6),
            new MetricPoint("text-only", "identity", 0.4, 0.3, 0.5),
        ]);
        var traces = Figure(chart)["data"]!.AsArray();
        Assert.Equal(2, traces.Count);
        var first = traces[0]!;
        Assert.Equal("retrinet", (string?)first["name"]);
        var plus = first["error_y"]!["array"]!.AsArray().Select(v => (double)v!).ToArray();
        var minus = first["error_y"]!["arrayminus"]!.AsArray().Select(v => (double)v!).ToArray();
        Assert.Equal(0.05, plus[0], 6);
        Assert.Equal(0.1, minus[0], 6);
        Assert.Equal(0.1, plus[1], 6);
    }

    [Fact]
    public void Loss_curves_smooth_with_an_exponential_moving_average()
    {
        var chart = Charts.LossCurves([new LossSeries("base", [1, 2, 3], [1.0, 0.0, 0.0])], smoothing: 0.5);
        var y = Figure(chart)["data"]![0]!["y"]!.AsArray().Select(v => (double)v!).ToArray();
        Assert.Equal([1.0, 0.5, 0.25], y);
        Assert.Throws<ArgumentOutOfRangeException>(() => Charts.LossCurves([new LossSeries("x", [1], [1.0])], smoothing: 1.0));
    }

    [Fact]
    public void Trade_off_plot_has_labels_and_both_error_bars()
    {
        var chart = Charts.TradeOff([
            new TradeOffPoint("p=0", 0.8, 0.75, 0.85, 0.3, 0.25, 0.35),
            new TradeOffPoint("p=0.5", 0.6, 0.55, 0.65, 0.5, 0.45, 0.55),
        ], "identity", "prompt consistency", "dropout");
        var trace = Figure(chart)["data"]![0]!;
        Assert.Equal(["p=0", "p=0.5"], trace["text"]!.AsArray().Select(v => (string)v!).ToArray());
        Assert.NotNull(trace["error_x"]);
        Assert.NotNull(trace["error_y"]);
    }

    [Fact]
    public void Html_embeds_plotly_js_and_never_a_cdn()
    {
        var page = PlotlyHtml.StandalonePage(Charts.Histogram([("1", 3), ("2", 5)], "similar", "images", "hist"), "t");
        // Booleans, not Assert.Contains: a failure would print 3.5 MB of plotly.js.
        Assert.True(page.Contains("plotly.js v" + PlotlyHtml.PlotlyJsVersion), "plotly.js is embedded");
        Assert.True(page.Contains("Plotly.newPlot('chart'"), "the chart is drawn");
        Assert.False(page.Contains("<script src="), "no script is loaded from the network");
        Assert.True(page.Length > 1_000_000);
    }
}
