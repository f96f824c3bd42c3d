using RetriBooru.Settings;
using System.Globalization;
using System.Text.Json.Nodes;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Imaging;
using RetriBooru.Metrics.Vqa;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using SkiaSharp;
using static TorchSharp.torch;

namespace RetriBooru.Metrics;

/// <summary>
/// The evaluation protocol (issue #6 item 5): for a reference-conditioned model, choose reference sets of a split,
/// generate K samples per set with recorded seeds, score them (identity per concept, prompt consistency, SWD, leakage),
/// and write the results table (rows per sample and set, a summary with 95% bootstrap CIs, config and git commit).
/// Image quality is scored on all samples at once: KID against the real pictures of the split (with its real-vs-real
/// floor and noise-vs-real ceiling) and readability (prompt consistency relative to those real pictures).
/// The suite holds what does not depend on the model: the embedders, the attribute probe and the baselines, so several
/// models (RetriNet, the text-only baseline, ...) are scored against the same yardsticks.
/// <para>Generated images have no face box or mask: identity compares, per concept, the best of 14 windows of the
/// generated image (or the whole image) with that concept's crops (<see cref="EvaluationViews"/>). The baselines are
/// computed the same way from real images, which keeps the scores calibrated (see <see cref="EvaluationBaselines"/>).</para>
/// </summary>
public sealed class EvaluationSuite : IDisposable
{
    readonly string _datasetDir;
    readonly long _seed;
    readonly EvaluationSuiteOptions _options;
    readonly EvaluationEmbeddingCache _embedder;
    // The session _embedder wraps: KID reads its raw pool features, which the cache (normalised embeddings) does not keep.
    readonly ResNet18Embedder _features;
    readonly LeakageScorer _leakage;
    readonly PreparedProbe? _probe;
    readonly AttributeGroundTruth? _truth;
    readonly MiniLmTextEmbedder? _minilm;
    readonly IAnswerDistance _distance;
    readonly IReadOnlyList<TrainingExample> _calibration;
    readonly List<string> _notes = [];
    readonly Dictionary<int, EvaluationBaselines.IdentityBaseline> _identityBaselines = [];
    readonly Dictionary<int, EvaluationBaselines.IdentityBaseline?> _attributeBaselines = [];
    readonly Dictionary<(int Size, string Character), double?> _leakageBaselines = [];
    // The real side of image quality, shared by every model of one image size evaluated on one manifest split.
    readonly Dictionary<(string Manifest, int Size, string Split), RealQuality> _qualityReferences = [];
    readonly Dictionary<(string Manifest, int Size, string Split, string View), RealReadability> _realReadability = [];

    /// <summary>KID's real side for a split (null when fewer than 4 real pictures could be read) and what happened loading it.</summary>
    sealed record RealQuality(ImageQualityReference? Reference, int Images, IReadOnlyList<string> Notes);

    /// <summary>Mean prompt consistency of a split's real pictures with their own prompts (null when no prompt asks for a probe attribute).</summary>
    sealed record RealReadability(double? Mean, int Count, IReadOnlyList<string> Notes);

    EvaluationSuite(string datasetDir, long seed, EvaluationSuiteOptions options, EvaluationEmbeddingCache embedder, ResNet18Embedder features, PreparedProbe? probe, AttributeGroundTruth? truth,
        MiniLmTextEmbedder? minilm, IReadOnlyList<TrainingExample> calibration, List<string> notes)
    {
        _datasetDir = datasetDir;
        _seed = seed;
        _options = options;
        _embedder = embedder;
        _features = features;
        _leakage = new LeakageScorer(embedder);
        _probe = probe;
        _truth = truth;
        _minilm = minilm;
        _distance = minilm is null ? new ExactMatchAnswerDistance() : new EmbeddingAnswerDistance(minilm);
        _calibration = calibration;
        _notes.AddRange(notes);
    }

    // For SwdWalkthrough (same yardsticks as Evaluate).
    internal IImageEmbedder IdentityEmbedder => _embedder;
    internal IVqaProvider? Vqa => _probe?.Probe;
    internal IAnswerDistance AnswerDistance => _distance;
    internal double IdentityBaselineValue(int imageSize) => IdentityBaselineFor(imageSize).Value;
    /// <summary>SWD's baseline for attribute-agreement weights, or null when SWD weighs by the embedder (no ground truth, or the option says so).</summary>
    internal double? AttributeBaselineValue(int imageSize) => _options.SwdIdentity == "attributes" ? AttributeBaselineFor(imageSize)?.Value : null;
    internal AttributeGroundTruth? GroundTruth => _truth;
    internal string DatasetDir => _datasetDir;
    internal string IdentityView => _options.IdentityView;

    /// <summary>The notes every evaluation with this suite carries (e.g. why probe scores are missing).</summary>
    public IReadOnlyList<string> Notes => _notes;

    /// <summary>The trained attribute probe's report, or null without ground truth.</summary>
    public ProbeReport? ProbeReport => _probe?.Report;

    public static EvaluationSuite Create(string datasetDir, long seed = 1, IProgress<string>? progress = null) => Create(datasetDir, new EvaluationSuiteOptions(), seed, progress);

    public static EvaluationSuite Create(string datasetDir, EvaluationSuiteOptions options, long seed = 1, IProgress<string>? progress = null)
    {
        options.Validate();
        if (!Directory.Exists(datasetDir)) throw new DirectoryNotFoundException($"{datasetDir}: dataset folder not found");
        TorchRuntime.EnsureLoaded();
        var records = DatasetLayout.ReadRecords(datasetDir);
        var calibration = ManifestReader.Read(datasetDir, options.Scheme);
        var notes = new List<string>();
        progress?.Report("loading ResNet18 (ONNX Runtime)");
        var features = new ResNet18Embedder(intraOpThreads: options.EmbedderThreads);
        var embedder = new EvaluationEmbeddingCache(features);
        PreparedProbe? probe = null;
        MiniLmTextEmbedder? minilm = null;
        try
        {
            probe = EvaluationProbe.Prepare(datasetDir, records, options.ImageSize, options.Probe with { Seed = seed }, options.CacheProbe, notes, progress);
            if (probe is null && !notes.Any(n => n.Contains("probe", StringComparison.Ordinal)))
                notes.Add($"{datasetDir} has no {Data.Synth.SynthAttributesFile.FileName} (not a synthetic dataset): no attribute probe, so prompt_consistency and swd (which needs the probe as VQA) are omitted");
            if (options.AnswerDistance == "minilm")
            {
                progress?.Report("loading all-MiniLM-L6-v2 (ONNX Runtime)");
                minilm = new MiniLmTextEmbedder(options.EmbedderThreads);
            }
            var truth = probe is null ? null : AttributeGroundTruth.FromSynth(Data.Synth.SynthAttributesFile.Read(datasetDir));
            var suite = new EvaluationSuite(datasetDir, seed, options, embedder, features, probe, truth, minilm, calibration, notes);
            progress?.Report($"identity baseline at {options.ImageSize} px");
            suite.IdentityBaselineFor(options.ImageSize);
            suite.AttributeBaselineFor(options.ImageSize);
            return suite;
        }
        catch
        {
            embedder.Dispose();
            probe?.Probe.Dispose();
            minilm?.Dispose();
            throw;
        }
    }

    /// <summary>Deterministic seed of sample k of a reference set.</summary>
    public static long SampleSeed(long seed, string setId, int k) => Seeding.DeriveLong(seed, $"evaluation-sample/{setId}/{k}");

    public EvaluationResult Evaluate(string modelName, DiffusionModel model, IReferenceConditionedModel branch, string datasetDir, string scheme,
        EvaluationOptions options, string outDir, IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        if (string.IsNullOrWhiteSpace(modelName)) throw new ArgumentException("the model needs a name for the results table", nameof(modelName));
        TorchRuntime.EnsureLoaded();
        var notes = new List<string>(_notes);
        if (Path.GetFullPath(datasetDir) != Path.GetFullPath(_datasetDir))
            notes.Add($"baselines and probe come from {Path.GetFullPath(_datasetDir)}, the reference sets from {Path.GetFullPath(datasetDir)}");
        var manifestPath = options.ManifestPath ?? Path.Combine(datasetDir, DatasetLayout.ManifestPath(scheme));
        var manifest = ManifestReader.Read(manifestPath);
        var records = DatasetLayout.ReadRecords(datasetDir);
        var sets = EvaluationSets.Choose(manifest, records, options.Split, options.ReferenceSets, options.Seed);
        if (sets.Count == 0)
            throw new InvalidDataException($"{manifestPath}: no reference set for split '{options.Split}' (it draws on manifest split '{EvaluationSets.ManifestSplit(options.Split)}'{(options.Split == EvaluationSplits.Composition ? " and needs characters with face crops in another outfit" : "")})");
        if (sets.Count < options.ReferenceSets) notes.Add($"only {sets.Count} of the {options.ReferenceSets} requested reference sets exist for split '{options.Split}'");
        if (_probe is not null && options.SamplesPerReference < 2) notes.Add("swd needs at least 2 samples per reference set; it is omitted");

        int size = model.Config.ImageSize;
        var identityBaseline = IdentityBaselineFor(size);
        var scorer = new EvaluationScorer(_embedder, (IVqaProvider?)_probe?.Probe ?? NoAnswers.Instance, _distance, identityBaseline.Value, _probe?.Probe, leakageEmbedder: _embedder,
            attributeBaseline: AttributeBaselineValue(size));
        var table = new ResultsTable(options.Seed, options.BootstrapResamples);
        var outputs = new List<(string, IReadOnlyList<string>, IReadOnlyList<string>)>();
        var sampleFeatures = new List<float[]>();
        var leakageBaselines = new SortedDictionary<string, double?>(StringComparer.Ordinal);
        // A target id names its samples' folder: one that leads outside the output folder is refused before anything is sampled.
        if (options.SaveImages) foreach (var set in sets) SafePath.Under(outDir, SampleRelativePath(set, 0), $"{manifestPath}: the sample path made from a target id");
        Directory.CreateDirectory(outDir);
        int total = sets.Count * options.SamplesPerReference, done = 0, skippedSets = 0;
        // A set's samples are split across threads, one libtorch thread each (deterministic sampling only: see GenerateSet).
        // Where the evaluation's time goes, reported in the notes (sampling vs the scoring that follows it).
        var sampling = new System.Diagnostics.Stopwatch();
        var locating = new System.Diagnostics.Stopwatch();
        var scoring = new System.Diagnostics.Stopwatch();
        using var samplingWorkers = new TorchWorkerPool(options.Sampling.Eta == 0 && branch.ConcurrentPredict ? Math.Min(TorchRuntime.Threads, options.SamplesPerReference) : 1, "retribooru-sampling");
        foreach (var set in sets)
        {
            var prompt = PromptViews.Apply(options.PromptView, set.Prompt, set.Character);
            var referencePaths = set.References.Select(r => ManifestReader.Resolve(datasetDir, r.Image)).ToList();
            var scoringRefs = new List<ScoringReference>();
            var samples = new List<ScoringSample>();
            var samplePaths = new List<string>();
            try
            {
                using var setScope = NewDisposeScope();
                var crops = new List<ReferenceCrop>();
                try
                {
                    for (int i = 0; i < set.References.Count; i++)
                    {
                        scoringRefs.Add(new ScoringReference(ImageTensor.LoadBitmap(referencePaths[i]), set.References[i].Concept));
                        crops.Add(new ReferenceCrop(ImageTensor.Load(referencePaths[i], size), set.References[i].Concept, set.References[i].SourceId));
                    }
                }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
                {
                    notes.Add($"reference set {set.Id} skipped: {e.Message}");
                    skippedSets++;
                    done += options.SamplesPerReference;
                    progress?.Report((done, total));
                    continue;
                }
                cancellationToken.ThrowIfCancellationRequested();
                var seeds = Enumerable.Range(0, options.SamplesPerReference).Select(k => SampleSeed(options.Seed, set.Id, k)).ToList();
                sampling.Start();
                var images = GenerateSet(model, branch, prompt, crops, options.Sampling, seeds, samplingWorkers.Workers);
                sampling.Stop();
                for (int k = 0; k < options.SamplesPerReference; k++)
                {
                    var image = images[k];
                    long seed = seeds[k];
                    sampleFeatures.Add(_features.Features(image));
                    string? relative = null;
                    if (options.SaveImages)
                    {
                        relative = SampleRelativePath(set, k);
                        var full = SafePath.Under(outDir, relative, $"{manifestPath}: the sample path made from a target id");
                        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                        AtomicFile.WriteAllBytes(full, ImageTensor.EncodePng(image));
                        samplePaths.Add(full);
                    }
                    locating.Start();
                    var faceBox = EvaluationViews.Locate(_options.IdentityView, _embedder, image, scoringRefs.Where(r => r.IsFace).Select(r => r.Image).ToList());
                    var clothesBox = EvaluationViews.Locate(_options.IdentityView, _embedder, image, scoringRefs.Where(r => r.IsClothing).Select(r => r.Image).ToList());
                    locating.Stop();
                    samples.Add(new ScoringSample(image, k, seed, relative, faceBox, clothesBox));
                    progress?.Report((++done, total));
                }
                double? beta = LeakageBaselineFor(size, set.Character, notes);
                leakageBaselines[set.Character] = beta;
                if (beta is null) notes.Add($"no leakage baseline for {set.Character}: leakage omitted for set {set.Id}");
                var expected = _truth?.Expected(set.References.Select(r => (r.Concept, r.SourceId)));
                var scoringSet = new ScoringReferenceSet(set.Id, scoringRefs, prompt, PromptTags(prompt), beta, expected);
                // Without a VQA provider SWD cannot be computed: scoring one sample at a time skips it (and nothing else).
                scoring.Start();
                var rows = _probe is null
                    ? samples.SelectMany(s => scorer.Score(modelName, options.Split, scoringSet, [s], cancellationToken)).ToList()
                    : scorer.Score(modelName, options.Split, scoringSet, samples, cancellationToken);
                scoring.Stop();
                foreach (var row in rows) table.Add(Renamed(row));
                outputs.Add((set.Id, referencePaths, samplePaths));
            }
            finally
            {
                foreach (var r in scoringRefs) r.Image.Dispose();
                foreach (var s in samples) s.Image.Dispose();
            }
        }
        if (table.Rows.Count == 0) throw new InvalidDataException($"{manifestPath}: none of the {sets.Count} reference sets could be read (see the skipped files above)");
        if (skippedSets > 0) notes.Add($"{skippedSets} of {sets.Count} reference sets skipped because a file could not be read");

        var qualityClock = System.Diagnostics.Stopwatch.StartNew();
        var quality = ScoreImageQuality(modelName, table, sampleFeatures, manifest, manifestPath, datasetDir, size, options, notes);
        var timing = string.Create(CultureInfo.InvariantCulture, $"sampling {sampling.Elapsed.TotalSeconds:F1} s ({Math.Max(1, samplingWorkers.Workers.Count)} thread(s)), " +
            $"identity views {locating.Elapsed.TotalSeconds:F1} s, scoring {scoring.Elapsed.TotalSeconds:F1} s, image quality {qualityClock.Elapsed.TotalSeconds:F1} s");
        var config = Config(modelName, model, branch, datasetDir, manifestPath, scheme, options, identityBaseline, leakageBaselines, sets, notes);
        table.Write(outDir, config, GitCommit.Describe() ?? GitCommit.Describe(AppContext.BaseDirectory), quality);
        var summary = table.Summaries().Single().Scores.ToDictionary(s => s.Name, s => s);
        return new EvaluationResult(modelName, options.Split, table.Rows.ToList(), summary, outputs, notes) { Timing = timing };
    }

    static string SampleRelativePath(EvaluationSet set, int k) => $"samples/{set.Id}/{k}.png";

    /// <summary>
    /// The K samples of one reference set, each from its own recorded seed. With deterministic sampling (eta 0) they are
    /// generated as batches split across <paramref name="workers"/> (a sample then differs from its alone-generated self
    /// only by float rounding); otherwise one at a time, because the per-step noise of a batch comes from one generator.
    /// </summary>
    static List<SKBitmap> GenerateSet(DiffusionModel model, IReferenceConditionedModel branch, string prompt, IReadOnlyList<ReferenceCrop> crops,
        ReferenceSamplingOptions sampling, IReadOnlyList<long> seeds, IReadOnlyList<TorchWorker> workers)
    {
        var images = new List<SKBitmap>();
        using var scope = NewDisposeScope();
        if (sampling.Eta == 0)
        {
            var generated = ReferenceSampler.GenerateSplit(model, branch, Enumerable.Repeat(prompt, seeds.Count).ToList(), Enumerable.Repeat(crops, seeds.Count).ToList(), sampling, seeds, workers);
            for (int k = 0; k < seeds.Count; k++) images.Add(ImageTensor.ToBitmap(generated[k]));
            return images;
        }
        foreach (var seed in seeds)
        {
            var generated = ReferenceSampler.Generate(model, branch, [prompt], [crops], sampling with { Seed = seed });
            images.Add(ImageTensor.ToBitmap(generated[0]));
        }
        return images;
    }

    /// <summary>Embedders, answer distance, probe accuracy and baselines (for provenance).</summary>
    public IReadOnlyDictionary<string, string> Describe()
    {
        var d = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["dataset"] = Path.GetFullPath(_datasetDir),
            ["seed"] = Num(_seed),
            ["image_embedder"] = _embedder.Name,
            ["text_embedder"] = _minilm?.Name ?? "none (answer distance is exact match)",
            ["answer_distance"] = _distance.Name,
            ["vqa"] = _probe is null ? "none" : _probe.Probe.Name,
            ["identity_view"] = _options.IdentityView == EvaluationViews.Whole
                ? "whole generated image (no face box or mask) vs face crops and vs clothes crops"
                : "best of 14 windows per concept (whole, 3x3 half-size, 2x2 three-quarter) vs that concept's crops",
            ["image_quality"] = $"KID (unbiased MMD^2, kernel (x.y/d + 1)^3 on raw ResNet18 pool features, {_options.KidResamples} bootstrap resamples) vs at most {_options.QualityImages} real images of the split; readability = samples' / real images' prompt consistency",
        };
        if (_probe is { } p)
        {
            d["probe_accuracy"] = Num(p.Report.MeanHeldOutAccuracy);
            foreach (var (name, accuracy) in p.Report.HeldOutAccuracy) d["probe_accuracy/" + name] = Num(accuracy);
            d["probe_train_images"] = Num(p.Report.TrainCount);
            d["probe_heldout_images"] = Num(p.Report.HeldOutCount);
            d["probe_skipped_images"] = Num(p.SkippedImages);
            d["probe_source"] = p.FromCache ? "cache " + Path.Combine(_datasetDir, EvaluationProbe.Folder) : "trained";
        }
        foreach (var (size, b) in _identityBaselines)
        {
            d[$"identity_baseline@{size}"] = Num(b.Value);
            d[$"identity_same_character_mean@{size}"] = Num(b.SameCharacterMean);
            d[$"identity_cross_character_median@{size}"] = Num(b.CrossCharacterMedian);
            d[$"identity_baseline_pairs@{size}"] = $"{b.Pairs} pairs, {b.Examples} examples, {b.Characters} characters";
        }
        foreach (var (size, b) in _attributeBaselines)
        {
            if (b is null) continue;
            d[$"attribute_agreement_baseline@{size}"] = Num(b.Value);
            d[$"attribute_agreement_same_character_mean@{size}"] = Num(b.SameCharacterMean);
            d[$"attribute_agreement_cross_character_median@{size}"] = Num(b.CrossCharacterMedian);
        }
        d["swd_identity"] = _options.SwdIdentity == "attributes" && _attributeBaselines.Values.Any(b => b is not null)
            ? "attribute agreement (probe vs the references' ground truth), baseline attribute_agreement_baseline"
            : "embedding identity (image embedder), baseline identity_baseline";
        foreach (var ((size, character), beta) in _leakageBaselines)
            d[$"leakage_baseline@{size}/{character}"] = beta is double v ? Num(v) : "none";
        return d;
    }

    EvaluationBaselines.IdentityBaseline IdentityBaselineFor(int size)
    {
        if (!_identityBaselines.TryGetValue(size, out var baseline))
            _identityBaselines[size] = baseline = EvaluationBaselines.Identity(_embedder, _datasetDir, _calibration, size, _options.IdentityBaselineExamples, _options.IdentityBaselineQuantile, _seed, _notes, _options.IdentityView);
        return baseline;
    }

    EvaluationBaselines.IdentityBaseline? AttributeBaselineFor(int size)
    {
        if (_probe is null || _truth is null) return null;
        if (!_attributeBaselines.TryGetValue(size, out var baseline))
            _attributeBaselines[size] = baseline = EvaluationBaselines.Attributes(_probe.Probe, _truth, _datasetDir, _calibration, size, _options.IdentityBaselineExamples, _options.IdentityBaselineQuantile, _seed, _notes);
        return baseline;
    }

    double? LeakageBaselineFor(int size, string character, List<string> notes)
    {
        if (!_leakageBaselines.TryGetValue((size, character), out var beta))
        {
            var problems = new List<string>();
            _leakageBaselines[(size, character)] = beta = EvaluationBaselines.Leakage(_leakage, _datasetDir, _calibration, character, size, _options.LeakageBaselineExamples, _seed, problems);
            notes.AddRange(problems.Select(p => "leakage baseline: " + p));
        }
        return beta;
    }

    /// <summary>
    /// KID of the samples against the split's real pictures (with floor, ceiling and position) and readability; adds
    /// them to <paramref name="table"/>'s summary as aggregates and returns results.json's <c>quality</c> object.
    /// A part that cannot be computed is left out with a note (fewer than 2 samples or 4 real pictures, no probe, ...).
    /// </summary>
    JsonObject ScoreImageQuality(string modelName, ResultsTable table, IReadOnlyList<float[]> sampleFeatures, IReadOnlyList<TrainingExample> manifest, string manifestPath,
        string datasetDir, int size, EvaluationOptions options, List<string> notes)
    {
        var manifestSplit = EvaluationSets.ManifestSplit(options.Split);
        var (real, readableReal) = RealSideFor(manifest, manifestPath, datasetDir, size, manifestSplit, options.PromptView);
        foreach (var note in real.Notes.Concat(readableReal?.Notes ?? []))
            if (!notes.Contains(note)) notes.Add(note);
        var quality = new JsonObject
        {
            ["features"] = $"{_features.Name} raw {_features.Dimension}-d global-average-pool output (not normalised)",
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
            table.AddAggregate(modelName, options.Split, new ScoreSummary("kid", kid.Value, kid.Lower, kid.Upper, kid.Generated, 0.95, _options.KidResamples, _seed));
            table.AddAggregate(modelName, options.Split, Fixed("kid_floor", floor.Value, real.Images));
            table.AddAggregate(modelName, options.Split, Fixed("kid_ceiling", ceiling.Value, real.Images));
            table.AddAggregate(modelName, options.Split, new ScoreSummary("kid_position", report.PositionInRange, (kid.Lower - floor.Value) / range, (kid.Upper - floor.Value) / range,
                kid.Generated, 0.95, _options.KidResamples, _seed));
            quality["kid"] = KidJson(kid);
            quality["kid_floor"] = KidJson(floor);
            quality["kid_ceiling"] = KidJson(ceiling);
            quality["kid_position"] = report.PositionInRange;
        }

        if (_probe is null) return quality;
        var sampleConsistency = table.Rows.Where(r => r.Model == modelName && r.Split == options.Split && r.SampleIndex is not null && r.Scores.ContainsKey("prompt_consistency"))
            .Select(r => r.Scores["prompt_consistency"]).ToList();
        if (sampleConsistency.Count == 0) notes.Add("readability omitted: no sample's prompt asks for a probe attribute");
        else if (readableReal?.Mean is not double realMean || realMean <= 0) notes.Add($"readability omitted: the probe agrees with no real {manifestSplit} image's prompt (nothing to divide by)");
        else
        {
            // The real mean is a fixed yardstick (cached, shared by every model): only the samples are resampled.
            var samples = Bootstrap.MeanInterval("readability", sampleConsistency, options.Seed, options.BootstrapResamples);
            table.AddAggregate(modelName, options.Split, samples with { Mean = samples.Mean / realMean, Lower = samples.Lower / realMean, Upper = samples.Upper / realMean });
            quality["readability"] = new JsonObject
            {
                ["value"] = samples.Mean / realMean, ["ci_low"] = samples.Lower / realMean, ["ci_high"] = samples.Upper / realMean, ["n"] = samples.Count,
                ["samples_mean"] = samples.Mean, ["real_mean"] = realMean, ["real_n"] = readableReal.Count, ["prompt_view"] = options.PromptView,
            };
        }
        return quality;

        ScoreSummary Fixed(string name, double value, int count) => new(name, value, value, value, count, 0.95, _options.KidResamples, _seed);
        static JsonObject KidJson(KidResult k) => new() { ["value"] = k.Value, ["ci_low"] = k.Lower, ["ci_high"] = k.Upper, ["n"] = k.Generated, ["real_n"] = k.Real };
    }

    /// <summary>
    /// The cached real side of image quality for (manifest, size, split[, prompt view]); the pictures are loaded only
    /// when a part is missing, and disposed right after.
    /// </summary>
    (RealQuality Quality, RealReadability? Readability) RealSideFor(IReadOnlyList<TrainingExample> manifest, string manifestPath, string datasetDir, int size, string manifestSplit, string promptView)
    {
        var path = Path.GetFullPath(manifestPath);
        var qualityKey = (path, size, manifestSplit);
        var readabilityKey = (path, size, manifestSplit, promptView);
        bool needQuality = !_qualityReferences.ContainsKey(qualityKey);
        bool needReadability = _probe is not null && !_realReadability.ContainsKey(readabilityKey);
        if (needQuality || needReadability)
        {
            var loadNotes = new List<string>();
            var real = LoadSplitTargets(manifest, datasetDir, size, manifestSplit, loadNotes);
            try
            {
                if (needQuality)
                    _qualityReferences[qualityKey] = new RealQuality(
                        real.Count >= 4 ? ImageQualityReference.Create(_features, real.Select(r => r.Image).ToList(), size, _seed, _options.KidResamples) : null, real.Count, loadNotes);
                if (needReadability)
                {
                    var consistencies = Readability.Consistencies(_probe!.Probe,
                        real.Select(r => (r.Image, PromptTags(PromptViews.Apply(promptView, r.Example.Prompt, r.Example.Character)))));
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
    List<(SKBitmap Image, TrainingExample Example)> LoadSplitTargets(IReadOnlyList<TrainingExample> manifest, string datasetDir, int size, string manifestSplit, List<string> notes)
    {
        var targets = manifest.Where(e => e.Split == manifestSplit).GroupBy(e => e.Target, StringComparer.Ordinal).Select(g => g.First())
            .OrderBy(e => e.Target, StringComparer.Ordinal).ToArray();
        if (targets.Length > _options.QualityImages)
        {
            Seeding.Stream(_seed, "quality-images/" + manifestSplit).Shuffle(targets);
            notes.Add($"image quality compares with {_options.QualityImages} of the {targets.Length} {manifestSplit} images (a seeded choice)");
            targets = targets.Take(_options.QualityImages).ToArray();
        }
        var loaded = new List<(SKBitmap, TrainingExample)>();
        var unreadable = new List<string>();
        foreach (var example in targets)
        {
            try { loaded.Add((ImageTensor.LoadBitmap(ManifestReader.Resolve(datasetDir, example.Image), size), example)); }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException) { unreadable.Add(e.Message); }
        }
        if (unreadable.Count > 0)
            notes.Add($"image quality: {unreadable.Count} of {targets.Length} {manifestSplit} images could not be read and were skipped (first: {unreadable[0]})");
        return loaded;
    }

    JsonObject Config(string modelName, DiffusionModel model, IReferenceConditionedModel branch, string datasetDir, string manifestPath, string scheme,
        EvaluationOptions options, EvaluationBaselines.IdentityBaseline identity, IReadOnlyDictionary<string, double?> leakage, IReadOnlyList<EvaluationSet> sets, IReadOnlyList<string> notes)
    {
        var suite = new JsonObject();
        // Baselines get their own entries below; whether the probe was trained now or loaded from its cache is left out
        // (the cached weights are exact copies), so the file's bytes depend only on the inputs.
        foreach (var (k, v) in Describe())
            if (!k.StartsWith("leakage_baseline@", StringComparison.Ordinal) && !k.StartsWith("identity_baseline", StringComparison.Ordinal) && !k.StartsWith("identity_same", StringComparison.Ordinal) && !k.StartsWith("identity_cross", StringComparison.Ordinal) && !k.StartsWith("attribute_agreement_", StringComparison.Ordinal) && k != "probe_source") suite[k] = v;
        var leak = new JsonObject();
        foreach (var (character, beta) in leakage) leak[character] = beta;
        return new JsonObject
        {
            ["protocol"] = "retribooru-evaluate/2",
            ["model"] = modelName,
            ["branch"] = branch.Kind.Name(),
            ["model_config"] = model.Config.Name,
            ["image_size"] = model.Config.ImageSize,
            ["dataset"] = Path.GetFullPath(datasetDir),
            ["manifest"] = Path.GetFullPath(manifestPath),
            ["scheme"] = scheme,
            ["split"] = options.Split,
            ["manifest_split"] = EvaluationSets.ManifestSplit(options.Split),
            ["reference_sets_requested"] = options.ReferenceSets,
            ["reference_sets"] = new JsonArray(sets.Select(s => (JsonNode?)new JsonObject
            {
                ["id"] = s.Id, ["character"] = s.Character, ["clothing_id"] = s.ClothingId, ["prompt"] = s.Prompt,
                ["generation_prompt"] = PromptViews.Apply(options.PromptView, s.Prompt, s.Character),
                ["references"] = new JsonArray(s.References.Select(r => (JsonNode?)new JsonObject { ["concept"] = r.Concept, ["image"] = r.Image }).ToArray()),
                ["face_clothing_ids"] = new JsonArray(s.FaceClothingIds.Select(c => (JsonNode?)c).ToArray()),
            }).ToArray()),
            ["prompt_view"] = options.PromptView,
            ["samples_per_reference"] = options.SamplesPerReference,
            ["seed"] = options.Seed,
            ["sample_seed_rule"] = "SHA-256 of \"<seed>/evaluation-sample/<set id>/<k>\" (Seeding.DeriveLong), recorded per row",
            ["sampling"] = new JsonObject
            {
                ["sampler"] = "ddim", ["steps"] = options.Sampling.Steps, ["text_scale"] = options.Sampling.TextScale,
                ["reference_scale"] = options.Sampling.ReferenceScale, ["eta"] = options.Sampling.Eta,
            },
            ["torch_threads"] = TorchRuntime.Threads,
            ["suite"] = suite,
            ["identity_baseline"] = new JsonObject { ["value"] = identity.Value, ["pairs"] = identity.Pairs, ["examples"] = identity.Examples, ["quantile"] = identity.Quantile,
                ["same_character_mean"] = identity.SameCharacterMean, ["cross_character_median"] = identity.CrossCharacterMedian },
            ["leakage_baselines"] = leak,
            ["attribute_agreement_baseline"] = AttributeBaselineFor(model.Config.ImageSize) is { } ab ? new JsonObject { ["value"] = ab.Value, ["pairs"] = ab.Pairs, ["examples"] = ab.Examples,
                ["quantile"] = ab.Quantile, ["same_character_mean"] = ab.SameCharacterMean, ["cross_character_median"] = ab.CrossCharacterMedian } : null,
            ["notes"] = new JsonArray(notes.Select(n => (JsonNode?)n).ToArray()),
        };
    }

    /// <summary>The scorer's <c>identity_clothing</c> is reported under the concept word: <c>identity_clothes</c>.</summary>
    static ResultRow Renamed(ResultRow row) => row.Scores.ContainsKey("identity_clothing")
        ? row with { Scores = row.Scores.ToDictionary(kv => kv.Key == "identity_clothing" ? "identity_clothes" : kv.Key, kv => kv.Value) }
        : row;

    static IReadOnlyList<string> PromptTags(string prompt) => prompt.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);
    static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);

    public void Dispose()
    {
        _embedder.Dispose();
        _probe?.Probe.Dispose();
        _minilm?.Dispose();
    }

    /// <summary>The VQA stand-in without a probe: answers nothing (SWD is then not computed).</summary>
    sealed class NoAnswers : IVqaProvider
    {
        public static readonly NoAnswers Instance = new();
        public string Name => "none";
        public bool CanAnswer(VqaQuestion question) => false;
        public IReadOnlyList<VqaAnswer> Ask(SKBitmap image, IReadOnlyList<VqaQuestion> questions, CancellationToken cancellationToken = default) => [];
    }
}
