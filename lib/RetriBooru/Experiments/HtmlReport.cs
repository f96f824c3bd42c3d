using System.Net;
using System.Text;
using Plotly.NET;
using RetriBooru.Imaging;
using RetriBooru.Runtime;

namespace RetriBooru.Experiments;

/// <summary>
/// A single self-contained HTML file: plotly.js is embedded once in the head, images are inline PNG,
/// so the report opens offline and can be mailed as one file. Sections keep their order; each has an
/// id (used by tests and by links in the table of contents).
/// </summary>
public sealed class HtmlReport(string title)
{
    readonly List<(string Id, string Title, string Html)> _sections = [];
    int _charts;

    public string Title { get; } = title;
    public IReadOnlyList<string> SectionIds => _sections.Select(s => s.Id).ToList();

    public HtmlReport Paragraph(string id, string heading, string text) =>
        Add(id, heading, $"<p>{WebUtility.HtmlEncode(text)}</p>");

    public HtmlReport Chart(string id, string heading, GenericChart chart, string? caption = null) =>
        Add(id, heading, PlotlyHtml.ChartDiv(chart, $"chart-{++_charts}") + Caption(caption));

    /// <summary>A table; the first row is the header. Cells are text (escaped).</summary>
    public HtmlReport Table(string id, string heading, IReadOnlyList<IReadOnlyList<string>> rows, string? caption = null)
    {
        var sb = new StringBuilder("<table>");
        for (int r = 0; r < rows.Count; r++)
        {
            var tag = r == 0 ? "th" : "td";
            sb.Append("<tr>");
            foreach (var cell in rows[r]) sb.Append('<').Append(tag).Append('>').Append(WebUtility.HtmlEncode(cell)).Append("</").Append(tag).Append('>');
            sb.Append("</tr>");
        }
        sb.Append("</table>");
        return Add(id, heading, sb + Caption(caption));
    }

    public HtmlReport KeyValues(string id, string heading, IEnumerable<(string Key, string Value)> pairs) =>
        Table(id, heading, [["field", "value"], .. pairs.Select(p => (IReadOnlyList<string>)[p.Key, p.Value])]);

    /// <summary>An image grid with its row labels (e.g. "references | generations").</summary>
    public HtmlReport Grid(string id, string heading, ImageGrid grid, string? caption = null)
    {
        var png = Convert.ToBase64String(grid.ToPng());
        var labels = string.Concat(grid.RowLabels.Select(l =>
            $"<div class=\"rowlabel\" style=\"height:{grid.CellSize + grid.Padding}px;line-height:{grid.CellSize}px\">{WebUtility.HtmlEncode(l)}</div>"));
        return Add(id, heading,
            $"<div class=\"grid\"><div class=\"labels\" style=\"padding-top:{grid.Padding}px\">{labels}</div><img alt=\"{WebUtility.HtmlEncode(heading)}\" src=\"data:image/png;base64,{png}\"/></div>{Caption(caption)}");
    }

    public HtmlReport Add(string id, string heading, string html)
    {
        if (_sections.Any(s => s.Id == id)) throw new ArgumentException($"duplicate report section id '{id}'", nameof(id));
        _sections.Add((id, heading, html));
        return this;
    }

    public string Render()
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(WebUtility.HtmlEncode(Title)).Append("</title>");
        sb.Append("<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}")
          .Append("table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-variant-numeric:tabular-nums}")
          .Append("th{background:#f3f3f3}.caption{color:#555;font-size:.9em}.grid{display:flex;align-items:flex-start}")
          .Append(".labels{padding-right:8px;text-align:right;font-size:12px}section{margin-bottom:2.5em}nav li{margin:.1em 0}</style>");
        if (_charts > 0) sb.Append(PlotlyHtml.ScriptTag);
        sb.Append("</head><body><h1>").Append(WebUtility.HtmlEncode(Title)).Append("</h1><nav><ol>");
        foreach (var (id, heading, _) in _sections) sb.Append($"<li><a href=\"#{id}\">{WebUtility.HtmlEncode(heading)}</a></li>");
        sb.Append("</ol></nav>");
        foreach (var (id, heading, html) in _sections)
            sb.Append($"<section id=\"{id}\"><h2>{WebUtility.HtmlEncode(heading)}</h2>").Append(html).Append("</section>");
        sb.Append("</body></html>\n");
        return sb.ToString();
    }

    public void Save(string path) => AtomicFile.WriteAllText(path, Render());

    static string Caption(string? caption) => caption is null ? "" : $"<p class=\"caption\">{WebUtility.HtmlEncode(caption)}</p>";
}
