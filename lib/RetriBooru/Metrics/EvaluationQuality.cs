using RetriBooru.Settings;
using System.Text.Json.Nodes;
using RetriBooru.Data;
using RetriBooru.Imaging;
using RetriBooru.Metrics.Vqa;
using RetriBooru.Runtime;
using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>
/// Image quality of an evaluation's samples, all at once: KID against the real pictures of the split (with its
/// real-vs-real floor and noise-vs-real ceiling) and readability (prompt consistency relative to those real pictures).
/// The real side is a fixed yardstick: computed once per (manifest, image size, split[, prompt view]) and shared by
/// every model the suite evaluates.
/// </summary>
sealed class ImageQualityScoring(ResNet18Embedder features, AttributeProbe? probe, long seed, EvaluationSuiteOptions options)
{
    /// <summary>KID's real side for a split (null when fewer than 4 real pictures could be read) and what happened loading it.</summary>
    sealed record RealQuality(ImageQualityReference? Reference, int Images, IReadOnlyList<string> Notes);

    /// <summary>Mean prompt consistency of a split's real pictures with their own prompts (null when no prompt asks for a probe attribute).</summary>
    sealed record RealReadability(double? Mean, int Count, IReadOnlyList<string> Notes);

    readonly Dictionary<(string Manifest, int Size, string Split), RealQuality> _qualityReferences = [];
    readonly Dictionary<(string Manifest, int Size, string Split, PromptView View), RealReadability> _realReadability = [];

    /// <summary>
    /// KID of the samples against the split's real pictures (with floor, ceiling and position) and readability; adds
    /// them to <paramref name="table"/>'s summary as aggregates and returns results.json's <c>quality</c> object.
    /// A part that cannot be computed is left out with a note (fewer than 2 samples or 4 real pictures, no probe, ...).
    /// </summary>
    public JsonObject Score(EvaluationRun run, ResultsTable table, IReadOnlyList<float[]> sampleFeatures, List<string> notes)
    {
        var (modelName, split) = (run.Model.Name, run.Split);
        var manifestSplit = EvaluationSets.ManifestSplit(run.Options.Split);
        var (real, readableReal) = RealSideFor(run, manifestSplit);
        foreach (var note in real.Notes.Concat(readableReal?.Notes ?? []))
            if (!notes.Contains(note)) notes.Add(note);
        var quality = new JsonObject
        {
            ["features"] = $"{features.Name} raw {features.Dimension}-d global-average-pool output (not normalised)",
            ["kernel"] = "k(x, y) = (x.y / d + 1)^3; KID = unbiased MMD^2",
            ["manifest_split"] = manifestSplit,
            ["real_images"] = real.Images,
        };

        if (real.Reference is null) notes.Add("kid omitted: it needs at least 4 readable real images of the split");
        else if (sampleFeatures.Count < 2) notes.Add("kid omitted: it needs at least 2 samples");
        else
        {
            var report = real.Reference.ScoreFeatures(sampleFeatures);
            var (kid, floor, ceiling) = (report.Kid, report.RealFloor, report.NoiseCeiling);
            double range = Math.Max(ceiling.Value - floor.Value, 1e-12);
            // Floor and ceiling are fixed reference points here, so the position's interval is KID's mapped onto the range.
            table.AddAggregate(modelName, split, new ScoreSummary("kid", kid.Value, kid.Lower, kid.Upper, kid.Generated, 0.95, options.KidResamples, seed));
            table.AddAggregate(modelName, split, Fixed("kid_floor", floor.Value, real.Images));
            table.AddAggregate(modelName, split, Fixed("kid_ceiling", ceiling.Value, real.Images));
            table.AddAggregate(modelName, split, new ScoreSummary("kid_position", report.PositionInRange, (kid.Lower - floor.Value) / range, (kid.Upper - floor.Value) / range,
                kid.Generated, 0.95, options.KidResamples, seed));
            quality["kid"] = KidJson(kid);
            quality["kid_floor"] = KidJson(floor);
            quality["kid_ceiling"] = KidJson(ceiling);
            quality["kid_position"] = report.PositionInRange;
        }

        if (probe is null) return quality;
        var sampleConsistency = table.Rows.Where(r => r.Model == modelName && r.Split == split && r.SampleIndex is not null && r.Scores.ContainsKey("prompt_consistency"))
            .Select(r => r.Scores["prompt_consistency"]).ToList();
        if (sampleConsistency.Count == 0) notes.Add("readability omitted: no sample's prompt asks for a probe attribute");
        else if (readableReal?.Mean is not double realMean || realMean <= 0) notes.Add($"readability omitted: the probe agrees with no real {manifestSplit} image's prompt (nothing to divide by)");
        else
        {
            // The real mean is a fixed yardstick (cached, shared by every model): only the samples are resampled.
            var samples = Bootstrap.MeanInterval("readability", sampleConsistency, run.Options.Seed, run.Options.BootstrapResamples);
            table.AddAggregate(modelName, split, samples with { Mean = samples.Mean / realMean, Lower = samples.Lower / realMean, Upper = samples.Upper / realMean });
            quality["readability"] = new JsonObject
            {
                ["value"] = samples.Mean / realMean, ["ci_low"] = samples.Lower / realMean, ["ci_high"] = samples.Upper / realMean, ["n"] = samples.Count,
                ["samples_mean"] = samples.Mean, ["real_mean"] = realMean, ["real_n"] = readableReal.Count, ["prompt_view"] = run.Options.PromptView.Name(),
            };
        }
        return quality;

        ScoreSummary Fixed(string name, double value, int count) => new(name, value, value, value, count, 0.95, options.KidResamples, seed);
        static JsonObject KidJson(KidResult k) => new() { ["value"] = k.Value, ["ci_low"] = k.Lower, ["ci_high"] = k.Upper, ["n"] = k.Generated, ["real_n"] = k.Real };
    }

    /// <summary>
    /// The cached real side of image quality for (manifest, size, split[, prompt view]); the pictures are loaded only
    /// when a part is missing, and disposed right after.
    /// </summary>
    (RealQuality Quality, RealReadability? Readability) RealSideFor(EvaluationRun run, string manifestSplit)
    {
        var (size, promptView) = (run.Model.ImageSize, run.Options.PromptView);
        var path = Path.GetFullPath(run.References.ManifestPath);
        var qualityKey = (path, size, manifestSplit);
        var readabilityKey = (path, size, manifestSplit, promptView);
        bool needQuality = !_qualityReferences.ContainsKey(qualityKey);
        bool needReadability = probe is not null && !_realReadability.ContainsKey(readabilityKey);
        if (needQuality || needReadability)
        {
            var loadNotes = new List<string>();
            var real = LoadSplitTargets(run.References, size, manifestSplit, loadNotes);
            try
            {
                if (needQuality)
                    _qualityReferences[qualityKey] = new RealQuality(
                        real.Count >= 4 ? ImageQualityReference.Create(features, real.Select(r => r.Image).ToList(), size, seed, options.KidResamples) : null, real.Count, loadNotes);
                if (needReadability)
                {
                    var consistencies = Readability.Consistencies(probe!,
                        real.Select(r => (r.Image, EvaluationPrompts.Tags(PromptViews.Apply(promptView, r.Example.Prompt, r.Example.Character)))));
                    _realReadability[readabilityKey] = new RealReadability(consistencies.Count == 0 ? null : consistencies.Average(), consistencies.Count, loadNotes);
                }
            }
            finally
            {
                foreach (var r in real) r.Image.Dispose();
            }
        }
        return (_qualityReferences[qualityKey], _realReadability.GetValueOrDefault(readabilityKey));
    }

    /// <summary>
    /// The distinct targets of a manifest split at the model's size, at most <see cref="EvaluationSuiteOptions.QualityImages"/>
    /// of them (a seeded choice); unreadable files are skipped and counted in one note.
    /// </summary>
    List<(SKBitmap Image, TrainingExample Example)> LoadSplitTargets(ReferenceSetChoice source, int size, string manifestSplit, List<string> notes)
    {
        var targets = source.Manifest.Where(e => e.Split == manifestSplit).GroupBy(e => e.Target, StringComparer.Ordinal).Select(g => g.First())
            .OrderBy(e => e.Target, StringComparer.Ordinal).ToArray();
        if (targets.Length > options.QualityImages)
        {
            Seeding.Stream(seed, "quality-images/" + manifestSplit).Shuffle(targets);
            notes.Add($"image quality compares with {options.QualityImages} of the {targets.Length} {manifestSplit} images (a seeded choice)");
            targets = targets.Take(options.QualityImages).ToArray();
        }
        var loaded = new List<(SKBitmap, TrainingExample)>();
        var unreadable = new List<string>();
        foreach (var example in targets)
        {
            try { loaded.Add((ImageTensor.LoadBitmap(ManifestReader.Resolve(source.DatasetDir, example.Image), size), example)); }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException) { unreadable.Add(e.Message); }
        }
        if (unreadable.Count > 0)
            notes.Add($"image quality: {unreadable.Count} of {targets.Length} {manifestSplit} images could not be read and were skipped (first: {unreadable[0]})");
        return loaded;
    }
}
