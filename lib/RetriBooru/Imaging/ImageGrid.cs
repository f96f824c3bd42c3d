using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace RetriBooru.Imaging;

/// <summary>
/// Rows of images composed into one picture (e.g. references | generations), each cell scaled to the
/// same size with nearest-neighbour sampling so 32 px samples stay crisp. Labels are kept as data
/// (notebooks and reports render them as HTML) because a headless machine may have no fonts.
/// </summary>
public sealed class ImageGrid : IDisposable
{
    readonly List<(string Label, List<SKBitmap> Images)> _rows = [];

    public int CellSize { get; }
    public int Padding { get; }
    public IReadOnlyList<string> RowLabels => _rows.Select(r => r.Label).ToList();
    public int RowCount => _rows.Count;
    public int ColumnCount => _rows.Count == 0 ? 0 : _rows.Max(r => r.Images.Count);

    public ImageGrid(int cellSize = 96, int padding = 4)
    {
        if (cellSize < 1) throw new ArgumentOutOfRangeException(nameof(cellSize));
        CellSize = cellSize;
        Padding = padding;
    }

    /// <summary>Adds a row; the grid takes copies, so callers keep ownership of their bitmaps.</summary>
    public ImageGrid AddRow(string label, IEnumerable<SKBitmap> images)
    {
        _rows.Add((label, images.Select(b => b.Copy()).ToList()));
        return this;
    }

    /// <summary>Adds a row of image tensors ([3, H, W] each, or one [N, 3, H, W] batch), values in [-1, 1].</summary>
    public ImageGrid AddRow(string label, Tensor images)
    {
        using var scope = NewDisposeScope();
        var batch = images.dim() == 3 ? images.unsqueeze(0) : images;
        var bitmaps = Enumerable.Range(0, (int)batch.shape[0]).Select(i => ImageTensor.ToBitmap(batch[i])).ToList();
        _rows.Add((label, bitmaps));
        return this;
    }

    /// <param name="labels">Draw each row's label in a column on the left (for PNGs viewed outside a report).</param>
    public SKBitmap Compose(bool labels = false)
    {
        if (_rows.Count == 0) throw new InvalidOperationException("the grid has no rows");
        using var font = new SKFont(SKTypeface.Default, Math.Clamp(CellSize / 5f, 10, 16));
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        int labelWidth = labels ? (int)Math.Ceiling(_rows.Max(r => font.MeasureText(r.Label))) + 2 * Padding : 0;
        int width = labelWidth + Padding + ColumnCount * (CellSize + Padding);
        int height = Padding + _rows.Count * (CellSize + Padding);
        var result = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(result);
        canvas.Clear(SKColors.White);
        for (int r = 0; r < _rows.Count; r++)
        {
            float top = Padding + r * (CellSize + Padding);
            if (labels) canvas.DrawText(_rows[r].Label, Padding, top + CellSize / 2f + font.Size / 3f, SKTextAlign.Left, font, ink);
            for (int c = 0; c < _rows[r].Images.Count; c++)
            {
                var rect = SKRect.Create(labelWidth + Padding + c * (CellSize + Padding), top, CellSize, CellSize);
                using var image = SKImage.FromBitmap(_rows[r].Images[c]);
                canvas.DrawImage(image, rect, new SKSamplingOptions(SKFilterMode.Nearest));
            }
        }
        return result;
    }

    public byte[] ToPng(bool labels = false)
    {
        using var composed = Compose(labels);
        return ImageTensor.EncodePng(composed);
    }

    public void Dispose()
    {
        foreach (var (_, images) in _rows) foreach (var b in images) b.Dispose();
        _rows.Clear();
    }
}
