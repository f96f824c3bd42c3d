using RetriBooru.Data;
using RetriBooru.Imaging;
using SkiaSharp;

namespace RetriBooru.Interactive;

/// <summary>Picture views of a dataset folder.</summary>
public static class DatasetViews
{
    /// <summary>
    /// One row per clothing identity of <paramref name="character"/> (label: clothing id and tags), up to
    /// <paramref name="perRow"/> of its images each. Unreadable images are left out of the row.
    /// </summary>
    public static ImageGrid OutfitGrid(string datasetDir, IEnumerable<ImageRecord> records, string character, int perRow = 6, int cellSize = 64)
    {
        var outfits = records.Where(r => r.Character == character)
            .GroupBy(r => r.ClothingId ?? "?").OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
        if (outfits.Count == 0) throw new ArgumentException($"{datasetDir}: no images of character '{character}'");
        var grid = new ImageGrid(cellSize);
        foreach (var outfit in outfits)
        {
            var bitmaps = outfit.Take(perRow).Select(r => ImageProbe.TryDecode(ManifestReader.Resolve(datasetDir, r.Image)).Bitmap).OfType<SKBitmap>().ToList();
            try { grid.AddRow($"{outfit.Key}: {string.Join(", ", outfit.First().Clothes)}", bitmaps); }
            finally { foreach (var b in bitmaps) b.Dispose(); }
        }
        return grid;
    }
}
