using RetriBooru.Metrics.Vqa;
using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>
/// KID of generated images against real ones, beside the two reference points measured the same way: the floor
/// (two disjoint halves of the real images) and the ceiling (per-pixel Gaussian noise vs the real images).
/// </summary>
public sealed record ImageQualityReport(KidResult Kid, KidResult RealFloor, KidResult NoiseCeiling)
{
    /// <summary>Where KID sits between floor (0) and ceiling (1): 0.1 = within the range's lowest tenth.</summary>
    public double PositionInRange => (Kid.Value - RealFloor.Value) / Math.Max(NoiseCeiling.Value - RealFloor.Value, 1e-12);
}

/// <summary>
/// The real side of KID for one set of real images (e.g. a split's pictures at the model's size): their ResNet18
/// pool features, the real-vs-real floor and the noise-vs-real ceiling, computed once and reused for every model.
/// </summary>
public sealed class ImageQualityReference
{
    public IReadOnlyList<float[]> RealFeatures { get; }
    public KidResult RealFloor { get; }
    public KidResult NoiseCeiling { get; }
    public int ImageSize { get; }
    readonly int _resamples;
    readonly long _seed;

    ImageQualityReference(IReadOnlyList<float[]> real, KidResult floor, KidResult ceiling, int imageSize, int resamples, long seed)
    {
        RealFeatures = real;
        RealFloor = floor;
        NoiseCeiling = ceiling;
        ImageSize = imageSize;
        _resamples = resamples;
        _seed = seed;
    }

    /// <param name="real">Real images, already at the model's size (the generations are scored at that size too).</param>
    public static ImageQualityReference Create(ResNet18Embedder features, IReadOnlyList<SKBitmap> real, int imageSize, long seed, int resamples = 200)
    {
        if (real.Count < 4) throw new ArgumentException($"KID needs at least 4 real images (two halves of 2), got {real.Count}");
        var realFeatures = features.FeaturesBatch(real);
        var order = Enumerable.Range(0, real.Count).ToArray();
        Runtime.Seeding.Stream(seed, "kid-halves").Shuffle(order);
        var half = real.Count / 2;
        var floor = KernelInceptionDistance.Compute(order.Take(half).Select(i => realFeatures[i]).ToList(),
            order.Skip(half).Take(half).Select(i => realFeatures[i]).ToList(), resamples, seed);
        // Drawn in the same order from one stream as before batching, so the same noise images.
        var random = Runtime.Seeding.Stream(seed, "kid-noise");
        var noiseImages = Enumerable.Range(0, real.Count).Select(_ => NoiseImage(imageSize, random)).ToList();
        float[][] noise;
        try { noise = features.FeaturesBatch(noiseImages); }
        finally { foreach (var image in noiseImages) image.Dispose(); }
        var ceiling = KernelInceptionDistance.Compute(noise, realFeatures, resamples, seed);
        return new ImageQualityReference(realFeatures, floor, ceiling, imageSize, resamples, seed);
    }

    /// <summary>A reference whose parts were computed before (read back from the evaluation cache).</summary>
    internal static ImageQualityReference FromParts(IReadOnlyList<float[]> real, KidResult floor, KidResult ceiling, int imageSize, int resamples, long seed) =>
        new(real, floor, ceiling, imageSize, resamples, seed);

    public ImageQualityReport Score(ResNet18Embedder features, IReadOnlyList<SKBitmap> generated) =>
        ScoreFeatures(features.FeaturesBatch(generated));

    public ImageQualityReport ScoreFeatures(IReadOnlyList<float[]> generated) =>
        new(KernelInceptionDistance.Compute(generated, RealFeatures, _resamples, _seed), RealFloor, NoiseCeiling);

    /// <summary>What an untrained sampler returns: per-pixel N(0, 1) in [-1, 1] units, clamped, as an RGB image.</summary>
    public static SKBitmap NoiseImage(int size, Random random)
    {
        var bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var bytes = new byte[size * size * 4];
        for (int i = 0; i < size * size; i++)
        {
            for (int c = 0; c < 3; c++)
            {
                double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
                double z = Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
                bytes[i * 4 + c] = (byte)Math.Round((Math.Clamp(z, -1, 1) + 1) * 127.5);
            }
            bytes[i * 4 + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(bytes, 0, bitmap.GetPixels(), bytes.Length);
        return bitmap;
    }
}

/// <summary>Readability: how well the probe reads the prompted attributes on samples, relative to real pictures.</summary>
/// <param name="Samples">Mean probe agreement with the prompted tags on the samples.</param>
/// <param name="Real">The same on real pictures with their own prompts (in the same prompt view).</param>
/// <param name="ByAttribute">Per asked attribute (pose, expression, background, ...): where the samples fall short.</param>
public sealed record ReadabilityResult(double Samples, double Real, int SampleCount, int RealCount, IReadOnlyList<AttributeReadability> ByAttribute)
{
    /// <summary>Samples / real: 1.0 = the samples are as readable as real pictures.</summary>
    public double Value => Real > 0 ? Samples / Real : 0;
}

/// <summary>One attribute's share of readability: the fraction of images asking for it on which the probe reads the asked value.</summary>
public sealed record AttributeReadability(string Attribute, double? Samples, int SampleChecks, double? Real, int RealChecks)
{
    /// <summary>Samples / real for this attribute (null when either side never asks for it or the real side reads it at 0).</summary>
    public double? Value => Samples is double s && Real is double r && r > 0 ? s / r : null;
}

public static class Readability
{
    /// <summary>
    /// Mean prompt consistency (<see cref="PromptConsistency.FromProbe"/>) over the images whose prompt asks for a
    /// probe attribute, for samples and for real pictures, with the same split per attribute. Null when no prompt of
    /// either side asks for one.
    /// </summary>
    public static ReadabilityResult? Score(AttributeProbe probe, IEnumerable<(SKBitmap Image, IReadOnlyList<string> Tags)> samples,
        IEnumerable<(SKBitmap Image, IReadOnlyList<string> Tags)> real)
    {
        var s = Checks(probe, samples);
        var r = Checks(probe, real);
        if (s.Count == 0 || r.Count == 0) return null;
        var byAttribute = probe.Schema.Attributes.Select(a => a.Name)
            .Select(name => (name, s: s.SelectMany(x => x.Checks).Where(c => c.Attribute == name).ToList(), r: r.SelectMany(x => x.Checks).Where(c => c.Attribute == name).ToList()))
            .Where(x => x.s.Count > 0 || x.r.Count > 0)
            .Select(x => new AttributeReadability(x.name, Agreement(x.s), x.s.Count, Agreement(x.r), x.r.Count))
            .ToList();
        return new ReadabilityResult(s.Average(x => x.Score!.Value), r.Average(x => x.Score!.Value), s.Count, r.Count, byAttribute);
    }

    public static List<double> Consistencies(AttributeProbe probe, IEnumerable<(SKBitmap Image, IReadOnlyList<string> Tags)> images) =>
        Checks(probe, images).Select(x => x.Score!.Value).ToList();

    static List<PromptConsistencyResult> Checks(AttributeProbe probe, IEnumerable<(SKBitmap Image, IReadOnlyList<string> Tags)> images) =>
        images.Select(x => PromptConsistency.FromProbe(probe, x.Image, x.Tags)).Where(x => x.Score is not null).ToList();

    static double? Agreement(List<PromptCheck> checks) => checks.Count == 0 ? null : checks.Count(c => c.Agrees) / (double)checks.Count;
}
