using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>Resizing, cropping and masking helpers the metrics need (SkiaSharp only).</summary>
public static class ImageOps
{
    /// <summary>Resizes (stretching) to width x height as RGBA8888 with a Mitchell filter.</summary>
    public static SKBitmap Resize(SKBitmap image, int width, int height)
    {
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        if (image.Width == width && image.Height == height) return image.Copy(SKColorType.Rgba8888);
        using var rgba = image.ColorType == SKColorType.Rgba8888 ? null : image.Copy(SKColorType.Rgba8888);
        return (rgba ?? image).Resize(info, new SKSamplingOptions(SKCubicResampler.Mitchell))
            ?? throw new InvalidOperationException($"could not resize a {image.Width}x{image.Height} image to {width}x{height}");
    }

    /// <summary>Copies the region (clamped to the image); throws when the region is empty after clamping.</summary>
    public static SKBitmap Crop(SKBitmap image, SKRectI region)
    {
        var clamped = SKRectI.Intersect(region, new SKRectI(0, 0, image.Width, image.Height));
        if (clamped.Width <= 0 || clamped.Height <= 0)
            throw new ArgumentException($"crop region {region} does not overlap the {image.Width}x{image.Height} image");
        var result = new SKBitmap(new SKImageInfo(clamped.Width, clamped.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(result);
        canvas.DrawBitmap(image, clamped, new SKRect(0, 0, clamped.Width, clamped.Height));
        return result;
    }

    /// <summary>
    /// Replaces the pixels where mask &gt;= 0.5 (or, with <paramref name="outside"/>, where mask &lt; 0.5) with a flat fill
    /// colour. The mask is a single-channel image (its red channel is read) of any size; it is resized to the image first.
    /// </summary>
    public static SKBitmap FillMasked(SKBitmap image, SKBitmap mask, SKColor fill, bool outside = false)
    {
        using var source = image.Copy(SKColorType.Rgba8888);
        using var fittedMask = Resize(mask, image.Width, image.Height);
        var pixels = source.Bytes;
        var maskBytes = fittedMask.Bytes;
        for (int i = 0; i < image.Width * image.Height; i++)
        {
            if ((maskBytes[i * 4] >= 128) == outside) continue;
            pixels[i * 4] = fill.Red;
            pixels[i * 4 + 1] = fill.Green;
            pixels[i * 4 + 2] = fill.Blue;
            pixels[i * 4 + 3] = 255;
        }
        var result = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, result.GetPixels(), pixels.Length);
        return result;
    }
}
