using RetriBooru.Settings;
using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>
/// Where in a generated image (which has no face box) each concept is compared. <c>whole</c>: the whole image for both
/// concepts. <c>best-window</c>: a cheap locator: among 14 windows (the whole image, a 3x3 grid of half-size windows and
/// a 2x2 grid of three-quarter windows) the one whose embedding is closest on average to that concept's references.
/// The maximum over windows raises every score, related or not, so the baselines are computed with the same views.
/// </summary>
public static class EvaluationViews
{
    public static IReadOnlyList<SKRectI> Windows(int width, int height)
    {
        var windows = new List<SKRectI> { new(0, 0, width, height) };
        foreach (var (fraction, steps) in new[] { (0.5, 3), (0.75, 2) })
        {
            int w = Math.Max(1, (int)Math.Round(width * fraction)), h = Math.Max(1, (int)Math.Round(height * fraction));
            for (int iy = 0; iy < steps; iy++)
                for (int ix = 0; ix < steps; ix++)
                {
                    int x = (width - w) * ix / (steps - 1), y = (height - h) * iy / (steps - 1);
                    windows.Add(new SKRectI(x, y, x + w, y + h));
                }
        }
        return windows;
    }

    /// <summary>
    /// The box to compare with <paramref name="references"/>: null for <c>whole</c> or when there are no references; the
    /// first best window in window order wins. The 14 windows go to the embedder in one batch (one ONNX run for
    /// ResNet18, which uses the intra-op threads; a batch gives the same vectors as one image at a time).
    /// </summary>
    public static SKRectI? Locate(IdentityView view, IImageEmbedder embedder, SKBitmap image, IReadOnlyList<SKBitmap> references)
    {
        if (view == IdentityView.Whole || references.Count == 0) return null;
        if (view != IdentityView.BestWindow) throw new ArgumentException($"unknown identity view {view}");
        var referenceEmbeddings = embedder.EmbedAll(references);
        var windows = Windows(image.Width, image.Height);
        var crops = windows.Select(w => ImageOps.Crop(image, w)).ToList();
        try
        {
            var embeddings = embedder.EmbedBatch(crops);
            int best = 0;
            double bestScore = double.NegativeInfinity;
            for (int i = 0; i < windows.Count; i++)
            {
                double score = IdentitySimilarity.MeanCosine(embeddings[i], referenceEmbeddings);
                if (score > bestScore) (best, bestScore) = (i, score);
            }
            return windows[best];
        }
        finally
        {
            foreach (var crop in crops) crop.Dispose();
        }
    }
}
