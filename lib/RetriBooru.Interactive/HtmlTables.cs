using System.Collections;
using System.Globalization;
using System.Net;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text;
using RetriBooru.Data;
using RetriBooru.Data.Retrieval;

namespace RetriBooru.Interactive;

/// <summary>
/// Plain HTML tables for notebook output: one row per item from its public properties (records, anonymous
/// types) or fields (value tuples; their element names do not survive compilation, so pass headers), numbers
/// right-aligned in invariant culture, doubles to 4 significant digits.
/// </summary>
public static class HtmlTables
{
    const string TableStyle = "border-collapse:collapse;font-family:sans-serif;font-size:12px";
    const string CellStyle = "border:1px solid #ddd;padding:2px 8px";

    public static HtmlView Of<T>(IEnumerable<T> rows, params string[] headers)
    {
        var items = rows.ToList();
        var columns = Columns(typeof(T));
        if (headers.Length > 0 && headers.Length != columns.Count)
            throw new ArgumentException($"{headers.Length} headers for {columns.Count} columns ({string.Join(", ", columns.Select(c => c.Name))})");
        var names = headers.Length > 0 ? headers : columns.Select(c => c.Name).ToArray();
        return new HtmlView(Render(names, items.Select(item => columns.Select(c => c.Get(item)).ToArray())));
    }

    /// <summary>A two-column name/value table.</summary>
    public static string KeyValues(string title, IEnumerable<(string Name, object? Value)> rows) =>
        Render([title, ""], rows.Select(r => new[] { r.Name, r.Value }));

    public static string Render(IReadOnlyList<string> headers, IEnumerable<object?[]> rows)
    {
        var html = new StringBuilder($"<table style=\"{TableStyle}\"><thead><tr>");
        foreach (var h in headers) html.Append($"<th style=\"{CellStyle};background:#f4f4f4;text-align:left\">").Append(WebUtility.HtmlEncode(h)).Append("</th>");
        html.Append("</tr></thead><tbody>");
        foreach (var row in rows)
        {
            html.Append("<tr>");
            foreach (var value in row)
            {
                bool numeric = value is sbyte or byte or short or ushort or int or uint or long or ulong or float or double or decimal;
                html.Append($"<td style=\"{CellStyle}{(numeric ? ";text-align:right" : "")}\">").Append(WebUtility.HtmlEncode(FormatValue(value))).Append("</td>");
            }
            html.Append("</tr>");
        }
        return html.Append("</tbody></table>").ToString();
    }

    public static string FormatValue(object? value) => value switch
    {
        null => "",
        string s => s,
        double d => d.ToString("G4", CultureInfo.InvariantCulture),
        float f => f.ToString("G4", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        IEnumerable e => string.Join(", ", e.Cast<object?>().Select(FormatValue)),
        _ => value.ToString() ?? "",
    };

    sealed record Column(string Name, Func<object?, object?> Get);

    static List<Column> Columns(Type type)
    {
        if (type.IsPrimitive || type == typeof(string) || type == typeof(decimal)) return [new Column("value", v => v)];
        if (typeof(ITuple).IsAssignableFrom(type) && type.IsValueType)
            return type.GetFields(BindingFlags.Public | BindingFlags.Instance)
                .Select(f => new Column(f.Name, item => item is null ? null : f.GetValue(item))).ToList();
        return type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetIndexParameters().Length == 0 && p.Name != "EqualityContract")
            .Select(p => new Column(p.Name, item => item is null ? null : p.GetValue(item))).ToList();
    }

    /// <summary>A built dataset's stats: counts, splits, rejections, the `similar` histogram and each manifest's leakage check.</summary>
    public static string DatasetStatsHtml(DatasetStats stats)
    {
        var parts = new List<string>
        {
            KeyValues("dataset", [
                ("images found", stats.ImagesFound), ("images kept", stats.Images), ("characters", stats.Characters),
                ("clothing identities", stats.ClothingIdentities), ("with mask", stats.WithMask), ("with face box", stats.WithFaceBox)]),
            Render(["split", "images", "characters"], stats.Splits.Select(s => new object?[] { s.Key, s.Value.Images, s.Value.Characters })),
            Render(["similar", "images"], stats.SimilarHistogram.Select(h => new object?[] { h.Key, h.Value })),
        };
        if (stats.Rejected.Count + stats.Warnings.Count + stats.IgnoredFiles.Count > 0)
            parts.Add(Render(["problem", "kind", "count"],
                stats.Rejected.Select(kv => new object?[] { kv.Key, "rejected", kv.Value })
                    .Concat(stats.Warnings.Select(kv => new object?[] { kv.Key, "warning", kv.Value }))
                    .Concat(stats.IgnoredFiles.Select(kv => new object?[] { kv.Key, "ignored", kv.Value }))));
        parts.Add(Render(["manifest", "examples", "by split", "skipped", "leakage-free"], stats.Manifests.Select(m => new object?[]
        {
            m.Value.File, m.Value.Examples, string.Join(", ", m.Value.ExamplesBySplit.Select(kv => $"{kv.Key} {kv.Value}")),
            string.Join(", ", m.Value.Skipped.Select(kv => $"{kv.Key} {kv.Value}")), m.Value.Leakage.IsLeakageFree ? "yes" : "NO",
        })));
        return Flex(parts);
    }

    /// <summary>One leakage check: every violation count, then the first violations.</summary>
    public static string LeakageHtml(LeakageReport report)
    {
        var counts = KeyValues($"scheme {report.Scheme}: {(report.IsLeakageFree ? "leakage-free" : "LEAKS")}", [
            ("examples", report.Examples), ("references", report.References), ("self references", report.SelfReferences),
            ("near-duplicate references", report.NearDuplicateReferences), ("identity mismatches", report.IdentityMismatches),
            ("split leaks", report.SplitLeaks), ("broken references", report.BrokenReferences),
            ("near-duplicate threshold (pHash bits)", report.NearDuplicateThreshold)]);
        if (report.Violations.Count == 0) return counts;
        return Flex([counts, Render(["first violations"], report.Violations.Take(5).Select(v => new object?[] { v }))]);
    }

    static string Flex(IEnumerable<string> parts) =>
        $"<div style=\"display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start\">{string.Concat(parts)}</div>";
}
