using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>The identity-bearing views of one image: its face crop and its clothing crop (either may be missing).</summary>
public sealed record IdentityViews(SKBitmap? Face, SKBitmap? Clothing)
{
    /// <summary>
    /// Cuts the views out of an image given the face box and the clothing (body) box. When the figure mask is known
    /// (white = character), pixels outside it are first filled with flat grey, so the crops compare the character and
    /// not the background that happens to fall inside the box.
    /// </summary>
    public static IdentityViews FromBoxes(SKBitmap image, SKRectI? faceBox, SKRectI? clothingBox, SKBitmap? figureMask = null)
    {
        using var source = figureMask is null ? image.Copy() : ImageOps.FillMasked(image, figureMask, LeakageScorer.NeutralFill, outside: true);
        return new(faceBox is SKRectI f ? ImageOps.Crop(source, f) : null, clothingBox is SKRectI c ? ImageOps.Crop(source, c) : null);
    }
}

/// <summary>Identity similarity of one generation: face and clothing parts and their mean (CLIP-I style, per region).</summary>
public sealed record IdentityScore(double? Face, double? Clothing)
{
    /// <summary>Mean of the available parts.</summary>
    public double Combined => (Face, Clothing) switch
    {
        (double f, double c) => (f + c) / 2,
        (double f, null) => f,
        (null, double c) => c,
        _ => throw new InvalidOperationException("identity score has neither a face nor a clothing part"),
    };
}

/// <summary>
/// CLIP-I style identity similarity, per region: face(G) = mean over face references r of cos(E(face crop of G), E(r)),
/// and likewise for clothing crops vs clothing references; E is any <see cref="IImageEmbedder"/> (ResNet18 offline,
/// the CLIP vision tower when weights are given). Regions, not whole images, are compared so that a copied
/// background cannot pass for a kept identity.
/// </summary>
public static class IdentitySimilarity
{
    public static double MeanCosine(float[] embedding, IReadOnlyList<float[]> references)
    {
        if (references.Count == 0) throw new ArgumentException("identity similarity needs at least one reference");
        return references.Average(r => VectorMath.Dot(embedding, r));
    }

    public static IdentityScore Score(IImageEmbedder embedder, IdentityViews generation, IReadOnlyList<SKBitmap> faceReferences, IReadOnlyList<SKBitmap> clothingReferences)
    {
        double? face = generation.Face is not null && faceReferences.Count > 0
            ? MeanCosine(embedder.Embed(generation.Face), embedder.EmbedAll(faceReferences)) : null;
        double? clothing = generation.Clothing is not null && clothingReferences.Count > 0
            ? MeanCosine(embedder.Embed(generation.Clothing), embedder.EmbedAll(clothingReferences)) : null;
        if (face is null && clothing is null)
            throw new ArgumentException("identity similarity needs a face crop with face references or a clothing crop with clothing references");
        return new IdentityScore(face, clothing);
    }

    /// <summary>
    /// The SWD identity baseline b: the given quantile (default 95th percentile) of cosine similarities between
    /// embeddings of images with different identities. Using a high quantile rather than the mean makes unrelated
    /// images get weight ~0, not half of them a small positive weight.
    /// </summary>
    public static double UnrelatedBaseline(IReadOnlyList<(float[] Embedding, string Identity)> items, double quantile = 0.95)
    {
        var sims = new List<double>();
        for (int i = 0; i < items.Count; i++)
            for (int j = i + 1; j < items.Count; j++)
                if (items[i].Identity != items[j].Identity) sims.Add(VectorMath.Dot(items[i].Embedding, items[j].Embedding));
        if (sims.Count == 0) throw new ArgumentException("the identity baseline needs at least two images with different identities");
        sims.Sort();
        return Math.Min(Bootstrap.Quantile(sims, quantile), 0.999);
    }
}
