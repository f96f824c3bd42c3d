using RetriBooru.Settings;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Imaging;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using SkiaSharp;
using static TorchSharp.torch;

namespace RetriBooru.Metrics;

/// <summary>What <see cref="ModelDiagnosis.Run"/> measures and samples.</summary>
public sealed record DiagnosisOptions
{
    /// <summary>Real images (held-out and unseen-character pictures first) whose denoising error is measured and which KID compares with.</summary>
    public int Images { get; init; } = 96;
    /// <summary>Timesteps of the error table (null = <see cref="DenoisingDiagnostics.DefaultTimesteps"/>).</summary>
    public int[]? Timesteps { get; init; }
    /// <summary>Samples generated from the real images' prompts for KID and readability (0 = error table only).</summary>
    public int Samples { get; init; } = 96;
    public SamplingOptions Sampling { get; init; } = new() { Steps = 15, GuidanceScale = 3.0, Seed = 1 };
    public long Seed { get; init; } = 1;
    public int KidResamples { get; init; } = 200;
    /// <summary>Train (or load from the dataset's probe cache) the attribute probe and score readability.</summary>
    public bool Readability { get; init; } = true;
    /// <summary>Pictures of new random characters the attribute probe trains on (the evaluation's <c>probe_world</c>; 0 = the dataset's own).</summary>
    public int ProbeWorld { get; init; } = EvaluationSettings.Default.ProbeWorld;

    public void Validate()
    {
        // One-line messages (ArgumentException, not ArgumentOutOfRangeException's multi-line text) naming the option.
        if (Images is < 4 or > 100_000) throw new ArgumentException($"images must be in [4, 100000], got {Images}");
        if (Samples is < 0 or > 100_000) throw new ArgumentException($"samples must be in [0, 100000], got {Samples}");
        if (Samples is > 0 and < 2) throw new ArgumentException($"KID needs at least 2 samples (or 0 for none), got {Samples}");
        Sampling.Validate();
        if (KidResamples is < 0 or > 100_000) throw new ArgumentException($"KID resamples must be in [0, 100000], got {KidResamples}");
        if (ProbeWorld is < 0 or > EvaluationProbe.MaxWorldPictures) throw new ArgumentException($"--probe-world must be in [0, {EvaluationProbe.MaxWorldPictures}], got {ProbeWorld}");
    }
}

/// <summary>The diagnosis of a text-to-image model on a dataset.</summary>
public sealed record DiagnosisReport(
    IReadOnlyList<DenoisingErrorRow> Errors,
    ImageQualityReport? Quality,
    ReadabilityResult? Readability,
    int RealImages,
    IReadOnlyList<TagSensitivityRow> TagSensitivity,
    IReadOnlyList<string> Notes);

/// <summary>
/// Why samples look the way they do, in numbers: the per-timestep denoising error on real images (model vs the naive
/// x_t guess), KID of samples against those images with its floor and ceiling, and readability (the probe's agreement
/// with the prompted scene tags on samples, relative to the same real images).
/// </summary>
public static class ModelDiagnosis
{
    /// <summary>Where tag sensitivity is measured, as fractions of the schedule: content visible, half gone, nearly gone.</summary>
    public static readonly double[] SensitivityFractions = [0.3, 0.6, 0.9];

    /// <summary>The figure masks of the chosen pictures [N, 1, S, S], or null (with a note) when one is missing or unreadable.</summary>
    static Tensor? FigureMasks(string datasetDir, IReadOnlyList<ImageRecord> records, int size, List<string> notes)
    {
        var masks = new List<Tensor>();
        try
        {
            foreach (var record in records)
            {
                if (record.Mask is null)
                {
                    notes.Add($"{record.Image} has no figure mask: tag sensitivity is measured on whole pictures only");
                    return null;
                }
                try { masks.Add(ImageTensor.LoadMask(ManifestReader.Resolve(datasetDir, record.Mask), size)); }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
                {
                    notes.Add($"{record.Mask}: {e.Message}; tag sensitivity is measured on whole pictures only");
                    return null;
                }
            }
            return stack(masks);
        }
        finally
        {
            foreach (var m in masks) m.Dispose();
        }
    }

    public static DiagnosisReport Run(DiffusionModel model, string datasetDir, DiagnosisOptions options, Action<IReadOnlyList<SKBitmap>, IReadOnlyList<SKBitmap>>? onSamples = null, IProgress<string>? progress = null)
    {
        options.Validate();
        var notes = new List<string>();
        int size = model.Config.ImageSize;
        var records = DatasetLayout.ReadRecords(datasetDir);
        // Pictures the base model's users care about most come first: held-out and unseen-character ones.
        var chosen = records.OrderBy(r => r.Split == "train" ? 1 : 0).ThenBy(r => Seeding.DeriveLong(options.Seed, "diagnose-pick/" + r.Id)).ToList();
        var real = new List<(SKBitmap Image, ImageRecord Record)>();
        foreach (var record in chosen)
        {
            if (real.Count >= options.Images) break;
            try { real.Add((ImageTensor.LoadBitmap(ManifestReader.Resolve(datasetDir, record.Image), size), record)); }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException) { notes.Add($"{record.Image}: {e.Message}"); }
        }
        if (real.Count < 4) throw new InvalidDataException($"{datasetDir}: only {real.Count} readable images; the diagnosis needs at least 4");
        if (real.Count < options.Images) notes.Add($"{real.Count} of the {options.Images} requested images exist");
        try
        {
            progress?.Report($"denoising error on {real.Count} real images");
            var prompts = real.Select(r => r.Record.Prompts).ToList();
            // The character's name tag goes first: for a seen character it can stand in for hair, eyes and outfit.
            var characters = records.Select(r => r.Character).Where(c => !string.IsNullOrWhiteSpace(c)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            var attributes = new[] { new TaggedAttribute("character", characters) }
                .Concat(EvaluationProbe.SynthSchema().Attributes.Select(a => new TaggedAttribute(a.Name, a.Values.Select(a.TagOf).ToList()))).ToList();
            int trainSteps = new NoiseSchedule(model.Config.Schedule).Steps;
            IReadOnlyList<DenoisingErrorRow> errors;
            IReadOnlyList<TagSensitivityRow> sensitivity;
            // One stack of the real pictures for both measurements; the per-picture tensors go with the scope.
            using (NewDisposeScope())
            {
                var images = stack(real.Select(r => ImageTensor.FromBitmap(r.Image)).ToArray());
                errors = DenoisingDiagnostics.Measure(model, images, prompts, options.Timesteps ?? DenoisingDiagnostics.DefaultTimesteps(trainSteps), options.Seed);
                // Which tags steer the denoiser (pose, expression, background, hair, ...): each attribute of the synthetic
                // world's schema whose tags the prompts use, at three noise levels where the picture's content is decided.
                progress?.Report("tag sensitivity (x0 error with each attribute's tag swapped)");
                sensitivity = DenoisingDiagnostics.TagSensitivity(model, images, prompts, attributes,
                    SensitivityFractions.Select(f => (int)Math.Round(f * (trainSteps - 1))).Distinct().ToArray(), options.Seed,
                    figureMasks: FigureMasks(datasetDir, real.Select(r => r.Record).ToList(), size, notes));
            }
            if (options.Samples == 0) return new DiagnosisReport(errors, null, null, real.Count, sensitivity, notes);

            progress?.Report($"sampling {options.Samples} images ({options.Sampling.Steps} steps, guidance {options.Sampling.GuidanceScale})");
            var samplePrompts = Enumerable.Range(0, options.Samples).Select(i => prompts[i % prompts.Count]).ToList();
            var samples = new List<SKBitmap>();
            try
            {
                for (int start = 0; start < samplePrompts.Count; start += 32)
                {
                    using var scope = NewDisposeScope();
                    var batch = samplePrompts.Skip(start).Take(32).ToList();
                    var generated = TextToImage.Generate(model, batch, options.Sampling with { Seed = Seeding.DeriveLong(options.Sampling.Seed, $"diagnose-batch/{start}") });
                    for (int i = 0; i < batch.Count; i++) samples.Add(ImageTensor.ToBitmap(generated[i]));
                }
                onSamples?.Invoke(samples, real.Select(r => r.Image).ToList());
                progress?.Report("KID (ResNet18 features) and readability");
                using var features = new ResNet18Embedder(intraOpThreads: 1);
                var reference = ImageQualityReference.Create(features, real.Select(r => r.Image).ToList(), size, options.Seed, options.KidResamples);
                var quality = reference.Score(features, samples);
                ReadabilityResult? readability = null;
                if (options.Readability)
                {
                    var probe = EvaluationProbe.Prepare(new ProbeData(datasetDir, records, size), new EvaluationSuiteOptions().Probe with { Seed = options.Seed }, useCache: true, notes, progress, options.ProbeWorld);
                    if (probe is null) notes.Add("no attribute ground truth in the dataset: readability omitted");
                    else
                        using (probe.Probe)
                        {
                            IReadOnlyList<string> SceneTags(ImageRecord r) => PromptViews.Apply(PromptView.Context, r.Prompts, r.Character).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                            readability = Readability.Score(probe.Probe,
                                samples.Select((s, i) => (s, SceneTags(real[i % real.Count].Record))),
                                real.Select(r => (r.Image, SceneTags(r.Record))));
                        }
                }
                return new DiagnosisReport(errors, quality, readability, real.Count, sensitivity, notes);
            }
            finally
            {
                foreach (var s in samples) s.Dispose();
            }
        }
        finally
        {
            foreach (var r in real) r.Image.Dispose();
        }
    }
}
