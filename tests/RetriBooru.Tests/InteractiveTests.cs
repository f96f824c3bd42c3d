using Microsoft.DotNet.Interactive.Formatting;
using RetriBooru.Interactive;
using SkiaSharp;
using Xunit;

namespace RetriBooru.Tests;

public class InteractiveTests
{
    [Fact]
    public void Live_loss_chart_records_points_outside_a_kernel()
    {
        var chart = new LiveLossChart("base", smoothing: 0, minInterval: TimeSpan.Zero);
        for (int step = 1; step <= 5; step++) chart.Report((step, 1.0 / step));
        chart.Complete();
        Assert.Equal([1, 2, 3, 4, 5], chart.Steps);
        Assert.Equal(6, chart.Redraws);
        var json = Plotly.NET.GenericChart.toFigureJson(chart.ToChart());
        Assert.Contains("\"name\":\"base\"", json);
        Assert.Contains("base (step 5)", json);
    }

    [Fact]
    public void Formatters_render_images_and_image_tensors_as_inline_png()
    {
        Torch.Load();
        NotebookSession.Start();
        using var bitmap = new SKBitmap(4, 4);
        Assert.Contains("data:image/png;base64,", bitmap.ToDisplayString("text/html"));
        using var images = TorchSharp.torch.zeros(2, 3, 8, 8);
        Assert.Contains("data:image/png;base64,", images.ToDisplayString("text/html"));
        Assert.True(WorkbenchFormatters.LooksLikeImages(images));
        using var notImage = TorchSharp.torch.zeros(5, 7);
        Assert.False(WorkbenchFormatters.LooksLikeImages(notImage));
    }

    [Fact]
    public void Smoke_sizes_follow_the_environment_variable()
    {
        var expected = Environment.GetEnvironmentVariable("RETRIBOORU_SMOKE") == "1" ? 2 : 100;
        Assert.Equal(expected, NotebookSession.Size(100, 2));
    }
}
