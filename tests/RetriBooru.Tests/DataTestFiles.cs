using RetriBooru.Settings;
using RetriBooru.Data;
using RetriBooru.Data.Ingest;
using RetriBooru.Data.Synth;
using SkiaSharp;

namespace RetriBooru.Tests;

/// <summary>Small files the data tests create: PNGs, masks, tag files, crafted bad images.</summary>
internal static class DataTestFiles
{
    public static byte[] Png(int width, int height, SKColor color)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(bitmap)) canvas.Clear(color);
        return RetriBooru.Imaging.ImageTensor.EncodePng(bitmap);
    }

    /// <summary>A figure-like picture: a coloured body block under a skin-coloured head, on a white background; with its mask and face box.</summary>
    public static (byte[] Image, byte[] Mask, string Face) Figure(int size, SKColor clothes, int offset = 0)
    {
        var info = new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var image = new SKBitmap(info);
        using var mask = new SKBitmap(info);
        var head = new SKRect(size * 0.35f + offset, size * 0.1f, size * 0.65f + offset, size * 0.4f);
        var body = new SKRect(size * 0.3f + offset, size * 0.4f, size * 0.7f + offset, size * 0.95f);
        using (var c = new SKCanvas(image))
        using (var paint = new SKPaint())
        {
            // Backgrounds differ by `offset` so that test images are not near-duplicates of each other (pHash).
            var light = new SKColor(250, 250, 250); var dark = new SKColor(120, 120, 120);
            var (from, to) = (offset % 3) switch { 0 => (new SKPoint(0, 0), new SKPoint(size, 0)), 1 => (new SKPoint(size, 0), new SKPoint(0, 0)), _ => (new SKPoint(0, 0), new SKPoint(size / 4f, 0)) };
            paint.Shader = SKShader.CreateLinearGradient(from, to, [light, dark], offset % 3 == 2 ? SKShaderTileMode.Mirror : SKShaderTileMode.Clamp);
            c.DrawRect(0, 0, size, size, paint);
            paint.Shader = null;
            paint.Color = new SKColor(250, 210, 180); c.DrawOval(head, paint);
            paint.Color = clothes; c.DrawRect(body, paint);
        }
        using (var c = new SKCanvas(mask))
        using (var paint = new SKPaint { Color = SKColors.White })
        {
            c.Clear(SKColors.Black);
            c.DrawOval(head, paint);
            c.DrawRect(body, paint);
        }
        string face = FormattableString.Invariant($"{head.Left / size:0.###} {head.Top / size:0.###} {head.Width / size:0.###} {head.Height / size:0.###}");
        return (RetriBooru.Imaging.ImageTensor.EncodePng(image), RetriBooru.Imaging.ImageTensor.EncodePng(mask), face);
    }

    /// <summary>Writes a figure with sidecars: X.png, X.txt, X.mask.png, X.face.txt.</summary>
    public static void WriteFigure(string dir, string stem, string tags, SKColor clothes, int offset = 0, bool mask = true, bool face = true)
    {
        var (image, maskBytes, faceBox) = Figure(48, clothes, offset);
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, stem + ".png"), image);
        File.WriteAllText(Path.Combine(dir, stem + ".txt"), tags);
        if (mask) File.WriteAllBytes(Path.Combine(dir, stem + ".mask.png"), maskBytes);
        if (face) File.WriteAllText(Path.Combine(dir, stem + ".face.txt"), faceBox);
    }

    /// <summary>A valid PNG whose IHDR claims width x height (CRC fixed), with tiny pixel data: a decompression-bomb header.</summary>
    public static byte[] PngClaiming(int width, int height)
    {
        var bytes = Png(8, 8, SKColors.Red);
        // IHDR data starts at byte 16 (8 signature + 4 length + 4 type).
        void WriteBigEndian(int offset, uint value)
        {
            bytes[offset] = (byte)(value >> 24); bytes[offset + 1] = (byte)(value >> 16); bytes[offset + 2] = (byte)(value >> 8); bytes[offset + 3] = (byte)value;
        }
        WriteBigEndian(16, (uint)width);
        WriteBigEndian(20, (uint)height);
        WriteBigEndian(29, Crc32(bytes.AsSpan(12, 17)));
        return bytes;
    }

    static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }
}

/// <summary>A small synthetic dataset built once and shared by the tests of a class.</summary>
public sealed class SmallSynthDataset : IDisposable
{
    public TempDir Temp { get; } = new();
    public string Dir => Temp.Path;
    public BuildResult Result { get; }
    public IReadOnlyList<SynthAttributes> Attributes { get; }
    public static readonly SynthOptions Options = new() { Characters = 6, ImagesPerCharacter = 14, OutfitsPerCharacter = 2, Size = 48, Seed = 7, VariantRate = 0.15 };

    public SmallSynthDataset()
    {
        Result = SynthDataset.Create(Dir, Options, new BuildOptions { Schemes = [ReferenceScheme.A, ReferenceScheme.B] });
        Attributes = SynthAttributesFile.Read(Dir);
    }

    public void Dispose() => Temp.Dispose();
}
