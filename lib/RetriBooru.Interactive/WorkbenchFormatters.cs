using System.Net;
using Microsoft.DotNet.Interactive.Formatting;
using Plotly.NET;
using RetriBooru.Data;
using RetriBooru.Data.Retrieval;
using RetriBooru.Experiments;
using RetriBooru.Imaging;
using SkiaSharp;
using TorchSharp;

namespace RetriBooru.Interactive;

/// <summary>HTML renderings of the workbench's values in notebooks.</summary>
public static class WorkbenchFormatters
{
    const string Html = "text/html";
    static int _plotlyEmbedded;
    static int _chartCounter;

    public static void Register()
    {
        Formatter.Register<GenericChart>((chart, writer) => writer.Write(ChartHtml(chart)), Html);
        Formatter.Register<SKBitmap>((bitmap, writer) => writer.Write(ImageHtml(bitmap)), Html);
        Formatter.Register<ImageGrid>((grid, writer) => writer.Write(GridHtml(grid)), Html);
        Formatter.Register<torch.Tensor>((tensor, context) =>
        {
            if (!LooksLikeImages(tensor)) return false;
            context.Writer.Write(TensorHtml(tensor));
            return true;
        }, Html);
        Formatter.Register<HtmlView>((view, writer) => writer.Write(view.Html), Html);
        Formatter.Register<RecordCard>((card, writer) => writer.Write(card.ToHtml()), Html);
        Formatter.Register<SideBySide>((view, writer) => writer.Write(view.ToHtml()), Html);
        Formatter.Register<DatasetStats>((stats, writer) => writer.Write(HtmlTables.DatasetStatsHtml(stats)), Html);
        Formatter.Register<LeakageReport>((report, writer) => writer.Write(HtmlTables.LeakageHtml(report)), Html);
        foreach (var type in new[] { typeof(GenericChart), typeof(SKBitmap), typeof(ImageGrid), typeof(torch.Tensor), typeof(RecordCard), typeof(SideBySide), typeof(HtmlView), typeof(DatasetStats), typeof(LeakageReport) })
            Formatter.SetPreferredMimeTypesFor(type, Html);
    }

    /// <summary>
    /// The first chart of a session carries plotly.js itself (offline, no CDN); later charts find
    /// window.Plotly already defined. Rerun the first chart cell if its output was cleared.
    /// </summary>
    public static string ChartHtml(GenericChart chart)
    {
        var id = $"retribooru-chart-{Interlocked.Increment(ref _chartCounter)}-{Guid.NewGuid():N}"[..40];
        var script = Interlocked.Exchange(ref _plotlyEmbedded, 1) == 0 ? PlotlyHtml.ScriptTag : "";
        return script + PlotlyHtml.ChartDiv(chart, id);
    }

    /// <summary>An inline PNG, scaled up with crisp pixels when the image is small.</summary>
    public static string ImageHtml(SKBitmap bitmap, int minDisplayWidth = 128)
    {
        var png = ImageTensor.EncodePng(bitmap);
        int width = Math.Max(bitmap.Width, minDisplayWidth);
        return $"<img src=\"data:image/png;base64,{Convert.ToBase64String(png)}\" width=\"{width}\" style=\"image-rendering:pixelated\" />";
    }

    public static string GridHtml(ImageGrid grid)
    {
        var png = grid.ToPng();
        var labels = string.Join("", grid.RowLabels.Select(l =>
            $"<div style=\"height:{grid.CellSize + grid.Padding}px;line-height:{grid.CellSize}px;font-family:sans-serif;font-size:12px\">{WebUtility.HtmlEncode(l)}</div>"));
        return $"<div style=\"display:flex;align-items:flex-start\"><div style=\"padding-top:{grid.Padding}px;padding-right:6px;text-align:right\">{labels}</div>" +
               $"<img src=\"data:image/png;base64,{Convert.ToBase64String(png)}\" style=\"image-rendering:pixelated\" /></div>";
    }

    /// <summary>[3, H, W] or [N, 3, H, W] floating tensors are shown as images (values in [-1, 1]).</summary>
    public static bool LooksLikeImages(torch.Tensor tensor) =>
        tensor.is_floating_point() &&
        ((tensor.dim() == 3 && tensor.shape[0] == 3) || (tensor.dim() == 4 && tensor.shape[1] == 3 && tensor.shape[0] <= 64));

    public static string TensorHtml(torch.Tensor tensor)
    {
        using var grid = new ImageGrid(cellSize: (int)Math.Max(64, tensor.shape[^1]));
        grid.AddRow($"[{string.Join(", ", tensor.shape)}]", tensor);
        return GridHtml(grid);
    }
}
