using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>
/// Maps an image to a unit-length feature vector; cosine similarity is then a plain dot product.
/// Implementations own native resources (ONNX sessions, torch modules), hence IDisposable.
/// </summary>
public interface IImageEmbedder : IDisposable
{
    /// <summary>Short name used in result tables and benchmarks (e.g. "resnet18-imagenet").</summary>
    string Name { get; }

    /// <summary>Length of every embedding.</summary>
    int Dimension { get; }

    /// <summary>Embeds one image (any size; the embedder applies its own preprocessing). Returns an L2-normalised vector.</summary>
    float[] Embed(SKBitmap image);

    /// <summary>Embeds many images; embedders that gain from batching (the CLIP tower) override it.</summary>
    float[][] EmbedBatch(IReadOnlyList<SKBitmap> images) => images.Select(Embed).ToArray();
}

/// <summary>Maps text to a unit-length feature vector.</summary>
public interface ITextEmbedder : IDisposable
{
    string Name { get; }
    int Dimension { get; }

    /// <summary>Embeds each text; returns one L2-normalised vector per input, in order.</summary>
    float[][] Embed(IReadOnlyList<string> texts);
}

/// <summary>Batch helpers shared by every embedder.</summary>
public static class EmbedderExtensions
{
    public static float[][] EmbedAll(this IImageEmbedder embedder, IReadOnlyList<SKBitmap> images) => embedder.EmbedBatch(images);

    public static float[] Embed(this ITextEmbedder embedder, string text) => embedder.Embed([text])[0];
}
