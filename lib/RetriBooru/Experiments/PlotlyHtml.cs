using System.Reflection;
using System.Text;
using Plotly.NET;

namespace RetriBooru.Experiments;

/// <summary>
/// Renders Plotly.NET charts as HTML that works offline: plotly.js comes from the copy embedded in the
/// Plotly.NET assembly (never a CDN), included once per document, and each chart is a div plus a
/// `Plotly.newPlot` call on its figure JSON.
/// </summary>
public static class PlotlyHtml
{
    static readonly Lazy<string> Script = new(LoadPlotlyJs);

    /// <summary>The plotly.js version embedded in Plotly.NET.</summary>
    public static string PlotlyJsVersion => Globals.PLOTLYJS_VERSION;

    /// <summary>The full plotly.min.js source (about 3.5 MB), read from Plotly.NET's resources.</summary>
    public static string PlotlyJs => Script.Value;

    /// <summary>A script tag holding plotly.js; put it once in a document's head.</summary>
    public static string ScriptTag => $"<script type=\"text/javascript\">{PlotlyJs}</script>";

    /// <summary>
    /// A div with the chart. The inline script waits for window.Plotly, so the div may appear before the
    /// script tag (notebooks) or after it (reports).
    /// </summary>
    public static string ChartDiv(GenericChart chart, string id, int height = 420)
    {
        var figure = GenericChart.toFigureJson(chart);
        var sb = new StringBuilder();
        sb.Append($"<div id=\"{id}\" class=\"plotly-chart\" style=\"width:100%;height:{height}px\"></div>");
        sb.Append("<script type=\"text/javascript\">(function(){var f=").Append(figure).Append(';');
        // Plotly.NET's template fixes 600x600; let the chart fill its div instead.
        sb.Append("delete f.layout.width;delete f.layout.height;f.layout.autosize=true;");
        sb.Append("function draw(){if(window.Plotly){Plotly.newPlot('").Append(id)
          .Append("',f.data,f.layout,{responsive:true,displaylogo:false});}else{setTimeout(draw,50);}}draw();})();</script>");
        return sb.ToString();
    }

    /// <summary>A complete standalone HTML page with one chart (plotly.js embedded).</summary>
    public static string StandalonePage(GenericChart chart, string title) =>
        $"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{System.Net.WebUtility.HtmlEncode(title)}</title>{ScriptTag}</head><body>{ChartDiv(chart, "chart")}</body></html>";

    static string LoadPlotlyJs()
    {
        var assembly = typeof(GenericChart).Assembly;
        var name = assembly.GetManifestResourceNames().FirstOrDefault(n => n.EndsWith(".min.js", StringComparison.Ordinal) && n.Contains("plotly", StringComparison.OrdinalIgnoreCase))
                   ?? throw new InvalidOperationException($"plotly.js is not embedded in {assembly.Location}; the Plotly.NET package changed its layout");
        using var stream = assembly.GetManifestResourceStream(name)!;
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}
