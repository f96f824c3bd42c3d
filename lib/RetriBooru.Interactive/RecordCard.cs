using RetriBooru.Settings;
using System.Net;
using System.Text;
using RetriBooru.Data;
using RetriBooru.Imaging;
using SkiaSharp;

namespace RetriBooru.Interactive;

/// <summary>
/// A dataset record as a card: the image with its face box drawn, the figure mask, character, clothing identity and
/// tags, how many similar images it has, and for a training example its reference crops with their concept words.
/// A missing or unreadable file shows as a note naming the file, so one bad file does not hide the others.
/// </summary>
public sealed class RecordCard
{
    public string DatasetDir { get; }
    public ImageRecord Record { get; }
    public TrainingExample? Example { get; }
    /// <summary>Width the images are drawn at (small images are scaled up with crisp pixels).</summary>
    public int DisplaySize { get; init; } = 128;

    public RecordCard(string datasetDir, ImageRecord record, TrainingExample? example = null)
    {
        if (example is not null && example.Target != record.Id)
            throw new ArgumentException($"example target {example.Target} is not record {record.Id}");
        DatasetDir = datasetDir;
        Record = record;
        Example = example;
    }

    /// <summary>The card of a training example; <paramref name="records"/> supplies the target's annotations (face box, tags).</summary>
    public static RecordCard For(string datasetDir, TrainingExample example, IReadOnlyList<ImageRecord> records) =>
        new(datasetDir, records.FirstOrDefault(r => r.Id == example.Target)
                         ?? throw new KeyNotFoundException($"{Path.Combine(datasetDir, DatasetLayout.RecordsFile)}: no record {example.Target} (target of a manifest line)"), example);

    /// <summary>Cards side by side, wrapping.</summary>
    public static HtmlView Gallery(IEnumerable<RecordCard> cards) =>
        new($"<div style=\"display:flex;flex-wrap:wrap;gap:8px\">{string.Concat(cards.Select(c => c.ToHtml()))}</div>");


    public string ToHtml()
    {
        var r = Record;
        var html = new StringBuilder();
        html.Append("<div style=\"border:1px solid #ccc;border-radius:6px;padding:6px;font-family:sans-serif;font-size:12px;max-width:")
            .Append(DisplaySize * 2 + 40).Append("px\">");
        html.Append("<div style=\"display:flex;gap:6px\">");
        html.Append(Figure(ImageWithFaceBox(), "image" + (r.FaceBox is null ? " (no face box)" : " + face box")));
        html.Append(Figure(r.Mask is null ? Note("no mask") : Picture(r.Mask, null), "mask"));
        html.Append("</div><table style=\"font-size:12px;margin-top:4px\">");
        Row(html, "id", r.Id + (r.Split is null ? "" : $" ({r.Split})"));
        Row(html, "character", r.Character);
        Row(html, "clothing", $"{r.ClothingId ?? "-"}: {string.Join(", ", r.Clothes)}" + (r.ClothingColor is null ? "" : $" ({r.ClothingColor})"));
        Row(html, "similar", $"{r.Similar.Count} image{(r.Similar.Count == 1 ? "" : "s")}");
        Row(html, "tags", Example?.Prompt ?? r.Prompts);
        html.Append("</table>");
        if (Example is { } example)
        {
            html.Append("<div style=\"margin-top:4px\">references:</div><div style=\"display:flex;flex-wrap:wrap;gap:4px\">");
            foreach (var reference in example.References)
                html.Append(Figure(Picture(reference.Image, null, DisplaySize / 2), $"{reference.Concept.Name()} &larr; {WebUtility.HtmlEncode(reference.SourceId)}"));
            html.Append("</div>");
        }
        return html.Append("</div>").ToString();
    }

    string ImageWithFaceBox() => Picture(Record.Image, Record.FaceBox);

    /// <summary>An image file as inline PNG, scaled to the display size, with an optional normalised box drawn on it.</summary>
    string Picture(string relativePath, float[]? box, int? size = null)
    {
        int width = size ?? DisplaySize;
        string path;
        try { path = ManifestReader.Resolve(DatasetDir, relativePath); }
        catch (InvalidDataException e) { return Note(e.Message); }
        var (decoded, problem) = ImageProbe.TryDecode(path);
        if (decoded is null) return Note($"{relativePath}: {problem!.Message}");
        using var bitmap = decoded;
        int height = Math.Max(1, (int)Math.Round((double)width * bitmap.Height / bitmap.Width));
        using var scaled = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(scaled))
        {
            using var image = SKImage.FromBitmap(bitmap);
            canvas.DrawImage(image, SKRect.Create(width, height), new SKSamplingOptions(SKFilterMode.Nearest));
            if (box is { Length: 4 }) DrawBox(canvas, box, width, height);
        }
        return $"<img src=\"data:image/png;base64,{Convert.ToBase64String(ImageTensor.EncodePng(scaled))}\" width=\"{width}\" style=\"image-rendering:pixelated\" />";
    }

    /// <summary>Draws a normalised (x, y, w, h) box as a 2 px outline.</summary>
    public static void DrawBox(SKCanvas canvas, float[] box, int width, int height)
    {
        using var pen = new SKPaint { Color = new SKColor(255, 0, 200), Style = SKPaintStyle.Stroke, StrokeWidth = 2, IsAntialias = false };
        canvas.DrawRect(SKRect.Create(box[0] * width, box[1] * height, box[2] * width, box[3] * height), pen);
    }

    static string Figure(string content, string caption) =>
        $"<figure style=\"margin:0;text-align:center\">{content}<figcaption style=\"color:#555\">{caption}</figcaption></figure>";

    static string Note(string text) =>
        $"<div style=\"width:96px;height:96px;background:#f4f4f4;color:#a00;display:flex;align-items:center;justify-content:center;text-align:center\">{WebUtility.HtmlEncode(text)}</div>";

    static void Row(StringBuilder html, string name, string value) =>
        html.Append("<tr><td style=\"color:#555;padding-right:6px;vertical-align:top\">").Append(name).Append("</td><td>")
            .Append(WebUtility.HtmlEncode(value)).Append("</td></tr>");
}
