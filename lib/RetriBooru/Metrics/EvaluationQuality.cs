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
sealed class ImageQualityScoring(ResNet18Embedder features, AttributeProbe? probe, long seed, EvaluationSuiteOptions options, YardstickCache cache)
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
        var consistencyRows = table.Rows.Where(r => r.Model == modelName && r.Split == split && r.SampleIndex is not null && r.Scores.ContainsKey("prompt_consistency")).ToList();
        var sampleConsistency = consistencyRows.Select(r => r.Scores["prompt_consistency"]).ToList();
        if (sampleConsistency.Count == 0) notes.Add("readability omitted: no sample's prompt asks for a probe attribute");
        else if (readableReal?.Mean is not double realMean || realMean <= 0) notes.Add($"readability omitted: the probe agrees with no real {manifestSplit} image's prompt (nothing to divide by)");
        else
        {
            // The real mean is a fixed yardstick (cached, shared by every model): only the samples are resampled.
            var samples = Bootstrap.ClusteredMeanInterval("readability", sampleConsistency, consistencyRows.Select(r => r.ReferenceSetId).ToList(),
                run.Options.Seed, run.Options.BootstrapResamples);
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
    /// The real side of image quality for (manifest, size, split[, prompt view]): kept in memory for the suite and on
    /// disk (<see cref="YardstickCache"/>); the pictures are loaded only when a part is in neither, and disposed right after.
    /// </summary>
    (RealQuality Quality, RealReadability? Readability) RealSideFor(EvaluationRun run, string manifestSplit)
    {
        var (size, promptView) = (run.Model.ImageSize, run.Options.PromptView);
        var path = Path.GetFullPath(run.References.ManifestPath);
        var qualityKey = (path, size, manifestSplit);
        var readabilityKey = (path, size, manifestSplit, promptView);
        bool needQuality = !_qualityReferences.ContainsKey(qualityKey);
        bool needReadability = probe is not null && !_realReadability.ContainsKey(readabilityKey);
        if (!needQuality && !needReadability) return (_qualityReferences[qualityKey], _realReadability.GetValueOrDefault(readabilityKey));

        var choiceNotes = new List<string>();
        var targets = ChooseSplitTargets(run.References, manifestSplit, choiceNotes);
        var files = targets.Select(t => t.Image).ToList();
        List<(SKBitmap Image, TrainingExample Example)>? real = null;
        // Loaded once for whichever part the cache does not hold; the notes of loading belong to both parts.
        List<(SKBitmap Image, TrainingExample Example)> Real(List<string> notes)
        {
            real ??= LoadSplitTargets(run.References, targets, size, manifestSplit, choiceNotes);
            notes.AddRange(choiceNotes);
            return real;
        }
        try
        {
            if (needQuality)
            {
                var key = SplitKey("kid", run, manifestSplit, size).WithFiles(cache, run.References.DatasetDir, files)
                    .With("embedder", YardstickCache.EmbedderIdentity(features))
                    .With("kid_resamples", options.KidResamples);
                // Two base64 float32 vectors per real picture at most, plus the JSON around them.
                long bound = 2L * options.QualityImages * features.Dimension * 4 * 4 / 3 + YardstickCache.MaxSmallEntryBytes;
                var loadNotes = new List<string>();
                var cached = cache.GetOrCompute($"kid_real@{manifestSplit}/{size}/{Path.GetFileName(path)}", key, notes =>
                {
                    var images = Real(notes);
                    return new CachedRealQuality(images.Count,
                        images.Count >= 4 ? CachedKidReference.From(ImageQualityReference.Create(features, images.Select(r => r.Image).ToList(), size, seed, options.KidResamples)) : null);
                }, loadNotes, bound);
                _qualityReferences[qualityKey] = new RealQuality(cached.Reference?.ToReference(size, options.KidResamples, seed), cached.Images, loadNotes);
            }
            if (needReadability)
            {
                var key = SplitKey("readability", run, manifestSplit, size).WithFiles(cache, run.References.DatasetDir, files)
                    .With("probe", probe!.Fingerprint()).With("prompt_view", promptView.Name());
                var loadNotes = new List<string>();
                var cached = cache.GetOrCompute($"readability_real@{manifestSplit}/{size}/{promptView.Name()}/{Path.GetFileName(path)}", key, notes =>
                {
                    var consistencies = Readability.Consistencies(probe!,
                        Real(notes).Select(r => (r.Image, EvaluationPrompts.Tags(PromptViews.Apply(promptView, r.Example.Prompt, r.Example.Character)))));
                    return new CachedReadability(consistencies.Count == 0 ? null : consistencies.Average(), consistencies.Count);
                }, loadNotes);
                _realReadability[readabilityKey] = new RealReadability(cached.Mean, cached.Count, loadNotes);
            }
        }
        finally
        {
            foreach (var r in real ?? []) r.Image.Dispose();
        }
        return (_qualityReferences[qualityKey], _realReadability.GetValueOrDefault(readabilityKey));
    }

    /// <summary>What both real parts depend on: the manifest, its split, the image size, the seed and how many pictures are compared.</summary>
    YardstickKey SplitKey(string kind, EvaluationRun run, string manifestSplit, int size) => new YardstickKey(kind)
        .With("manifest", cache.FileHash(run.References.DatasetDir, Path.GetFullPath(run.References.ManifestPath)))
        .With("split", manifestSplit).With("image_size", size).With("seed", seed).With("quality_images", options.QualityImages);

    /// <summary>
    /// The distinct targets of a manifest split, at most <see cref="EvaluationSuiteOptions.QualityImages"/> of them (a
    /// seeded choice, noted).
    /// </summary>
    TrainingExample[] ChooseSplitTargets(ReferenceSetChoice source, string manifestSplit, List<string> notes)
    {
        var targets = source.Manifest.Where(e => e.Split == manifestSplit).GroupBy(e => e.Target, StringComparer.Ordinal).Select(g => g.First())
            .OrderBy(e => e.Target, StringComparer.Ordinal).ToArray();
        if (targets.Length > options.QualityImages)
        {
            Seeding.Stream(seed, "quality-images/" + manifestSplit).Shuffle(targets);
            notes.Add($"image quality compares with {options.QualityImages} of the {targets.Length} {manifestSplit} images (a seeded choice)");
            targets = targets.Take(options.QualityImages).ToArray();
        }
        return targets;
    }

    /// <summary>The chosen targets at the model's size; unreadable files are skipped and counted in one note.</summary>
    static List<(SKBitmap Image, TrainingExample Example)> LoadSplitTargets(ReferenceSetChoice source, TrainingExample[] targets, int size, string manifestSplit, List<string> notes)
    {
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

/// <summary>KID's real side of a split as <see cref="YardstickCache"/> stores it: how many pictures were read and, with at least 4, their reference.</summary>
sealed record CachedRealQuality(int Images, CachedKidReference? Reference) : IValidatedEntry
{
    public void Validate()
    {
        if (Images < 0) throw new InvalidDataException($"negative image count {Images}");
        Reference?.Validate();
        if (Reference is not null && Reference.Count != Images) throw new InvalidDataException($"{Reference.Count} feature vectors for {Images} images");
    }
}

/// <summary>
/// The real pictures' raw ResNet18 features (little-endian float32, base64, so every bit survives), the real-vs-real
/// floor and the noise-vs-real ceiling.
/// </summary>
sealed record CachedKidReference(int Count, int Dimension, string Features, KidResult Floor, KidResult Ceiling) : IValidatedEntry
{
    public static CachedKidReference From(ImageQualityReference reference)
    {
        int dimension = reference.RealFeatures[0].Length;
        var bytes = new byte[reference.RealFeatures.Count * dimension * sizeof(float)];
        for (int i = 0; i < reference.RealFeatures.Count; i++)
            Buffer.BlockCopy(reference.RealFeatures[i], 0, bytes, i * dimension * sizeof(float), dimension * sizeof(float));
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("the KID feature cache is written little-endian");
        return new CachedKidReference(reference.RealFeatures.Count, dimension, Convert.ToBase64String(bytes), reference.RealFloor, reference.NoiseCeiling);
    }

    long ByteCount => (long)Count * Dimension * sizeof(float);

    float[][]? _decoded;

    /// <summary>Checks the sizes agree with each other before anything is allocated from them, then decodes the features.</summary>
    public void Validate()
    {
        if (Count < 4 || Dimension < 1 || Dimension > 1 << 16) throw new InvalidDataException($"implausible feature shape {Count} x {Dimension}");
        if (Features is null || Features.Length != (ByteCount + 2) / 3 * 4) throw new InvalidDataException($"{Features?.Length ?? 0} base64 characters, expected {(ByteCount + 2) / 3 * 4} for {Count} x {Dimension} floats");
        if (Floor is null || Ceiling is null) throw new InvalidDataException("floor or ceiling missing");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("the KID feature cache is read little-endian");
        var bytes = new byte[ByteCount];
        if (!Convert.TryFromBase64String(Features, bytes, out int written) || written != bytes.Length) throw new InvalidDataException("the KID features are not valid base64");
        var features = new float[Count][];
        for (int i = 0; i < Count; i++)
        {
            features[i] = new float[Dimension];
            Buffer.BlockCopy(bytes, i * Dimension * sizeof(float), features[i], 0, Dimension * sizeof(float));
        }
        _decoded = features;
    }

    public ImageQualityReference ToReference(int imageSize, int resamples, long seed)
    {
        if (_decoded is null) Validate();
        return ImageQualityReference.FromParts(_decoded!, Floor, Ceiling, imageSize, resamples, seed);
    }
}

/// <summary>Readability's real side as <see cref="YardstickCache"/> stores it.</summary>
sealed record CachedReadability(double? Mean, int Count);
