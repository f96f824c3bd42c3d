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
///   sim_nonid(A, B)   = (cos(E(neutral(A)), E(neutral(B))) + corr(L(neutral(A)), L(neutral(B)))) / 2
///                       E: an image embedder (ResNet18 by default): textures, patterns, objects, drawing style;
///                       L: the low-frequency layout, an 8x8 RGB thumbnail (area-averaged), centred per channel;
///                       corr: Pearson correlation of the two thumbnails (colour and placement of large regions).
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

    public const int LayoutSize = 8;

    /// <summary>The two parts of the non-identity descriptor: a unit embedding and a unit, zero-mean layout vector.</summary>
    public sealed record Descriptor(float[] Embedding, float[] Layout)
    {
        public double Similarity(Descriptor other) => (VectorMath.Dot(Embedding, other.Embedding) + VectorMath.Dot(Layout, other.Layout)) / 2;
    }

    public Descriptor NonIdentityDescriptor(MaskedImage image)
    {
        using var neutral = image.IdentityMask is null ? image.Image.Copy() : ImageOps.FillMasked(image.Image, image.IdentityMask, NeutralFill);
        return new Descriptor(embedder.Embed(neutral), Layout(neutral));
    }

    public double NonIdentitySimilarity(MaskedImage a, MaskedImage b) => NonIdentityDescriptor(a).Similarity(NonIdentityDescriptor(b));

    /// <summary>8x8 thumbnail by area averaging, each channel centred, then scaled to unit length (so a dot product is a Pearson correlation).</summary>
    static float[] Layout(SKBitmap image)
    {
        using var rgba = image.Copy(SKColorType.Rgba8888);
        var bytes = rgba.Bytes;
        int w = image.Width, h = image.Height;
        var sums = new double[3 * LayoutSize * LayoutSize];
        var counts = new int[LayoutSize * LayoutSize];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int cell = y * LayoutSize / h * LayoutSize + x * LayoutSize / w;
                counts[cell]++;
                for (int c = 0; c < 3; c++) sums[c * LayoutSize * LayoutSize + cell] += bytes[(y * w + x) * 4 + c];
            }
        var layout = new float[sums.Length];
        for (int c = 0; c < 3; c++)
        {
            double mean = 0;
            for (int k = 0; k < counts.Length; k++) mean += sums[c * counts.Length + k] / counts[k];
            mean /= counts.Length;
            for (int k = 0; k < counts.Length; k++) layout[c * counts.Length + k] = (float)(sums[c * counts.Length + k] / counts[k] - mean);
        }
        return VectorMath.Normalize(layout);
    }

    /// <summary>beta: mean sim_nonid over all pairs of the given unrelated same-character images (at least 2).</summary>
    public double Baseline(IReadOnlyList<MaskedImage> unrelatedSameCharacter)
    {
        if (unrelatedSameCharacter.Count < 2) throw new ArgumentException("the leakage baseline needs at least two unrelated images of the character");
        var e = unrelatedSameCharacter.Select(NonIdentityDescriptor).ToList();
        var sims = new List<double>();
        for (int i = 0; i < e.Count; i++)
            for (int j = i + 1; j < e.Count; j++) sims.Add(e[i].Similarity(e[j]));
        return sims.Average();
    }

    public LeakageResult Score(MaskedImage generation, IReadOnlyList<MaskedImage> references, double baseline)
    {
        if (references.Count == 0) throw new ArgumentException("leakage needs at least one reference");
        if (baseline >= 1) throw new ArgumentOutOfRangeException(nameof(baseline), "the leakage baseline must be below 1");
        var g = NonIdentityDescriptor(generation);
        double best = double.NegativeInfinity;
        int bestIndex = -1;
        for (int i = 0; i < references.Count; i++)
        {
            double sim = g.Similarity(NonIdentityDescriptor(references[i]));
            if (sim > best) (best, bestIndex) = (sim, i);
        }
        return new LeakageResult((best - baseline) / (1 - baseline), best, baseline, bestIndex);
    }
}
