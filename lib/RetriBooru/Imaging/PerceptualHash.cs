using System.Numerics;
using SkiaSharp;

namespace RetriBooru.Imaging;

/// <summary>
/// 64-bit difference hash (dHash): the picture is area-averaged to a 9x8 grayscale grid and each bit says whether a
/// cell is brighter than its right neighbour. Reposts, re-encodes, small shifts, crops and brightness changes keep
/// most bits; unrelated pictures differ in about half. Near-duplicates are pairs within a Hamming distance threshold.
/// </summary>
public static class PerceptualHash
{
    /// <summary>Default near-duplicate threshold in bits (of 64); see the README for how it was chosen.</summary>
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

    public static int Distance(ulong a, ulong b) => BitOperations.PopCount(a ^ b);

    public static string ToHex(ulong hash) => hash.ToString("x16");

    public static ulong FromHex(string hex) => Convert.ToUInt64(hex, 16);
}
