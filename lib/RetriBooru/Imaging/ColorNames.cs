using SkiaSharp;

namespace RetriBooru.Imaging;

/// <summary>
/// Names a colour with one of twelve coarse buckets (HSV thresholds), so that shading, anti-aliasing and JPEG noise
/// do not change the name: black, white, grey, brown, red, orange, yellow, green, cyan, blue, purple, pink.
/// </summary>
public static class ColorNames
{
    public static readonly IReadOnlyList<string> Buckets = ["black", "white", "grey", "brown", "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink"];

    public static int Bucket(byte r, byte g, byte b)
    {
        float rf = r / 255f, gf = g / 255f, bf = b / 255f;
        float max = Math.Max(rf, Math.Max(gf, bf)), min = Math.Min(rf, Math.Min(gf, bf));
        float v = max, s = max <= 0 ? 0 : (max - min) / max;
        if (v < 0.2f) return 0;
        if (s < 0.2f) return v > 0.72f ? 1 : v < 0.35f ? 0 : 2;
        float hue = Hue(rf, gf, bf, max, min);
        if (hue >= 15 && hue < 45 && v < 0.6f) return 3;
        if (hue < 15 || hue >= 345) return s < 0.45f && v > 0.8f ? 11 : 4;
        if (hue < 45) return 5;
        if (hue < 70) return 6;
        if (hue < 165) return 7;
        if (hue < 195) return 8;
        if (hue < 255) return 9;
        if (hue < 290) return 10;
        return 11;
    }

    static float Hue(float r, float g, float b, float max, float min)
    {
        float d = max - min;
        if (d <= 0) return 0;
        float h = max == r ? (g - b) / d % 6 : max == g ? (b - r) / d + 2 : (r - g) / d + 4;
        h *= 60;
        return h < 0 ? h + 360 : h;
    }

    /// <summary>
    /// The most frequent bucket among the <em>flat</em> pixels of <paramref name="region"/> (pixels whose eight
    /// neighbours are in the region and have the same colour name), with its share of those pixels, and the region's
    /// size. Counting only flat pixels keeps outlines up to two pixels wide, anti-aliased edges and folds from outvoting the garment in
    /// small pictures; when no pixel is flat, every region pixel counts. Null name when the region is empty.
    /// </summary>
    public static (string? Name, double Share, int Pixels) Dominant(SKBitmap rgba, bool[] region)
    {
        if (rgba.ColorType != SKColorType.Rgba8888) throw new ArgumentException($"expected an RGBA bitmap, got {rgba.ColorType}");
        var bytes = rgba.Bytes;
        int w = rgba.Width, h = rgba.Height, total = 0;
        var buckets = new sbyte[region.Length];
        for (int i = 0; i < region.Length; i++)
        {
            if (!region[i]) { buckets[i] = -1; continue; }
            int o = (i / w) * rgba.RowBytes + (i % w) * 4;
            buckets[i] = (sbyte)Bucket(bytes[o], bytes[o + 1], bytes[o + 2]);
            total++;
        }
        if (total == 0) return (null, 0, 0);
        var flat = new int[Buckets.Count];
        var all = new int[Buckets.Count];
        int flatTotal = 0;
        for (int i = 0; i < region.Length; i++)
        {
            int b = buckets[i];
            if (b < 0) continue;
            all[b]++;
            int x = i % w, y = i / w;
            if (x == 0 || x == w - 1 || y == 0 || y == h - 1) continue;
            bool isFlat = true;
            for (int dy = -1; dy <= 1 && isFlat; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    if (buckets[i + dy * w + dx] != b) { isFlat = false; break; }
            if (isFlat)
            {
                flat[b]++;
                flatTotal++;
            }
        }
        var counts = flatTotal > 0 ? flat : all;
        int denominator = flatTotal > 0 ? flatTotal : total;
        int best = 0;
        for (int k = 1; k < counts.Length; k++) if (counts[k] > counts[best]) best = k;
        return (Buckets[best], (double)counts[best] / denominator, total);
    }
}
