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

public class HtmlReportTests
{
    [Fact]
    public void Report_is_one_offline_file_with_every_section()
    {
        Torch.Load();
        using var tmp = new TempDir();
        using var grid = new RetriBooru.Imaging.ImageGrid(cellSize: 32).AddRow("references", TorchSharp.torch.zeros(2, 3, 8, 8)).AddRow("generations", TorchSharp.torch.ones(3, 3, 8, 8));
        var report = new HtmlReport("test <run>")
            .KeyValues("run", "Run", [("seed", "1"), ("commit", "abc")])
            .Chart("loss", "Loss", Charts.LossCurves([new LossSeries("base", [1, 2], [1.0, 0.5])]))
            .Chart("metrics", "Metrics", Charts.MetricBars([new MetricPoint("a", "identity", 0.5, 0.4, 0.6)]))
            .Table("results", "Results", [["model", "identity"], ["retrinet", "0.5 [0.4, 0.6]"]])
            .Grid("samples", "Samples", grid);
        var path = tmp.File("report.html");
        report.Save(path);
        var html = File.ReadAllText(path);
        foreach (var id in new[] { "run", "loss", "metrics", "results", "samples" })
            Assert.True(html.Contains($"<section id=\"{id}\">"), $"section {id} missing");
        Assert.Equal(1, CountOf(html, "plotly.js v" + PlotlyHtml.PlotlyJsVersion));
        Assert.Equal(2, CountOf(html, "Plotly.newPlot('chart-"));
        Assert.True(html.Contains("test &lt;run&gt;"), "title is escaped");
        Assert.True(html.Contains("data:image/png;base64,"), "grid is inline");
        Assert.False(html.Contains("<script src="), "nothing is fetched from the network");
        Assert.Throws<ArgumentException>(() => report.Paragraph("loss", "again", "x"));
    }

    static int CountOf(string text, string part)
    {
        int count = 0;
        for (int i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + part.Length, StringComparison.Ordinal)) count++;
        return count;
    }
}
