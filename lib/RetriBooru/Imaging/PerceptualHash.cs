using System.Numerics;
using SkiaSharp;

namespace RetriBooru.Imaging;

/// <summary>
/// 64-bit perceptual hashes of a picture. <see cref="PHash"/> (the one the dataset uses): the picture is area-averaged
/// to a 32x32 grayscale grid, transformed by a 2-D DCT, and each bit says whether one of the 8x8 lowest-frequency
/// coefficients (DC excluded) is above their median. It survives reposts, re-encodes, brightness changes, small shifts
/// and zooms; unrelated pictures differ in about half the bits. <see cref="DHash"/> (difference hash) is cheaper but
/// flips bits in flat regions under brightness changes. Near-duplicates are pairs within a Hamming distance threshold.
/// </summary>
public static class PerceptualHash
{
    /// <summary>Default near-duplicate threshold in bits (of 64) for <see cref="PHash"/>; see docs/dataset.md (Near-duplicates) for how it was chosen.</summary>
    public const int DefaultThreshold = 14;

    public static ulong DHash(SKBitmap bitmap)
    {
        const int gw = 9, gh = 8;
        var sums = new double[gw * gh];
        var counts = new int[gw * gh];
        var bytes = bitmap.Bytes;
        int w = bitmap.Width, h = bitmap.Height, bpp = bitmap.BytesPerPixel, rowBytes = bitmap.RowBytes;
        if (bitmap.ColorType != SKColorType.Rgba8888 && bitmap.ColorType != SKColorType.Bgra8888)
            throw new ArgumentException($"dHash expects an 8-bit RGBA bitmap, got {bitmap.ColorType}");
        for (int y = 0; y < h; y++)
        {
            int gy = y * gh / h;
            for (int x = 0; x < w; x++)
            {
                int i = y * rowBytes + x * bpp;
                // Rec. 601 luma; R and B weights swap for BGRA, which does not matter for a self-consistent hash but keep it exact.
                double luma = bitmap.ColorType == SKColorType.Rgba8888
                    ? 0.299 * bytes[i] + 0.587 * bytes[i + 1] + 0.114 * bytes[i + 2]
                    : 0.299 * bytes[i + 2] + 0.587 * bytes[i + 1] + 0.114 * bytes[i];
                int cell = gy * gw + x * gw / w;
                sums[cell] += luma;
                counts[cell]++;
            }
        }
        ulong hash = 0;
        int bit = 0;
        for (int gy = 0; gy < gh; gy++)
            for (int gx = 0; gx < gw - 1; gx++)
            {
                int a = gy * gw + gx, b = a + 1;
                double left = counts[a] == 0 ? 0 : sums[a] / counts[a], right = counts[b] == 0 ? 0 : sums[b] / counts[b];
                if (left > right) hash |= 1UL << bit;
                bit++;
            }
        return hash;
    }

    static readonly double[,] Dct = BuildDct(32);

    static double[,] BuildDct(int n)
    {
        var m = new double[n, n];
        for (int k = 0; k < n; k++)
            for (int i = 0; i < n; i++)
                m[k, i] = Math.Cos(Math.PI * (i + 0.5) * k / n) * (k == 0 ? Math.Sqrt(1.0 / n) : Math.Sqrt(2.0 / n));
        return m;
    }

    /// <summary>DCT-based perceptual hash (see the class summary).</summary>
    public static ulong PHash(SKBitmap bitmap)
    {
        const int n = 32, k = 8;
        var gray = AreaAverage(bitmap, n, n);
        // Only the k x k low-frequency block is needed: rows = Dct[0..k) * gray, then * Dct^T.
        var temp = new double[k, n];
        for (int u = 0; u < k; u++)
            for (int x = 0; x < n; x++)
            {
                double sum = 0;
                for (int y = 0; y < n; y++) sum += Dct[u, y] * gray[y * n + x];
                temp[u, x] = sum;
            }
        var coefficients = new double[k * k];
        for (int u = 0; u < k; u++)
            for (int v = 0; v < k; v++)
            {
                double sum = 0;
                for (int x = 0; x < n; x++) sum += temp[u, x] * Dct[v, x];
                coefficients[u * k + v] = sum;
            }
        var ac = coefficients.Skip(1).OrderBy(c => c).ToArray();
        double median = (ac[ac.Length / 2 - 1] + ac[ac.Length / 2]) / 2;
        ulong hash = 0;
        for (int i = 1; i < k * k; i++) if (coefficients[i] > median) hash |= 1UL << i;
        return hash;
    }

    /// <summary>Rec. 601 luma of an 8-bit RGBA/BGRA bitmap, area-averaged to gw x gh cells.</summary>
    static double[] AreaAverage(SKBitmap bitmap, int gw, int gh)
    {
        if (bitmap.ColorType != SKColorType.Rgba8888 && bitmap.ColorType != SKColorType.Bgra8888)
            throw new ArgumentException($"perceptual hashes expect an 8-bit RGBA bitmap, got {bitmap.ColorType}");
        var sums = new double[gw * gh];
        var counts = new int[gw * gh];
        var bytes = bitmap.Bytes;
        int w = bitmap.Width, h = bitmap.Height, rowBytes = bitmap.RowBytes;
        bool rgba = bitmap.ColorType == SKColorType.Rgba8888;
        for (int y = 0; y < h; y++)
        {
            int gy = y * gh / h;
            for (int x = 0; x < w; x++)
            {
                int i = y * rowBytes + x * 4;
                double luma = rgba ? 0.299 * bytes[i] + 0.587 * bytes[i + 1] + 0.114 * bytes[i + 2] : 0.299 * bytes[i + 2] + 0.587 * bytes[i + 1] + 0.114 * bytes[i];
                int cell = gy * gw + x * gw / w;
                sums[cell] += luma;
                counts[cell]++;
            }
        }
        for (int c = 0; c < sums.Length; c++) if (counts[c] > 0) sums[c] /= counts[c];
        return sums;
    }

    public static int Distance(ulong a, ulong b) => BitOperations.PopCount(a ^ b);

    public static string ToHex(ulong hash) => hash.ToString("x16");

    public static ulong FromHex(string hex) => Convert.ToUInt64(hex, 16);
}
