using SkiaSharp;

namespace RetriBooru.Imaging;

/// <summary>Reference crops: a face-box crop, or the clothing region with everything else painted white; square, letterboxed.</summary>
public static class Crops
{
    /// <summary>Pixel rectangle of a normalised (x, y, w, h) box, grown by <paramref name="grow"/> around its centre, clipped to the image.</summary>
    public static SKRectI BoxToPixels(float[] box, int width, int height, float grow = 1f)
    {
        float cx = (box[0] + box[2] / 2) * width, cy = (box[1] + box[3] / 2) * height;
        float hw = box[2] * width * grow / 2, hh = box[3] * height * grow / 2;
        int x0 = Math.Clamp((int)MathF.Floor(cx - hw), 0, width - 1), y0 = Math.Clamp((int)MathF.Floor(cy - hh), 0, height - 1);
        int x1 = Math.Clamp((int)MathF.Ceiling(cx + hw), x0 + 1, width), y1 = Math.Clamp((int)MathF.Ceiling(cy + hh), y0 + 1, height);
        return new SKRectI(x0, y0, x1, y1);
    }

    /// <summary>Bounding box of the true pixels of a region, or null when empty.</summary>
    public static SKRectI? Bounds(bool[] region, int width)
    {
        int height = region.Length / width, x0 = width, y0 = height, x1 = -1, y1 = -1;
        for (int i = 0; i < region.Length; i++)
        {
            if (!region[i]) continue;
            int x = i % width, y = i / width;
            if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
        }
        return x1 < 0 ? null : new SKRectI(x0, y0, x1 + 1, y1 + 1);
    }

    /// <summary>
    /// The largest 8-connected part of a region. Clothes crops use it so that stray strands (hair beside the face box,
    /// a raised hand) do not stretch the crop around mostly empty space.
    /// </summary>
    public static bool[] LargestComponent(bool[] region, int width)
    {
        int height = region.Length / width;
        var label = new int[region.Length];
        int best = 0, bestSize = 0, next = 0;
        var stack = new Stack<int>();
        for (int start = 0; start < region.Length; start++)
        {
            if (!region[start] || label[start] != 0) continue;
            int id = ++next, size = 0;
            label[start] = id;
            stack.Push(start);
            while (stack.Count > 0)
            {
                int i = stack.Pop();
                size++;
                int x = i % width, y = i / width;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int nx = x + dx, ny = y + dy;
                        if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
                        int j = ny * width + nx;
                        if (region[j] && label[j] == 0) { label[j] = id; stack.Push(j); }
                    }
            }
            if (size > bestSize) { bestSize = size; best = id; }
        }
        var result = new bool[region.Length];
        for (int i = 0; i < region.Length; i++) result[i] = best != 0 && label[i] == best;
        return result;
    }

    /// <summary>
    /// Cuts <paramref name="rect"/> out of <paramref name="source"/> into a size x size square (aspect kept, white
    /// letterbox); pixels outside <paramref name="keep"/> (when given) are painted white first. Optionally mirrored.
    /// </summary>
    public static SKBitmap Cut(SKBitmap source, SKRectI rect, int size, bool[]? keep = null, bool mirror = false)
    {
        using var piece = new SKBitmap(new SKImageInfo(rect.Width, rect.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var src = source.Bytes;
        var dst = new byte[rect.Width * rect.Height * 4];
        for (int y = 0; y < rect.Height; y++)
            for (int x = 0; x < rect.Width; x++)
            {
                int sx = rect.Left + x, sy = rect.Top + y, so = sy * source.RowBytes + sx * 4, d = (y * rect.Width + x) * 4;
                bool kept = keep is null || keep[sy * source.Width + sx];
                dst[d] = kept ? src[so] : (byte)255;
                dst[d + 1] = kept ? src[so + 1] : (byte)255;
                dst[d + 2] = kept ? src[so + 2] : (byte)255;
                dst[d + 3] = 255;
            }
        System.Runtime.InteropServices.Marshal.Copy(dst, 0, piece.GetPixels(), dst.Length);
        var output = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(output);
        canvas.Clear(SKColors.White);
        float scale = (float)size / Math.Max(rect.Width, rect.Height);
        float w = rect.Width * scale, h = rect.Height * scale;
        var target = new SKRect((size - w) / 2, (size - h) / 2, (size + w) / 2, (size + h) / 2);
        if (mirror)
        {
            canvas.Translate(size, 0);
            canvas.Scale(-1, 1);
        }
        using var image = SKImage.FromBitmap(piece);
        canvas.DrawImage(image, target, new SKSamplingOptions(SKCubicResampler.Mitchell));
        return output;
    }
}
