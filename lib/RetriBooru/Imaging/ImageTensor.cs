using RetriBooru.Runtime;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace RetriBooru.Imaging;

/// <summary>Conversions between image files / SkiaSharp bitmaps and float tensors in [-1, 1], layout [3, H, W].</summary>
public static class ImageTensor
{
    /// <summary>
    /// Decodes an image file (RGBA, transparency on white) and resizes it to size x size (high-quality filter). Every decode
    /// of a file goes through <see cref="ImageProbe.TryDecode"/>, so the header is checked against the pixel limit before any
    /// pixel memory is allocated. Throws InvalidDataException naming the file and the problem.
    /// </summary>
    public static SKBitmap LoadBitmap(string path, int? size = null, long maxPixels = ImageProbe.DefaultMaxPixels)
    {
        var (bitmap, problem) = ImageProbe.TryDecode(path, maxPixels);
        if (bitmap is null) throw new InvalidDataException($"{path}: {problem!.Message}");
        if (size is not int s || (bitmap.Width == s && bitmap.Height == s)) return bitmap;
        using var decoded = bitmap;
        var info = new SKImageInfo(s, s, SKColorType.Rgba8888, SKAlphaType.Premul);
        var resized = decoded.Resize(info, new SKSamplingOptions(SKCubicResampler.Mitchell));
        return resized ?? throw new InvalidDataException($"{path}: could not be resized to {s}x{s}");
    }

    /// <summary>Bitmap -> float tensor [3, H, W] in [-1, 1].</summary>
    public static Tensor FromBitmap(SKBitmap bitmap)
    {
        TorchRuntime.EnsureLoaded();
        using var rgba = bitmap.ColorType == SKColorType.Rgba8888 ? null : bitmap.Copy(SKColorType.Rgba8888);
        var source = rgba ?? bitmap;
        var bytes = source.Bytes;
        int h = source.Height, w = source.Width;
        var data = new float[3 * h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = (y * w + x) * 4;
                for (int c = 0; c < 3; c++) data[c * h * w + y * w + x] = bytes[i + c] / 127.5f - 1f;
            }
        return tensor(data, [3, h, w]);
    }

    /// <summary>Single-channel mask file -> float tensor [1, H, W] in {0..1}.</summary>
    public static Tensor LoadMask(string path, int size)
    {
        using var bitmap = LoadBitmap(path, size);
        var bytes = bitmap.Bytes;
        var data = new float[size * size];
        for (int i = 0; i < data.Length; i++) data[i] = bytes[i * 4] / 255f;
        return tensor(data, [1, size, size]);
    }

    public static Tensor Load(string path, int size)
    {
        using var bitmap = LoadBitmap(path, size);
        return FromBitmap(bitmap);
    }

    /// <summary>Tensor [3, H, W] in [-1, 1] -> bitmap (clamped).</summary>
    public static SKBitmap ToBitmap(Tensor image)
    {
        if (image.dim() != 3 || image.shape[0] != 3) throw new ArgumentException($"expected a [3, H, W] tensor, got [{string.Join(", ", image.shape)}]");
        using var scope = NewDisposeScope();
        int h = (int)image.shape[1], w = (int)image.shape[2];
        var pixels = image.detach().to(CPU).to(float32).Clamped(-1, 1).Plus(1).Times(127.5).round().to(uint8).permute(1, 2, 0).contiguous();
        var rgb = pixels.data<byte>().ToArray();
        var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = new byte[w * h * 4];
        for (int i = 0; i < w * h; i++)
        {
            rgba[i * 4] = rgb[i * 3];
            rgba[i * 4 + 1] = rgb[i * 3 + 1];
            rgba[i * 4 + 2] = rgb[i * 3 + 2];
            rgba[i * 4 + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        return bitmap;
    }

    /// <summary>Encodes a bitmap as PNG bytes (deterministic for the same pixels).</summary>
    public static byte[] EncodePng(SKBitmap bitmap)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>Writes a tensor [3, H, W] in [-1, 1] as a PNG, atomically.</summary>
    public static void SavePng(Tensor image, string path)
    {
        using var bitmap = ToBitmap(image);
        AtomicFile.WriteAllBytes(path, EncodePng(bitmap));
    }
}
