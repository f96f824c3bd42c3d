using SkiaSharp;

namespace RetriBooru.Imaging;

/// <summary>Why an image file could not be used; <see cref="Code"/> is stable (counted in stats), <see cref="Message"/> is for people.</summary>
public sealed record ImageProblem(string Code, string Message);

/// <summary>
/// Decodes untrusted image files defensively: the header is read first and a picture that claims more pixels than
/// the limit is refused before any pixel memory is allocated (decompression bombs); empty, non-image, corrupt and
/// truncated files get a specific reason instead of an exception.
/// </summary>
public static class ImageProbe
{
    /// <summary>Default pixel limit: 50 megapixels (Danbooru's largest ordinary posts are well under it).</summary>
    public const long DefaultMaxPixels = 50_000_000;

    /// <summary>Decodes <paramref name="path"/> to an RGBA bitmap (transparency flattened on white), or returns the problem.</summary>
    public static (SKBitmap? Bitmap, ImageProblem? Problem) TryDecode(string path, long maxPixels = DefaultMaxPixels) => Read(path, maxPixels, decode: true);

    /// <summary>The checks of <see cref="TryDecode"/> up to the header (file, format, size, pixel limit), without decoding: null when they pass.</summary>
    public static ImageProblem? CheckHeader(string path, long maxPixels = DefaultMaxPixels) => Read(path, maxPixels, decode: false).Problem;

    static (SKBitmap? Bitmap, ImageProblem? Problem) Read(string path, long maxPixels, bool decode)
    {
        if (!File.Exists(path)) return (null, new ImageProblem("missing_file", Directory.Exists(path) ? "a folder, not an image file" : "file not found"));
        long length;
        try { length = new FileInfo(path).Length; }
        catch (IOException e) { return (null, new ImageProblem("unreadable", $"cannot read: {e.Message}")); }
        if (length == 0) return (null, new ImageProblem("empty_file", "empty file (0 bytes)"));
        try
        {
            using var stream = File.OpenRead(path);
            using var codec = SKCodec.Create(stream, out var createResult);
            if (codec is null)
                return (null, new ImageProblem("not_an_image", $"not a decodable image ({Describe(createResult)})"));
            var info = codec.Info;
            if (info.Width <= 0 || info.Height <= 0)
                return (null, new ImageProblem("corrupt_image", $"header claims an empty size {info.Width}x{info.Height}"));
            long pixels = (long)info.Width * info.Height;
            if (pixels > maxPixels)
                return (null, new ImageProblem("too_many_pixels",
                    $"header claims {info.Width}x{info.Height} = {pixels:N0} pixels, over the limit of {maxPixels:N0} (possible decompression bomb)"));
            if (!decode) return (null, null);
            var decodeInfo = new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
            var raw = new SKBitmap(decodeInfo);
            var result = codec.GetPixels(decodeInfo, raw.GetPixels());
            if (result != SKCodecResult.Success)
            {
                raw.Dispose();
                return result == SKCodecResult.IncompleteInput
                    ? (null, new ImageProblem("truncated_image", "truncated image: the file ends before the pixel data does"))
                    : (null, new ImageProblem("corrupt_image", $"corrupt image data ({Describe(result)})"));
            }
            return (FlattenOnWhite(raw), null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
        {
            return (null, new ImageProblem("unreadable", $"cannot decode: {e.Message}"));
        }
    }

    /// <summary>Composites transparent pixels over white (Danbooru PNGs often have alpha) and returns an opaque RGBA bitmap.</summary>
    static SKBitmap FlattenOnWhite(SKBitmap raw)
    {
        using (raw)
        {
            var opaque = new SKBitmap(new SKImageInfo(raw.Width, raw.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
            using var canvas = new SKCanvas(opaque);
            canvas.Clear(SKColors.White);
            using var image = SKImage.FromBitmap(raw);
            canvas.DrawImage(image, 0, 0);
            return opaque;
        }
    }

    static string Describe(SKCodecResult result) => result switch
    {
        SKCodecResult.IncompleteInput => "incomplete input",
        SKCodecResult.ErrorInInput => "error in input",
        SKCodecResult.InvalidInput => "invalid input",
        SKCodecResult.Unimplemented => "unsupported format",
        _ => result.ToString(),
    };
}
