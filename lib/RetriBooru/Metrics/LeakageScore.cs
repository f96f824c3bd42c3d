using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>An image with its identity mask (white = the character's figure); the mask may be unknown.</summary>
public sealed record MaskedImage(SKBitmap Image, SKBitmap? IdentityMask);

/// <summary>Leakage of one generation: the raw nearest-reference similarity, the baseline and the normalised score.</summary>
public sealed record LeakageResult(double Score, double MaxReferenceSimilarity, double Baseline, int NearestReference);

/// <summary>
/// A direct leakage score: how much a generation copies what its references carry but the identity does not.
///
///   neutral(X)        = X with its identity mask filled with flat grey (128,128,128); X itself when the mask is unknown.
///                       The character's appearance (hair, face, clothing colours) is gone, while the background, the
///                       figure's silhouette (pose, position, scale) and the drawing's texture remain.
///   sim_nonid(A, B)   = cos(E(neutral(A)), E(neutral(B)))   with E an image embedder (ResNet18 by default).
///   baseline beta     = mean sim_nonid over pairs of unrelated images of the same character (different source images:
///                       what two honest pictures of that character share).
///   leak(G, R)        = (max_{r in R} sim_nonid(G, r) - beta) / (1 - beta)
///
/// 0 means the generation shares no more non-identity content with its closest reference than unrelated pictures of
/// the character do; 1 means its non-identity content is identical to a reference's; negative values are kept (less
/// shared than typical). Scheme-a references (crops of the target) score high, scheme-b references low (tested).
/// </summary>
public sealed class LeakageScorer(IImageEmbedder embedder)
{
    public static readonly SKColor NeutralFill = new(128, 128, 128);

    public float[] NonIdentityEmbedding(MaskedImage image)
    {
        if (image.IdentityMask is null) return embedder.Embed(image.Image);
        using var neutral = ImageOps.FillMasked(image.Image, image.IdentityMask, NeutralFill);
        return embedder.Embed(neutral);
    }

    /// <summary>beta: mean sim_nonid over all pairs of the given unrelated same-character images (at least 2).</summary>
    public double Baseline(IReadOnlyList<MaskedImage> unrelatedSameCharacter)
    {
        if (unrelatedSameCharacter.Count < 2) throw new ArgumentException("the leakage baseline needs at least two unrelated images of the character");
        var e = unrelatedSameCharacter.Select(NonIdentityEmbedding).ToList();
        var sims = new List<double>();
        for (int i = 0; i < e.Count; i++)
            for (int j = i + 1; j < e.Count; j++) sims.Add(VectorMath.Dot(e[i], e[j]));
        return sims.Average();
    }

    public LeakageResult Score(MaskedImage generation, IReadOnlyList<MaskedImage> references, double baseline)
    {
        if (references.Count == 0) throw new ArgumentException("leakage needs at least one reference");
        if (baseline >= 1) throw new ArgumentOutOfRangeException(nameof(baseline), "the leakage baseline must be below 1");
        var g = NonIdentityEmbedding(generation);
        double best = double.NegativeInfinity;
        int bestIndex = -1;
        for (int i = 0; i < references.Count; i++)
        {
            double sim = VectorMath.Dot(g, NonIdentityEmbedding(references[i]));
            if (sim > best) (best, bestIndex) = (sim, i);
        }
        return new LeakageResult((best - baseline) / (1 - baseline), best, baseline, bestIndex);
    }
}
